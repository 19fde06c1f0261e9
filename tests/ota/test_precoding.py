"""The optimal power control of Cao et al. and the LMMSE receive combiner, against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer import ota
from airinfer.phy import channels
from tests.conftest import complex_normal, normal

POWER = 2.0
NOISE_POWERS = (1e-4, 1e-2, 0.1, 1.0, 10.0)  # no = P 10^(-snr/10): SNR 43 ... -7 dB
DRAWS, DEVICES = 2000, 6  # one shape for most tests: one compilation each

# Compiled once per shape (the noise power is traced): op-by-op dispatch of the
# unrolled combiner iterations would cost far more than compiling them.
_optimal = jax.jit(ota.optimal_power_control, static_argnums=1)
_eta = jax.jit(ota.optimal_denoising_factor, static_argnums=1)
_precode = jax.jit(ota.precode, static_argnums=(1, 2, 3))
_eigen = jax.jit(ota.eigen_combiner)
_lmmse = jax.jit(ota.lmmse_combiner, static_argnums=1)


def theorem_1(g, power, no):
    """Cao, Zhu, Xu and Huang (IEEE TWC 2020), static channels, as the paper states it.

    Sort the quality indicators ``q = P |g|^2``; ``eta_i = ((no + sum_{k<=i} q_k) /
    sum_{k<=i} sqrt(q_k))^2``; ``i*`` is the index with ``q_i* <= eta_i* <= q_i*+1``.
    Returns ``(eta*, MSE*)`` with ``MSE* = sum_{k<=i*} (sqrt(q_k / eta*) - 1)^2 + no / eta*``.
    """
    q = np.sort(power * np.abs(g) ** 2)
    for i in range(1, len(q) + 1):
        eta = ((no + q[:i].sum()) / np.sqrt(q[:i]).sum()) ** 2
        if q[i - 1] <= eta <= (q[i] if i < len(q) else np.inf):
            return eta, np.sum((np.sqrt(q[:i] / eta) - 1) ** 2) + no / eta
    raise AssertionError("no index satisfies the theorem's condition")


@jax.jit
def sum_mse(g, pre, no):
    """Cao et al.'s sum-MSE: ``K^2`` times the MSE of the average."""
    return ota.aggregation_mse(g, pre, no) * g.shape[-2] ** 2


# --------------------------------------------------------------------------- optimal policy


@pytest.mark.parametrize("no", NOISE_POWERS)
def test_optimal_denoising_factor_and_mse_are_the_papers_closed_forms(no):
    g = complex_normal(0, (DRAWS, DEVICES, 1))
    eta = _eta(g, POWER, no)[:, 0]
    mse = sum_mse(g, _optimal(g, POWER, no), no)[:, 0]
    # the paper's loop in Python on the first 500 draws (on all 2000 it took most of the time)
    checked = 500
    expected = np.array([theorem_1(row, POWER, no) for row in np.asarray(g[:checked, :, 0])])
    # float32 sums of six terms: a few ulps
    np.testing.assert_allclose(eta[:checked], expected[:, 0], rtol=2e-6)
    np.testing.assert_allclose(mse[:checked], expected[:, 1], rtol=2e-5)


