"""The digital link on the JAX backend against the Sionna link, and LDPC early stopping.

Tied elsewhere: the uncoded BER of both backends against the closed forms is
``test_uncoded_ber_matches_the_closed_form`` in tests/phy/test_digital.py
(parametrised over the backend); the demapper's LLRs, the same received
symbols and noise, within 1e-4 of Sionna's ``Demapper`` are
``test_llrs_are_sionnas_within_1e_4`` in tests/phy/test_qam.py, and the BP decoder's decisions
on the same LLRs are Sionna's in tests/phy/test_ldpc.py.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import digital, digital_jax, digital_payload, ldpc, qam
from airinfer.phy.digital import LinkConfig
from airinfer.phy.sionna_backend import tensorflow
from tests.phy.test_ldpc import received_llrs
from tests.tf_free import run_without_tensorflow

K = 512
BLOCKS = 40


def _bits(seed, blocks=BLOCKS):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, (blocks, K)), jnp.float32)


# ------------------------------------------------------------ (a) the deterministic parts


@pytest.mark.parametrize(
    ("modulation", "coding"),
    [("qpsk", "ldpc"), ("16qam", "ldpc"), ("64qam", "ldpc"), ("256qam", "uncoded")],
)
def test_transmitted_symbols_are_the_sionna_links(modulation, coding):
    n = 768 if modulation == "64qam" else None  # a multiple of 6 bits
    config = LinkConfig(modulation, "awgn", coding, k=K, n=n)
    bits = _bits(1, 8)
    blocks = digital._blocks(config)  # the Sionna link's own encoder and mapper
    tf_bits = tensorflow().constant(np.asarray(bits))
    codeword = blocks.encoder(tf_bits) if blocks.encoder is not None else tf_bits
    theirs = blocks.mapper(codeword).numpy()
    ours = np.asarray(digital_jax.modulate(bits, dataclasses.replace(config, backend="jax")))
    np.testing.assert_array_equal(ours, theirs)


# [sionna] is slow: the default run has the Sionna link decoding every block at 5 dB
# (tests/phy/test_digital.py: test_ldpc_corrects_every_error_at_high_snr)
@pytest.mark.parametrize("backend", [pytest.param("sionna", marks=pytest.mark.slow), "jax"])
def test_both_backends_decode_every_block_of_a_noiseless_link(backend):
    bits = _bits(2)
    config = LinkConfig("16qam", "awgn", "ldpc", k=K, backend=backend)
    # 80 dB: noise 1e-8 against the smallest 16QAM distance 0.63: no symbol is wrong.
    hat, llr = digital.transmit(jax.random.key(3), bits, 80.0, config)
    np.testing.assert_array_equal(hat, bits, err_msg=backend)
    assert llr.shape == (BLOCKS, 2 * K) and np.all(np.isfinite(llr))


# ------------------------------------------------------------ (c) statistics: coded BLER

# Es/N0 = 1 dB, QPSK, rate 1/2, k = 512 over AWGN: in the waterfall (BLER ≈ 0.5).
WATERFALL_SNR_DB = 1.0
WATERFALL_BLOCKS = 400
# Two independent binomial samples of N blocks: under equal BLER p the difference
# has sigma = sqrt(2 p (1 - p) / N) <= 0.035 at N = 400; 4 sigma misses a correct
# link with probability 6e-5, and still catches a 0.3 dB shift (ΔBLER ≈ 0.2).
BLER_SIGMAS = 4.0


@pytest.mark.slow  # about 30 s on 2 idle cores, most of it Sionna's decoder
def test_coded_bler_agrees_with_the_sionna_link():
    blers = {}
    for backend in ("sionna", "jax"):
        config = LinkConfig("qpsk", "awgn", "ldpc", k=K, backend=backend)
        counts = digital.error_counts(jax.random.key(5), config, WATERFALL_SNR_DB, WATERFALL_BLOCKS)
        blers[backend] = int(counts.block_errors) / counts.blocks
    pooled = (blers["sionna"] + blers["jax"]) / 2
    assert 0.1 < pooled < 0.9, blers  # a point where the decoder's work is at stake
    sigma = math.sqrt(2 * pooled * (1 - pooled) / WATERFALL_BLOCKS)
    assert abs(blers["sionna"] - blers["jax"]) < BLER_SIGMAS * sigma, blers


# ------------------------------------------------------------ the JAX link on its own


def test_jax_link_is_deterministic_and_vmaps():
    config = LinkConfig("qpsk", "rayleigh", "ldpc", k=K, backend="jax", receiver_csi_error_var=0.05)
    bits = _bits(4, 8)
    keys = jax.random.split(jax.random.key(6), 2)
    hat1, llr1 = digital.transmit(keys[0], bits, 3.0, config)
    hat2, llr2 = digital.transmit(keys[0], bits, 3.0, config)
    np.testing.assert_array_equal(llr1, llr2)
    np.testing.assert_array_equal(hat1, hat2)
    mapped = jax.vmap(lambda key: digital.transmit(key, bits, 3.0, config)[1])(keys)
    np.testing.assert_allclose(mapped[0], llr1, rtol=1e-5, atol=1e-5)
    assert np.mean(np.asarray(mapped[0]) != np.asarray(mapped[1])) > 0.99  # another key


def test_jax_link_demaps_with_the_equalised_noise_variance():
    # One Rayleigh draw rebuilt by hand: y = h x + n, LLRs of y / h with noise no / |h|^2.
    config = LinkConfig("16qam", "rayleigh", "uncoded", k=K, backend="jax")
    bits, no = _bits(7, 2), jnp.array([0.1, 0.3])
    llr = digital_jax.channel_llrs(jax.random.key(8), bits, no, config)
    key_fade, key_noise, _ = jax.random.split(jax.random.key(8), 3)
    x = qam.map_bits(bits, 4)
    h = jax.random.normal(key_fade, x.shape, jnp.complex64)
    y = h * x + jnp.sqrt(no[:, None]) * jax.random.normal(key_noise, x.shape, jnp.complex64)
    expected = qam.demap(y / h, no[:, None] / jnp.abs(h) ** 2, 4)
    np.testing.assert_allclose(llr, expected, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------ (e) early stopping


@pytest.mark.xla_optimized
def test_early_stopping_keeps_the_decisions_of_converged_blocks():
    code = ldpc.ldpc_code(K, 2 * K)
    bits, llrs = received_llrs(code, 120, 1.0, seed=9)
    full = np.asarray(jax.jit(lambda x: ldpc.decode(x, code))(llrs))
    early, iterations = jax.jit(
        lambda x: ldpc.decode(x, code, early_stop=True, return_iterations=True)
    )(llrs)
    early, iterations = np.asarray(early), np.asarray(iterations)
    converged = iterations < 20
    # the point is in the waterfall: some blocks converge early, others never do
    assert 0.2 < converged.mean() < 0.9 and iterations.min() >= 1
    # every block that converged keeps, and the full run reaches, the same decisions
    np.testing.assert_array_equal(early[converged], full[converged])
    assert np.all(early[converged] == bits[converged])
    # a frozen block holds the decisions of its converging iteration t: those of a
    # plain run of t iterations
    t = int(np.bincount(iterations[converged]).argmax())
    plain = np.asarray(ldpc.decode(llrs[iterations == t], code, num_iter=t))
    np.testing.assert_array_equal(early[iterations == t], plain)


def test_early_stopping_stops_at_once_on_a_codeword_and_vmaps():
    code = ldpc.ldpc_code(100, 300)  # BG2 with filler bits, 5 blocks: one chunk padded
    bits = np.random.default_rng(10).integers(0, 2, (5, 100))
    llrs = 10.0 * (2 * np.asarray(ldpc.encode(bits, code)) - 1)  # noiseless logits
    decided, iterations = ldpc.decode(llrs, code, early_stop=True, return_iterations=True)
    np.testing.assert_array_equal(decided, bits)
    np.testing.assert_array_equal(iterations, np.ones(5))
    mapped = jax.vmap(lambda x: ldpc.decode(x, code, early_stop=True))(llrs[:, None])
    np.testing.assert_array_equal(mapped[:, 0], bits)


# slow: the default run has the decoder's early stopping against the full decoder
# (test_early_stopping_keeps_the_decisions_of_converged_blocks) and the link with
# early stopping against the shipped BLER curve (tests/phy/test_link_adaptation.py:
# test_a_shipped_curve_holds_for_the_jax_link_at_its_waterfall)
@pytest.mark.slow
@pytest.mark.xla_optimized
def test_early_stopping_link_has_the_full_links_errors():
    # same key, same LLRs: only blocks that never converge may decide differently
    counts = {
        stop: digital.error_counts(
            jax.random.key(11),
            LinkConfig("qpsk", "awgn", "ldpc", k=K, backend="jax", early_stop=stop),
            1.5,
            100,
        )
        for stop in (False, True)
    }
    assert int(counts[False].block_errors) > 0
    assert abs(int(counts[True].block_errors) - int(counts[False].block_errors)) <= 1


# ------------------------------------------------------------ (f) refusals, one line each


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "torch"}, r"^backend must be one of"),
        ({"early_stop": True}, r"^early_stop=True needs backend='jax'"),
        ({"early_stop": True, "coding": "uncoded", "backend": "jax"}, r"^early_stop\b"),
        ({"early_stop": 1, "backend": "jax"}, r"^early_stop must be a bool"),
    ],
)
def test_unavailable_backend_settings_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        LinkConfig(**kwargs)
    assert "\n" not in str(error.value)


def test_send_bits_follows_the_backend_it_is_given():
    config = LinkConfig("qpsk", "awgn", "uncoded", k=K)
    bits = _bits(12, 3)
    ours = digital_payload.send_bits(jax.random.key(1), bits, 0.0, config, backend="jax")
    jax_config = dataclasses.replace(config, backend="jax")
    direct, _ = digital.transmit(jax.random.key(1), bits, 0.0, jax_config)
    np.testing.assert_array_equal(ours, direct)


# ------------------------------------------------------------ (d) no TensorFlow at all

_WITHOUT_TENSORFLOW = """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from airinfer.models.zoo import ModelConfig, build_model
    from airinfer.phy import digital
    from airinfer.phy.source_coding import PixelFormat
    from airinfer.strategies.base import Link
    from airinfer.strategies.cloud import CloudStrategy
    from airinfer.strategies.digital_hop import DigitalHop, reconstruct, send

    bits = jnp.asarray(np.random.default_rng(0).integers(0, 2, (4, 512)), jnp.float32)
    # LDPC over AWGN here, over Rayleigh in the cloud strategy below
    for channel, coding in (("awgn", "ldpc"), ("rayleigh", "uncoded")):
        config = digital.LinkConfig(channel=channel, coding=coding, backend="jax")
        hat, _ = digital.transmit(jax.random.key(0), bits, 60.0, config)
        assert bool(jnp.all(hat == bits)), channel
    model = build_model(ModelConfig("cnn", (8, 8, 1), 10, width=0.5), jax.random.key(0))
    strategy = CloudStrategy(model, PixelFormat((8.0,), (4.0,), 16.0))
    images = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1), minval=-2.0, maxval=2.0)
    link = Link(snr_db=40.0, channel="rayleigh", backend="jax")
    outcome = strategy(jax.random.key(2), images, link)
    assert outcome.logits.shape == (3, 10) and bool(jnp.all(jnp.isfinite(outcome.logits)))
    # the partitioning strategies' hop
    hop = DigitalHop(bits=6, low=-2.0, high=2.0, max_block_bits=300)
    values = jax.random.normal(jax.random.key(3), (2, 50))
    received = send(jax.random.key(4), values, 40.0, hop, "rayleigh", backend="jax")
    assert bool(jnp.all(received == reconstruct(values, hop)))
    # and the OFDM link (LS estimation on TDL-A, uncoded: one compilation less)
    config = digital.LinkConfig(channel="tdl-a", coding="uncoded", k=512, csi="ls", backend="jax")
    hat, _ = digital.transmit(jax.random.key(5), bits, 60.0, config)
    assert bool(jnp.all(hat == bits))
"""


# slow: tests/experiments/test_tf_free.py runs the JAX digital links without TensorFlow
# in the default suite (link_ber, and strategies_snr's split_digital with an adaptive MCS)
@pytest.mark.slow
@pytest.mark.xla_optimized
def test_jax_backend_runs_without_tensorflow_or_sionna():
    # the link on both flat channels, a cloud_digital call and a partitioning hop
    result = run_without_tensorflow(_WITHOUT_TENSORFLOW)
    assert result.returncode == 0, result.stderr[-3000:]
