"""The Sionna digital link in JAX: BER against closed forms, LDPC, determinism, checks.

The JAX backend (``LinkConfig(backend="jax")``) against this link: tests/phy/test_digital_jax.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import digital, theory
from airinfer.phy.digital import LinkConfig

K = 512
# Every call sends 100 blocks of 512 info bits: one static batch shape for all
# tests, so each link configuration is traced and compiled once per session.
BLOCKS = 100
# Uncoded points: 10 batches = 512,000 bits (an uncoded batch costs ~15 ms).
UNCODED_BITS = 10 * BLOCKS * K
# Bits of one symbol share its noise sample (and its fade under Rayleigh), so
# they are not independent trials. Counting one trial per *symbol* bounds the
# spread from above: sigma = sqrt(p (1 - p) / (bits / bits_per_symbol)).
# A 5-sigma band misses a correct simulation with probability < 1e-6 per point
# (the keys are fixed, so the test is deterministic anyway). It is still tight
# enough to catch a wrong link or formula: at the two lower SNRs of each curve
# (p >= 0.01, so 5 sigma <= ~10 % of p) a 1 dB error shifts the BER by > 20 %,
# and a 3 dB error (Eb/N0 taken for Es/N0) shifts every point by > 40 %.
TOLERANCE_SIGMAS = 5.0

UNCODED_POINTS = {
    ("qpsk", "awgn"): (0.0, 4.0, 8.0),
    ("16qam", "awgn"): (6.0, 10.0, 14.0),
    ("qpsk", "rayleigh"): (5.0, 15.0, 25.0),
    ("16qam", "rayleigh"): (10.0, 20.0, 30.0),
}


def _tolerance(p, bits, bits_per_symbol):
    trials = bits / bits_per_symbol
    return TOLERANCE_SIGMAS * math.sqrt(p * (1 - p) / trials)


def _bits(seed):
    """Random info bits ``[BLOCKS, K]`` (NumPy: test data needs no compiled sampler)."""
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, (BLOCKS, K)), jnp.float32)


# Each backend in the default run: both modulations and both channels, two
# compilations each; the other four pairings are slow.
_SLOW_PAIRINGS = {("qpsk", "awgn", "sionna"), ("16qam", "rayleigh", "sionna"),
                  ("16qam", "awgn", "jax"), ("qpsk", "rayleigh", "jax")}  # fmt: skip


@pytest.mark.xla_optimized
@pytest.mark.parametrize(
    ("modulation", "channel", "backend"),
    [
        pytest.param(
            *point, backend, marks=[pytest.mark.slow] * ((*point, backend) in _SLOW_PAIRINGS)
        )
        for backend in ("sionna", "jax")
        for point in UNCODED_POINTS
    ],
)
def test_uncoded_ber_matches_the_closed_form(modulation, channel, backend):
    config = LinkConfig(modulation, channel, "uncoded", k=K, backend=backend)
    for i, snr_db in enumerate(UNCODED_POINTS[modulation, channel]):
        # min_bit_errors above what can happen: exactly UNCODED_BITS are sent.
        counts = digital.simulate_ber(
            jax.random.key(i),
            config,
            snr_db,
            min_bit_errors=UNCODED_BITS + 1,
            max_bits=UNCODED_BITS,
            blocks_per_batch=BLOCKS,
        )
        assert counts.bits == UNCODED_BITS and counts.blocks == UNCODED_BITS // K
        ber = counts.bit_errors / counts.bits
        expected = float(theory.ber(snr_db, modulation, channel))
        tolerance = _tolerance(expected, counts.bits, config.bits_per_symbol)
        assert abs(ber - expected) < tolerance, (modulation, channel, snr_db, ber, expected)
        assert 0 <= counts.block_errors <= counts.blocks


@pytest.mark.xla_optimized
def test_ldpc_corrects_every_error_at_high_snr():
    snr_db = 5.0  # Es/N0; QPSK uncoded BER ≈ 0.038 here
    uncoded = digital.error_counts(
        jax.random.key(10), LinkConfig("qpsk", "awgn", "uncoded", k=K), snr_db, BLOCKS
    )
    assert int(uncoded.bit_errors) > 1000  # the channel does corrupt bits ...
    coded = digital.error_counts(
        jax.random.key(10), LinkConfig("qpsk", "awgn", "ldpc", k=K), snr_db, BLOCKS
    )
    assert coded.bits == BLOCKS * K and coded.blocks == BLOCKS
    assert int(coded.bit_errors) == 0 and int(coded.block_errors) == 0  # ... the code fixes all


# Optimised as the test above: the same two links, compiled once for both.
@pytest.mark.xla_optimized
def test_ldpc_beats_uncoded_in_the_waterfall():
    # 2 dB Es/N0 (Eb/N0 = 2 dB at rate 1/2): uncoded QPSK BER ≈ 0.10, LDPC orders lower.
    snr_db = 2.0
    uncoded = digital.error_counts(
        jax.random.key(11), LinkConfig("qpsk", "awgn", "uncoded", k=K), snr_db, BLOCKS
    )
    coded = digital.error_counts(
        jax.random.key(11), LinkConfig("qpsk", "awgn", "ldpc", k=K), snr_db, BLOCKS
    )
    assert int(uncoded.bit_errors) > 0
    assert int(coded.bit_errors) < int(uncoded.bit_errors) / 10
    assert int(coded.block_errors) <= BLOCKS


def test_llr_sign_convention_is_log_p1_over_p0():
    config = LinkConfig("16qam", "awgn", "uncoded", k=K)
    bits = _bits(3)
    llr = digital.channel_llrs(jax.random.key(4), bits, jnp.full((BLOCKS,), 1e-4), config)
    assert llr.shape == (BLOCKS, K) and llr.dtype == jnp.float32  # 40 dB: no errors
    np.testing.assert_array_equal(np.asarray(llr) > 0, np.asarray(bits) == 1)


# The draws come from the key through the bridge alike on both links; [ldpc] (a
# deterministic decoder on top, one more compilation) is slow.
@pytest.mark.parametrize(
    ("channel", "coding"),
    [("rayleigh", "uncoded"), pytest.param("awgn", "ldpc", marks=pytest.mark.slow)],
)
def test_same_key_same_output_different_key_different_output(channel, coding):
    bits = _bits(5)
    snr_db = jnp.full((BLOCKS,), 1.0)  # noisy enough for decisions to differ
    config = LinkConfig("qpsk", channel, coding, k=K)
    hat1, llr1 = digital.transmit(jax.random.key(1), bits, snr_db, config)
    hat2, llr2 = digital.transmit(jax.random.key(1), bits, snr_db, config)
    hat3, llr3 = digital.transmit(jax.random.key(2), bits, snr_db, config)
    assert hat1.shape == (BLOCKS, K) and llr1.shape == (BLOCKS, config.codeword_length)
    np.testing.assert_array_equal(hat1, hat2)
    np.testing.assert_array_equal(llr1, llr2)
    assert np.mean(np.asarray(llr1) != np.asarray(llr3)) > 0.99
    assert np.any(np.asarray(hat1) != np.asarray(hat3))


def test_second_call_with_another_snr_does_not_recompile():
    config = LinkConfig("qpsk", "awgn", "uncoded", k=K)
    digital.error_counts(jax.random.key(0), config, 1.0, BLOCKS)
    size = digital._error_counts._cache_size()
    digital.error_counts(jax.random.key(1), config, 7.0, BLOCKS)
    assert digital._error_counts._cache_size() == size


def test_extreme_snr_and_deep_fades_give_finite_llrs():
    config = LinkConfig("qpsk", "rayleigh", "uncoded", k=K)
    bits = _bits(7)
    snr_db = jnp.linspace(-40.0, 60.0, BLOCKS)
    hat, llr = digital.transmit(jax.random.key(7), bits, snr_db, config)
    assert np.all(np.isfinite(np.asarray(llr)))
    # The 60 dB block: Pb ≈ 1 / (2 snr) = 5e-7 per bit, so all 512 bits come through.
    np.testing.assert_array_equal(hat[-1], bits[-1])
    assert 0.3 < float(jnp.mean(hat[0] != bits[0])) < 0.7  # -40 dB: coin flips


def test_imperfect_csi_hurts():
    perfect = LinkConfig("qpsk", "rayleigh", "uncoded", k=K)
    noisy = LinkConfig("qpsk", "rayleigh", "uncoded", k=K, receiver_csi_error_var=0.1)
    snr_db = 20.0
    errors_perfect = int(
        digital.error_counts(jax.random.key(6), perfect, snr_db, BLOCKS).bit_errors
    )
    errors_noisy = int(digital.error_counts(jax.random.key(6), noisy, snr_db, BLOCKS).bit_errors)
    # An estimation error of variance 0.1 against noise of 0.01: the estimate dominates.
    assert errors_noisy > 2 * errors_perfect > 0


def test_llrs_are_differentiable_in_the_noise_power():
    # The front end compiles to XLA through the bridge, so jax.grad reaches `no`:
    # more noise, less confident LLRs.
    config = LinkConfig("qpsk", "awgn", "uncoded", k=K)
    bits = _bits(9)

    def mean_confidence(no):
        llr = digital.channel_llrs(jax.random.key(9), bits, jnp.full((BLOCKS,), no), config)
        return jnp.mean(jnp.abs(llr))

    grad = jax.grad(mean_confidence)(0.5)
    assert np.isfinite(grad) and grad < 0


def test_per_block_snr_broadcasts():
    config = LinkConfig("qpsk", "awgn", "uncoded", k=K)
    bits = jnp.zeros((BLOCKS, K), jnp.float32)
    snr_db = jnp.where(jnp.arange(BLOCKS) % 2 == 0, -10.0, 30.0)
    _, llr = digital.transmit(jax.random.key(8), bits, snr_db, config)
    errors = np.sum(np.asarray(llr) > 0, axis=1)
    assert np.all(errors[0::2] > 100) and np.all(errors[1::2] == 0)


def test_config_properties_and_defaults():
    coded = LinkConfig("16qam", "awgn", "ldpc", k=K)
    assert coded.codeword_length == 2 * K and coded.code_rate == 0.5
    assert coded.num_symbols == 2 * K // 4
    assert LinkConfig("qpsk", coding="uncoded", k=K).codeword_length == K
    explicit = LinkConfig("16qam", "awgn", "ldpc", k=K, n=2 * K)
    assert coded == explicit and hash(coded) == hash(explicit)  # one cache entry


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"modulation": "8psk"}, "modulation"),
        ({"channel": "rician"}, "channel"),
        ({"coding": "turbo"}, "coding"),
        ({"k": 0}, "k"),
        ({"k": 5000, "n": 4000}, "n"),
        ({"k": 8, "n": 16}, "k"),
        ({"k": 512, "n": 1022, "modulation": "16qam"}, "n"),
        ({"coding": "uncoded", "n": 1024}, "n"),
        ({"receiver_csi_error_var": -0.1}, "receiver_csi_error_var"),
        ({"receiver_csi_error_var": float("nan")}, "receiver_csi_error_var"),
        ({"num_iter": 0}, "num_iter"),
        ({"backend": "tf"}, "backend"),
        ({"early_stop": True}, "early_stop"),
    ],
)
def test_bad_config_raises_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        LinkConfig(**kwargs)


def test_bad_inputs_raise_naming_the_argument():
    config = LinkConfig("qpsk", "awgn", "uncoded", k=K)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"^bits\b"):
        digital.transmit(key, jnp.zeros((2, K + 1)), 0.0, config)
    with pytest.raises(ValueError, match=r"^bits\b"):
        digital.transmit(key, jnp.zeros((K,)), 0.0, config)
    with pytest.raises(ValueError, match=r"^bits must be 0 or 1"):
        digital.transmit(key, jnp.full((2, K), 2.0), 0.0, config)
    with pytest.raises(ValueError, match=r"^snr_db\b"):
        digital.transmit(key, jnp.zeros((2, K)), float("nan"), config)
    with pytest.raises(ValueError, match=r"^snr_db\b"):
        digital.transmit(key, jnp.zeros((2, K)), jnp.zeros(3), config)
    with pytest.raises(ValueError, match=r"^no\b"):
        digital.channel_llrs(key, jnp.zeros((2, K)), -1.0, config)
    with pytest.raises(ValueError, match=r"^no\b"):
        digital.channel_llrs(key, jnp.zeros((2, K)), float("nan"), config)
    with pytest.raises(ValueError, match=r"^llr\b"):
        digital.decode(jnp.zeros((2, K - 2)), config)
    with pytest.raises(ValueError, match=r"^num_blocks\b"):
        digital.error_counts(key, config, 0.0, 0)
    with pytest.raises(ValueError, match=r"^snr_db\b"):
        digital.error_counts(key, config, jnp.zeros(2), 10)
    with pytest.raises(ValueError, match=r"^max_bits\b"):
        digital.simulate_ber(key, config, 0.0, max_bits=0)


def test_simulate_ber_stops_on_errors_or_bits():
    config = LinkConfig("qpsk", "awgn", "uncoded", k=K)
    # 0 dB: BER ≈ 0.16, so one batch already has far more than 100 errors.
    many = digital.simulate_ber(
        jax.random.key(0), config, 0.0, min_bit_errors=100, blocks_per_batch=BLOCKS
    )
    assert many.blocks == BLOCKS and many.bit_errors >= 100
    # 30 dB: no errors; stops at max_bits, rounded up to whole batches.
    none = digital.simulate_ber(
        jax.random.key(0), config, 30.0, max_bits=3 * BLOCKS * K - 1, blocks_per_batch=BLOCKS
    )
    assert none.bit_errors == 0 and none.bits == 3 * BLOCKS * K and none.blocks == 3 * BLOCKS


def test_rates():
    config = LinkConfig("16qam", "awgn", "ldpc", k=K)
    assert digital.nominal_rate(config, 1e6) == pytest.approx(2e6)
    assert digital.goodput(config, 1e6, 0.25) == pytest.approx(1.5e6)
    assert digital.achievable_rate(1e6, 10.0) == pytest.approx(1e6 * np.log2(11.0))
    assert digital.achievable_rate(1e6, 10.0, "rayleigh") < digital.achievable_rate(1e6, 10.0)
    with pytest.raises(ValueError, match=r"^bandwidth_hz\b"):
        digital.achievable_rate(0.0, 10.0)
    with pytest.raises(ValueError, match=r"^bler\b"):
        digital.goodput(config, 1e6, 1.5)
