"""Channels: Sionna models through the bridge, their JAX twins, and the ties between them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from airinfer.phy import channels
from airinfer.phy.conventions import snr_db_to_no
from tests.conftest import complex_normal

BACKENDS = ["sionna", "jax"]


def _backends(slow):
    """BACKENDS, the one named ``slow`` marked slow: its twin runs by default."""
    return [pytest.param(b, marks=pytest.mark.slow) if b == slow else b for b in BACKENDS]


# Kolmogorov-Smirnov tests: with n samples the statistic of a correct model
# exceeds 1.63/sqrt(n) with probability 1 %; we reject only below p = 1e-3.
KS_P_MIN = 1e-3


def _unit_symbols(seed, shape):
    """CN(0, 1) symbols: test data from NumPy (no sampler to compile per shape)."""
    return complex_normal(seed, shape)


# Sionna's noise by default: test_awgn_noise_broadcasts_over_batch[sionna]
@pytest.mark.parametrize("backend", _backends("sionna"))
def test_awgn_noise_power(backend):
    # |n|^2 ~ Exp(no): over N = 2e5 samples the mean has sigma = no/sqrt(N) ~ 0.22 % of no;
    # each real part carries no/2.
    n_samples, no = 200_000, 0.37
    y = channels.awgn(jax.random.key(0), jnp.zeros((100, 2000)), no, backend=backend)
    tol = 5 * no / np.sqrt(n_samples)
    assert float(jnp.mean(jnp.abs(y) ** 2)) == pytest.approx(no, abs=tol)
    assert float(jnp.var(jnp.real(y))) == pytest.approx(no / 2, abs=tol)
    assert abs(float(jnp.mean(jnp.real(y) * jnp.imag(y)))) < tol


@pytest.mark.parametrize("backend", BACKENDS)
def test_awgn_noise_broadcasts_over_batch(backend):
    # SNR points in the batch axis: row i gets noise power no[i].
    no = snr_db_to_no(jnp.array([0.0, 10.0, 20.0]))
    y = channels.awgn(jax.random.key(1), jnp.zeros((3, 50_000)), no, backend=backend)
    measured = jnp.mean(jnp.abs(y) ** 2, axis=-1)
    np.testing.assert_allclose(measured, no, rtol=5 / np.sqrt(50_000))


# JAX's own keys need no bridge: the Sionna path is the one at stake
@pytest.mark.parametrize("backend", _backends("jax"))
def test_same_key_same_channel(backend):
    x = _unit_symbols(0, (8, 3, 16))
    a = channels.flat_fading_mac(jax.random.key(5), x, 0.1, backend=backend)
    b = jax.jit(lambda k: channels.flat_fading_mac(k, x, 0.1, backend=backend))(jax.random.key(5))
    c = channels.flat_fading_mac(jax.random.key(6), x, 0.1, backend=backend)
    for u, v in zip(a, b, strict=True):  # jit may fuse differently: equal up to roundoff
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        a.h, channels.flat_fading_mac(jax.random.key(5), x, 0.1, backend=backend).h
    )
    assert not np.allclose(a.h, c.h)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rayleigh_gain_is_exponential(backend):
    h = channels.draw_flat_fading(jax.random.key(2), (20_000,), 2, backend=backend)
    power = np.asarray(jnp.abs(h) ** 2).ravel()
    assert stats.kstest(power, stats.expon.cdf).pvalue > KS_P_MIN
    phase = np.angle(np.asarray(h).ravel())
    assert stats.kstest(phase, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > KS_P_MIN


# [jax] too compares with Sionna's full gains, which it draws
@pytest.mark.parametrize("backend", _backends("sionna"))
def test_truncated_rayleigh_draws_match_the_full_gain(backend):
    # The shortcut's event |h|^2 >= threshold against the same event of Sionna's full
    # flat-fading gains: both are Bernoulli(exp(-threshold)); with n = 2e5 each the
    # standard error of a frequency is <= 0.11 %, and we allow 5 sigma of the difference.
    threshold, blocks, devices = 0.3, 25_000, 8
    active, noise = channels.truncated_rayleigh_draws(
        jax.random.key(3), blocks, devices, 6, threshold, backend=backend
    )
    h = channels.draw_flat_fading(jax.random.key(4), (blocks,), devices, backend="sionna")
    full = float(np.mean(np.abs(np.asarray(h)) ** 2 >= threshold))
    n = blocks * devices
    p = np.exp(-threshold)
    sigma = np.sqrt(2 * p * (1 - p) / n)
    assert active.shape == (blocks, devices) and set(np.unique(active)) == {0.0, 1.0}
    assert abs(float(jnp.mean(active)) - full) < 5 * sigma
    assert abs(full - p) < 5 * sigma / np.sqrt(2)
    # Unit-variance real noise, independent across reals (first two moments).
    assert noise.shape == (blocks, 6)
    assert stats.kstest(np.asarray(noise).ravel()[:50_000], stats.norm.cdf).pvalue > KS_P_MIN
    assert abs(float(jnp.mean(noise[:, 0] * noise[:, 3]))) < 5 / np.sqrt(blocks)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(num_reals=5), "num_reals"), (dict(threshold=0.0), "threshold"),
     (dict(backend="torch"), "backend")],
)  # fmt: skip
def test_truncated_rayleigh_draws_bad_input(kwargs, match):
    args = dict(num_blocks=2, num_devices=3, num_reals=4, threshold=0.1) | kwargs
    backend = args.pop("backend", "jax")
    with pytest.raises(ValueError, match=match):
        channels.truncated_rayleigh_draws(jax.random.key(0), **args, backend=backend)


# Sionna's Rician draws by default: test_twins_agree_in_distribution
@pytest.mark.parametrize("backend", _backends("sionna"))
def test_rician_amplitude_is_rice(backend):
    k_factor = 4.0
    h = channels.draw_flat_fading(
        jax.random.key(3), (20_000,), 1, fading="rician", k_factor=k_factor, backend=backend
    )
    amplitude = np.asarray(jnp.abs(h)).ravel()
    # |h| ~ Rice(nu = sqrt(K/(K+1)), sigma^2 = 1/(2(K+1))): scipy's b = nu/sigma.
    sigma = np.sqrt(1 / (2 * (k_factor + 1)))
    rice = stats.rice(b=np.sqrt(k_factor / (k_factor + 1)) / sigma, scale=sigma)
    assert stats.kstest(amplitude, rice.cdf).pvalue > KS_P_MIN


@pytest.mark.parametrize("backend", BACKENDS)
def test_receive_correlation(backend):
    # E[h_0 h_1^*] = rho for the exponential model; sigma of the estimate ~ 1/sqrt(N).
    rho, n = 0.7, 40_000
    h = channels.draw_flat_fading(
        jax.random.key(4), (n,), 1, num_rx_ant=3, rx_correlation=rho, backend=backend
    )[..., 0]
    cov = np.asarray(jnp.einsum("bi,bj->ij", h, jnp.conj(h))) / n
    expected = channels.exponential_correlation(3, rho)
    np.testing.assert_allclose(cov, expected, atol=5 / np.sqrt(n))


def test_twins_agree_exactly_for_the_same_channel_without_noise():
    x = _unit_symbols(0, (4, 5, 32))
    h = channels.draw_flat_fading(jax.random.key(1), (4,), 5, num_rx_ant=3)
    y_sionna = channels.apply_mac(jax.random.key(2), x, h, 0.0, backend="sionna")
    y_jax = channels.apply_mac(jax.random.key(2), x, h, 0.0, backend="jax")
    np.testing.assert_allclose(y_sionna, y_jax, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_jax, jnp.einsum("bmk,bkn->bmn", h, x), rtol=1e-6, atol=1e-6)


def test_twins_agree_in_distribution():
    x = jnp.ones((10_000, 2, 1), jnp.complex64)
    kw = dict(num_rx_ant=2, fading="rician", k_factor=1.5)
    y_s = channels.flat_fading_mac(jax.random.key(7), x, 0.5, backend="sionna", **kw).y
    y_j = channels.flat_fading_mac(jax.random.key(8), x, 0.5, backend="jax", **kw).y
    power_s, power_j = (np.asarray(jnp.abs(y) ** 2).ravel() for y in (y_s, y_j))
    assert stats.ks_2samp(power_s, power_j).pvalue > KS_P_MIN
    # E|y|^2 = K * E|h|^2 + no = 2.5
    for power in (power_s, power_j):
        assert power.mean() == pytest.approx(2.5, rel=0.05)


def test_block_fading_holds_over_the_block():
    x = jnp.ones((6, 1, 64), jnp.complex64)
    out = channels.flat_fading_mac(jax.random.key(0), x, 0.0)
    np.testing.assert_allclose(out.y[:, 0, :], jnp.broadcast_to(out.h[:, 0], (6, 64)), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_imperfect_csi_error_variance(backend):
    n, var = 50_000, 0.05
    x = jnp.zeros((n, 1, 1), jnp.complex64)
    out = channels.flat_fading_mac(
        jax.random.key(1), x, 0.1, receiver_csi_error_var=var, backend=backend
    )
    error = np.asarray(out.h_est - out.h).ravel()
    assert np.mean(np.abs(error) ** 2) == pytest.approx(var, rel=5 / np.sqrt(n))
    perfect = channels.flat_fading_mac(jax.random.key(1), x, 0.1, backend=backend)
    np.testing.assert_array_equal(perfect.h_est, perfect.h)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("snr_db", [-40.0, 0.0, 60.0])
def test_gradients_finite_at_extreme_snr_and_deep_fade(backend, snr_db):
    x0 = _unit_symbols(0, (2, 3, 8))
    h = jnp.array([[[1.0, 1e-20, 1e-30j]]] * 2, jnp.complex64)  # two devices in a deep fade
    no = snr_db_to_no(snr_db)

    def loss(scale):
        y = channels.apply_mac(jax.random.key(1), x0 * scale, h, no, backend=backend)
        return jnp.mean(jnp.abs(y) ** 2)

    g = jax.grad(loss)(1.0)
    assert np.isfinite(float(g)) and float(g) != 0


def test_gradient_matches_twin_and_finite_difference():
    """Through the bridged MAC, d/da of a smooth loss equals the JAX twin's for the same h."""
    x0 = _unit_symbols(0, (3, 4, 8))
    h = _unit_symbols(1, (3, 2, 4))  # any channel [batch, rx antennas, devices]

    def loss(a, backend):
        y = channels.apply_mac(jax.random.key(2), x0 * a, h, 0.0, backend=backend)
        return jnp.sum(jnp.real(y) ** 2 * jnp.imag(y))

    g_sionna = jax.grad(loss)(1.3, "sionna")
    g_jax = jax.grad(loss)(1.3, "jax")
    eps = 1e-2
    fd = (loss(1.3 + eps, "jax") - loss(1.3 - eps, "jax")) / (2 * eps)
    np.testing.assert_allclose(g_sionna, g_jax, rtol=1e-4)
    np.testing.assert_allclose(g_jax, fd, rtol=1e-3)