def test_optimal_policy_has_the_threshold_structure():
    g = complex_normal(1, (DRAWS, DEVICES, 1))
    no = 0.3
    pre = _optimal(g, POWER, no)
    eta = np.asarray(_eta(g, POWER, no))[:, None, :]  # [B, 1, 1]
    quality = POWER * np.abs(np.asarray(g)) ** 2
    b, received = np.asarray(pre.coefficients), np.asarray(g * pre.coefficients)
    below = quality < eta
    assert 0.1 < below.mean() < 0.9  # both regimes are exercised
    # below the threshold: full power, phase undone; above it: inversion to sqrt(eta)
    np.testing.assert_allclose(np.abs(b[below]) ** 2, POWER, rtol=1e-5)
    np.testing.assert_allclose(received[~below], np.broadcast_to(np.sqrt(eta), b.shape)[~below],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(np.imag(received), 0.0, atol=1e-5)
    np.testing.assert_allclose(pre.amplitudes, np.broadcast_to(np.sqrt(eta), b.shape), rtol=1e-6)
    np.testing.assert_allclose(pre.reference, np.sqrt(eta[:, 0]), rtol=1e-6)


@pytest.mark.parametrize("snr_db", [-40.0, -10.0, 0.0, 10.0, 30.0, 60.0])
def test_optimal_power_control_meets_each_devices_power_constraint_on_every_draw(snr_db):
    no = POWER * 10 ** (-snr_db / 10)
    g = complex_normal(2, (20_000, 8, 1))
    # exact zeros and deep fades among the draws
    g = g.at[:3].set(0.0).at[3:6].multiply(1e-6).at[6:9, :4].multiply(1e-3)
    pre = _optimal(g, POWER, no)
    energy = np.abs(np.asarray(pre.coefficients)) ** 2
    assert np.all(np.isfinite(energy)) and np.all(np.isfinite(pre.amplitudes))
    assert energy.max() <= POWER * (1 + 1e-5), energy.max()
    assert energy.max() >= POWER * (1 - 1e-5)  # the weakest device always sends at full power


@pytest.mark.parametrize("no", NOISE_POWERS)
def test_optimal_is_never_worse_than_inversion_or_phase_on_the_same_draws(no):
    g = complex_normal(3, (DRAWS, DEVICES, 1))
    optimal = sum_mse(g, _optimal(g, POWER, no), no)
    for name in ("truncated", "full", "phase"):
        other = sum_mse(g, _precode(g, name, POWER, 0.1), no)
        # each is a feasible point of the problem the optimum solves (float32 slack)
        assert bool(jnp.all(optimal <= other * (1 + 1e-5) + 1e-7)), name
        assert float(jnp.mean(optimal)) < float(jnp.mean(other))


def test_optimal_becomes_full_inversion_without_noise():
    g = complex_normal(4, (DRAWS, DEVICES, 1))
    optimal = _optimal(g, POWER, 0.0)
    full = _precode(g, "full", POWER, None)
    np.testing.assert_allclose(optimal.reference, full.reference, rtol=1e-5)
    np.testing.assert_allclose(g * optimal.coefficients, g * full.coefficients, rtol=1e-4,
                               atol=1e-6)  # fmt: skip


def test_optimal_respects_the_transmit_mask():
    g = complex_normal(5, (DRAWS, DEVICES, 1))
    mask = jnp.asarray(np.random.default_rng(5).random((DRAWS, DEVICES, 1)) < 0.6)
    masked = _optimal(g, POWER, 0.2, mask)
    assert bool(jnp.all(jnp.where(mask, True, masked.coefficients == 0)))
    assert bool(jnp.all(jnp.where(mask, True, masked.amplitudes == 0)))
    # the factor is the one of the transmitting devices alone
    for row in range(50):
        keep = np.asarray(mask[row, :, 0])
        if keep.any():
            eta, _ = theorem_1(np.asarray(g[row, keep, 0]), POWER, 0.2)
            assert float(masked.reference[row, 0]) ** 2 == pytest.approx(eta, rel=2e-6)


# --------------------------------------------------------------------------- MSE vs SNR, end to end

MC_SNR_DB = (-10.0, 0.0, 10.0, 20.0)
MC_BLOCKS, MC_DEVICES, MC_REALS = 100, 4, 2000  # 1000 complex symbols per block


def test_mse_vs_snr_over_the_air_is_the_closed_form_of_every_draw():
    key = jax.random.key(7)
    config = ota.AirCompConfig(precoding="optimal", backend="jax")
    # Zero-mean unit-energy symbols (N(0, 1/2) per real dimension), already normalised.
    values = normal(8, (MC_BLOCKS, MC_DEVICES, MC_REALS)) * math.sqrt(0.5)
    snr = jnp.asarray(MC_SNR_DB)[:, None]  # batch [S, B]
    estimate = jax.jit(ota.over_the_air_average, static_argnums=(3, 4))(
        key, values, snr, config, None
    )
    error = np.asarray(estimate.average - values.mean(-2))
    measured = 2 * np.mean(error**2, axis=-1)  # per complex symbol: [S, B]
    # The same draw of the channel (the block's first key), flattened [S * B].
    h = channels.draw_flat_fading(
        jax.random.split(key, 3)[0], (len(MC_SNR_DB) * MC_BLOCKS,), MC_DEVICES, backend="jax"
    )
    g = h.reshape(len(MC_SNR_DB), MC_BLOCKS, MC_DEVICES, 1)
    no = np.asarray([ota.noise_power(s, config) for s in MC_SNR_DB])[:, None]
    closed = np.zeros_like(measured)
    for i, (s, b) in enumerate(np.ndindex(*measured.shape)):
        del i
        closed[s, b] = theorem_1(np.asarray(g[s, b, :, 0]), config.power, no[s, 0])[1]
    closed /= MC_DEVICES**2
    # Given the channels, the error is Gaussian: a block's measured MSE is a mean of
    # MC_REALS squared Gaussians, relative std sqrt(2 / MC_REALS) = 3.2 %; 6 sigma per
    # block, and 5 sigma for the mean over MC_BLOCKS blocks at each SNR.
    sigma = math.sqrt(2 / MC_REALS)
    np.testing.assert_allclose(measured, closed, rtol=6 * sigma)
    np.testing.assert_allclose(
        measured.mean(-1), closed.mean(-1), rtol=5 * sigma / math.sqrt(MC_BLOCKS)
    )
    assert np.all(np.diff(closed.mean(-1)) < 0)  # the MSE falls with the SNR


# --------------------------------------------------------------------------- combiners


@jax.jit
def combined_sum_mse(h, w, no):
    g = ota.effective_channel(h, w)
    return sum_mse(g, ota.optimal_power_control(g, POWER, no), no)[..., 0]


@pytest.mark.parametrize("no", [0.0, 1e-3, 0.1, 1.0, 10.0])
def test_lmmse_combiner_is_never_worse_than_eigen_and_has_unit_norm(no):
    h = complex_normal(9, (400, 4, 8, 1))  # M = 4 antennas, K = 8 devices
    eigen = _eigen(h)
    lmmse = _lmmse(h, POWER, no)
    np.testing.assert_allclose(jnp.sum(jnp.abs(lmmse) ** 2, axis=-2), 1.0, rtol=1e-5)
    if no == 0:  # no noise: every combiner that reaches all devices is exact
        return
    mse_eigen, mse_lmmse = combined_sum_mse(h, eigen, no), combined_sum_mse(h, lmmse, no)
    assert bool(jnp.all(mse_lmmse <= mse_eigen * (1 + 1e-5)))
    assert float(jnp.mean(mse_lmmse)) < 0.99 * float(jnp.mean(mse_eigen))


def test_lmmse_combiner_of_one_device_is_maximum_ratio():
    h = complex_normal(10, (300, 4, 1, 1))
    w = _lmmse(h, POWER, 0.1)
    gain = jnp.abs(ota.effective_channel(h, w)) ** 2  # |w^H h|^2 = ||h||^2 at the optimum
    np.testing.assert_allclose(gain[:, 0], jnp.sum(jnp.abs(h) ** 2, axis=-3)[:, 0], rtol=1e-4)


def grid_search_sum_mse(h, no, steps=(91, 181)):
    """The least sum-MSE over a grid of unit combiners ``(cos t, sin t e^{i p})`` for M = 2."""
    t, p = np.meshgrid(
        np.linspace(0, np.pi / 2, steps[0]), np.linspace(0, 2 * np.pi, steps[1]), indexing="ij"
    )
    grid = np.stack([np.cos(t), np.sin(t) * np.exp(1j * p)]).reshape(2, -1)  # [2, G]
    q = POWER * np.abs(np.einsum("mg,bmk->bgk", grid.conj(), np.asarray(h[..., 0]))) ** 2
    q = np.sort(q, axis=-1)
    energy, amplitude = np.cumsum(q, -1), np.cumsum(np.sqrt(q), -1)
    eta = np.min(((no + energy) / amplitude) ** 2, axis=-1, keepdims=True)  # Theorem 1
    mse = np.sum(np.clip(1 - np.sqrt(q / eta), 0, None) ** 2, -1) + no / eta[..., 0]
    return mse.min(axis=-1)


def test_lmmse_combiner_reaches_the_global_optimum_on_most_draws():
    h = complex_normal(11, (150, 2, 4, 1))  # M = 2: the combiners form a 2-D sphere
    no = 0.1  # 13 dB
    lmmse = np.asarray(combined_sum_mse(h, _lmmse(h, POWER, no), no))
    eigen = np.asarray(combined_sum_mse(h, _eigen(h), no))
    best = grid_search_sum_mse(h, no)
    ratio = lmmse / best  # the 1-degree grid's optimum is itself a little above the true one
    assert np.median(ratio) < 1.001
    assert np.mean(ratio < 1.01) > 0.8  # a local method: a few draws end in a worse optimum
    assert np.mean(lmmse) < 1.1 * np.mean(best) < np.mean(eigen)


def test_lmmse_combiner_ignores_devices_that_do_not_transmit():
    h = complex_normal(12, (100, 3, 5, 1))
    mask = jnp.ones((100, 5, 1), bool).at[:, 0].set(False)
    masked = _lmmse(h, POWER, 0.1, mask)
    without = _lmmse(h[:, :, 1:], POWER, 0.1)
    # the same direction up to a phase: |w1^H w2| = 1
    overlap = jnp.abs(jnp.sum(jnp.conj(masked) * without, axis=-2))
    np.testing.assert_allclose(overlap, 1.0, rtol=1e-4)


def test_receive_combiner_dispatch():
    h = complex_normal(9, (400, 4, 8, 1))  # the shape above: compiled once
    combine = jax.jit(ota.receive_combiner, static_argnums=(1, 2))
    np.testing.assert_array_equal(combine(h, "eigen", None, None), _eigen(h))
    np.testing.assert_array_equal(combine(h, "lmmse", POWER, 0.1), _lmmse(h, POWER, 0.1))
    np.testing.assert_array_equal(ota.lmmse_combiner(h[:2, :1], POWER, 0.1), 1.0)  # M = 1
    with pytest.raises(ValueError, match="combiner"):
        ota.receive_combiner(h, "zf")
    with pytest.raises(ValueError, match="no"):
        ota.receive_combiner(h, "lmmse", POWER)
    with pytest.raises(ValueError, match="no"):
        ota.precode(h[:, 0], "optimal", POWER)


def test_optimal_and_lmmse_gradients_are_finite_at_zero_channels():
    h = complex_normal(14, (8, 2, 3, 1)).at[0].set(0.0).at[1, :, 0].set(0.0)

    def loss(re, no):
        h_ = (re + 1j * jnp.imag(h)).astype(jnp.complex64)
        w = ota.lmmse_combiner(h_, POWER, no)
        g = ota.effective_channel(h_, w)
        pre = ota.optimal_power_control(g, POWER, no)
        return jnp.sum(ota.aggregation_mse(g, pre, no)) + jnp.sum(jnp.abs(pre.coefficients) ** 2)

    grad_loss = jax.jit(jax.grad(loss))
    for no in (0.0, 0.1, 1e4):
        grad = grad_loss(jnp.real(h), no)
        assert bool(jnp.all(jnp.isfinite(grad))), no
        assert float(jnp.abs(grad).sum()) > 0
