"""The digital OFDM link on the JAX backend against Sionna's blocks and link."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import digital, digital_jax, ofdm_receiver
from airinfer.phy.digital import LinkConfig
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

# One codeword per slot (576 QPSK symbols = 12 data OFDM symbols x 48 subcarriers),
# the layout of tests/phy/test_digital_ofdm.py
K, N = 576, 1152
PERFECT = LinkConfig(channel="tdl-a", k=K, n=N, backend="jax")
LS = dataclasses.replace(PERFECT, csi="ls")


def _bits(seed, blocks, k=K):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, (blocks, k)), jnp.float32)


def _sionna(config):
    return digital._blocks(dataclasses.replace(config, backend="sionna"))


# ------------------------------------------------------------ deterministic parts


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # one slot, pilots on 2 and 11
        {"k": 600, "n": 1200, "fft_size": 20, "pilot_ofdm_symbol_indices": (0, 5, 13)},
        {"modulation": "16qam", "coding": "uncoded", "k": 400, "n": None,
         "num_ofdm_symbols": 7, "pilot_ofdm_symbol_indices": (), "fft_size": 9},
    ],
)  # fmt: skip
def test_grid_is_sionnas_resource_grid_mapper_output(kwargs):
    config = dataclasses.replace(PERFECT, **kwargs)
    x = digital_jax.modulate(_bits(1, 3, config.k), config)
    ours = np.asarray(ofdm_receiver.to_grid(x, config))
    blocks = _sionna(config)
    theirs = digital._to_slots(config, blocks, tensorflow().constant(np.asarray(x))).numpy()
    theirs = theirs.reshape(ours.shape)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ofdm_receiver.data_symbols(ours, config), x)


# Every interpolation and every pilot layout by default, each once (a Sionna estimator
# built per pairing); the other six pairings are slow.
_LS_PAIRINGS = {("nn", (2, 11)), ("lin", (0, 4, 9)), ("lin_time_avg", (6,))}


@pytest.mark.parametrize(
    ("interpolation", "pilots"),
    [
        pytest.param(i, p, marks=[pytest.mark.slow] * ((i, p) not in _LS_PAIRINGS))
        for p in [(2, 11), (0, 4, 9), (6,)]
        for i in ["nn", "lin", "lin_time_avg"]
    ],
)
def test_ls_estimates_are_sionnas_and_exact_on_a_noiseless_flat_channel(interpolation, pilots):
    config = dataclasses.replace(
        LS, ls_interpolation=interpolation, pilot_ofdm_symbol_indices=pilots, fft_size=12
    )
    rng = np.random.default_rng(2)
    shape = (3, config.num_ofdm_symbols, 12)
    y = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    no = np.array([0.1, 0.5, 2.0], np.float32)
    h_hat, err_var = ofdm_receiver.ls_estimate(jnp.asarray(y), jnp.asarray(no), config)
    theirs, their_var = _sionna(config).ofdm.estimator(y[:, None, None], no)
    np.testing.assert_allclose(h_hat, theirs.numpy()[:, 0, 0, 0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.broadcast_to(err_var, shape), their_var.numpy()[:, 0, 0, 0, 0], rtol=1e-6
    )
    # a channel flat over the slot, no noise: every estimate is h (up to the
    # rounding of h p / p in float32)
    h = np.complex64(0.3 - 1.1j)
    grid = ofdm_receiver.to_grid(jnp.zeros((1, config.num_symbols), jnp.complex64), config)
    h_hat, _ = ofdm_receiver.ls_estimate(h * grid[0, 0], 0.0, config)
    np.testing.assert_allclose(h_hat, np.full((config.num_ofdm_symbols, 12), h), rtol=3e-7)


def test_lmmse_output_and_effective_noise_are_sionnas():
    config = LS
    rng = np.random.default_rng(3)
    shape = (4, config.num_ofdm_symbols, config.grid_fft_size)

    def normal(scale=1.0):
        return (scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(
            np.complex64
        )

    y, h = normal(), normal(0.7)
    no = np.array([0.01, 0.1, 1.0, 3.0], np.float32)
    err_var = np.array([0.0, 0.05, 0.2, 1.0], np.float32)
    x_hat, no_eff = ofdm_receiver.lmmse_equalize(y, h, err_var[:, None, None], no[:, None, None])
    theirs, their_no = _sionna(config).ofdm.equalizer(
        y[:, None, None], h[:, None, None, None, None], err_var.reshape(4, 1, 1, 1, 1, 1, 1), no
    )
    d = config.data_resource_elements_per_slot  # one slot: num_symbols

    def data(grid):
        return np.asarray(ofdm_receiver.data_symbols(grid[:, None], config))

    np.testing.assert_allclose(data(x_hat), theirs.numpy().reshape(4, d), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data(no_eff), their_no.numpy().reshape(4, d), rtol=1e-5, atol=1e-5)
    # in exact arithmetic: y / h and (no + err_var) / |h|^2 (1 / d - 1 cancels
    # down to float32's absolute precision when |h|^2 >> no + err_var)
    np.testing.assert_allclose(x_hat, y / h, rtol=1e-4, atol=1e-4)
    expected = (no + err_var)[:, None, None] / np.abs(h) ** 2
    np.testing.assert_allclose(no_eff, expected, rtol=1e-4, atol=1e-6)


def test_pilots_are_sionnas_kronecker_pilots():
    sn = sionna_phy()
    grid = sn.ofdm.ResourceGrid(14, 37, 30e3, pilot_pattern="kronecker",
                                pilot_ofdm_symbol_indices=[1, 6, 12])  # fmt: skip
    theirs = grid.pilot_pattern.pilots.numpy().reshape(3, 37)
    np.testing.assert_array_equal(ofdm_receiver.kronecker_pilots(3, 37), theirs)


# ------------------------------------------------------------ the link


def test_jax_ofdm_link_is_error_free_at_40_db_and_vmaps():
    bits = _bits(4, 16)
    no = jnp.full(16, 1e-4)  # 40 dB
    configs = (PERFECT, LS, dataclasses.replace(PERFECT, receiver_csi_error_var=1e-4))
    llrs = [digital.channel_llrs(jax.random.key(5), bits, no, c) for c in configs]
    # the decoder depends on the code alone: one compilation decodes all three links
    hat = digital.decode(jnp.concatenate(llrs), PERFECT)
    np.testing.assert_array_equal(hat, jnp.tile(bits, (3, 1)))
    assert all(np.all(np.isfinite(llr)) for llr in llrs)
    keys = jnp.stack([jax.random.key_data(jax.random.key(seed)) for seed in (5, 6)])
    mapped = jax.vmap(
        lambda key: digital_jax.channel_llrs(jax.random.wrap_key_data(key), bits, no, LS)
    )(keys)
    np.testing.assert_allclose(mapped[0], llrs[1], rtol=1e-4, atol=1e-2)
    assert np.mean(np.asarray(mapped[0]) != np.asarray(mapped[1])) > 0.99  # another key


# Es/N0 per resource element where TDL-A with LS CSI loses about a third of its
# blocks (tests/phy/test_digital_ofdm.py measured 0.33 on the Sionna link).
MIDDLE_SNR_DB = 8.0
BLOCKS = 400
# Two independent binomial estimates of one p from 400 blocks each differ by
# sigma = sqrt(2 p (1 - p) / 400) <= 0.035; 4 sigma misses a correct link with
# probability 6e-5 and still catches a shift of ~1 dB (a BLER change > 0.15).
SIGMAS = 4.0


@pytest.mark.slow
@pytest.mark.parametrize("csi", ["ls", "perfect"])
def test_bler_agrees_with_the_sionna_ofdm_link(csi):
    config = LS if csi == "ls" else PERFECT
    blers = {}
    for backend in ("sionna", "jax"):
        counts = digital.error_counts(
            jax.random.key(7), dataclasses.replace(config, backend=backend), MIDDLE_SNR_DB, BLOCKS
        )
        blers[backend] = int(counts.block_errors) / BLOCKS
    pooled = (blers["sionna"] + blers["jax"]) / 2
    assert 0.05 < pooled < 0.95, blers
    sigma = math.sqrt(2 * pooled * (1 - pooled) / BLOCKS)
    assert abs(blers["sionna"] - blers["jax"]) < SIGMAS * sigma, blers