def test_k_equals_one_and_single_antenna():
    out = channels.flat_fading_mac(jax.random.key(0), jnp.ones((2, 1, 4)), 0.01)
    assert out.y.shape == (2, 1, 4) and out.h.shape == (2, 1, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(no=-1.0), "no"),
        (dict(no=float("nan")), "no"),
        (dict(x=jnp.zeros((2, 0, 4), jnp.complex64)), "num_devices"),
        (dict(x=jnp.zeros((4,), jnp.complex64)), "x must have shape"),
        (dict(backend="torch"), "backend"),
        (dict(fading="nakagami"), "fading"),
        (dict(num_rx_ant=0), "num_rx_ant"),
        (dict(rx_correlation=1.0), "rx_correlation"),
        (dict(receiver_csi_error_var=-0.1), "receiver_csi_error_var"),
        (dict(k_factor=2.0), "k_factor=2.0 would have no effect"),  # on Rayleigh fading
        (dict(no=jnp.ones((5,))), "no must broadcast"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, match):
    args = dict(x=jnp.ones((2, 3, 4), jnp.complex64), no=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        channels.flat_fading_mac(jax.random.key(0), **args)


def test_apply_mac_shape_mismatch():
    with pytest.raises(ValueError, match="h must have shape"):
        channels.apply_mac(jax.random.key(0), jnp.ones((2, 3, 4)), jnp.ones((2, 1, 2)), 0.1)


# CDL is slow (building and compiling Sionna's CDL model takes some 15 s on 2 cores): the
# default run checks the OFDM MAC's contract on TDL-A, which shares every line of
# phy.channels.ofdm but the construction of the 3GPP model.
@pytest.mark.parametrize("model", ["tdl-a", pytest.param("cdl-c", marks=pytest.mark.slow)])
def test_ofdm_mac_superposition_and_unit_energy(model):
    x = _unit_symbols(0, (2, 3, 14, 48))
    # 1 us delay spread over 1.44 MHz of subcarriers: clearly frequency-selective.
    out = channels.ofdm_mac(jax.random.key(1), x, 0.0, model=model, num_rx_ant=2, delay_spread=1e-6)
    assert out.y.shape == (2, 2, 14, 48) and out.h.shape == (2, 2, 3, 14, 48)
    np.testing.assert_allclose(out.y, jnp.sum(out.h * x[:, None], axis=2), rtol=1e-4, atol=1e-4)
    # Frequency-selective: the gain varies across subcarriers.
    assert float(jnp.std(jnp.abs(out.h[0, 0, 0, 0]))) > 0.05
    again = channels.ofdm_mac(
        jax.random.key(1), x, 0.0, model=model, num_rx_ant=2, delay_spread=1e-6
    )
    np.testing.assert_array_equal(again.h, out.h)


# slow (one more Sionna TDL-A program): by default Sionna's TDL-A gains match the
# twin's in law (tests/phy/test_ofdm_twin.py: test_tdl_a_twin_against_sionna, over a
# band a per-draw normalisation would narrow), whose TDL-A gain is Exp(1)
# (test_rayleigh_tdl_gain_is_exponential[tdl-a])
@pytest.mark.slow
def test_ofdm_gain_is_rayleigh_faded_with_unit_mean():
    """TDL-A is a sum of Rayleigh taps: on any one subcarrier the gain |h|^2 of
    independent draws is Exp(1), whatever the band (a per-draw normalisation
    over a narrow grid would pin it near 1 instead)."""
    draws = 2000
    x = jnp.ones((draws, 1, 1, 4), jnp.complex64)
    out = channels.ofdm_mac(jax.random.key(2), x, 0.0, model="tdl-a")
    gain = np.abs(np.asarray(out.h[:, 0, 0, 0, 0])) ** 2
    # mean 1 within 5 standard errors (std of Exp(1) is 1)
    assert abs(gain.mean() - 1.0) < 5 / np.sqrt(draws)
    assert stats.kstest(gain, "expon").pvalue > 1e-3
    # deep fades as often as Rayleigh fading has them: P(|h|^2 < 0.1) = 1 - e^-0.1
    faded, expected = np.mean(gain < 0.1), -np.expm1(-0.1)
    assert abs(faded - expected) < 5 * np.sqrt(expected * (1 - expected) / draws)


def test_ofdm_bad_model():
    with pytest.raises(ValueError, match="model"):
        channels.ofdm_mac(jax.random.key(0), jnp.ones((1, 1, 2, 8)), 0.1, model="tdl-z")
