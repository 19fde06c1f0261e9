"""The analytic Gaussian mechanism and the over-the-air vs orthogonal DP accounting."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from airinfer import ota


def hockey_stick_delta(epsilon, sigma, sensitivity):
    """δ = ∫ max(p(x) - e^ε q(x), 0) dx for p = N(0, σ²), q = N(Δ, σ²): the exact privacy
    profile of the Gaussian mechanism, by quadrature (independent of the closed form)."""

    def integrand(x):
        return max(
            stats.norm.pdf(x, 0, sigma) - math.exp(epsilon) * stats.norm.pdf(x, sensitivity, sigma),
            0.0,
        )

    # p > e^ε q exactly left of x* = Δ/2 - εσ²/Δ.
    crossing = sensitivity / 2 - epsilon * sigma**2 / sensitivity
    value, _ = integrate.quad(integrand, crossing - 40 * sigma, crossing, limit=200)
    return value


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0, 4.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-3])
def test_calibrated_sigma_meets_delta_and_is_minimal(epsilon, delta):
    sensitivity = ota.SOFTMAX_SENSITIVITY
    sigma = ota.analytic_gaussian_sigma(epsilon, delta, sensitivity)
    assert ota.analytic_gaussian_delta(epsilon, sigma, sensitivity) <= delta
    assert ota.analytic_gaussian_delta(epsilon, sigma * (1 - 1e-6), sensitivity) > delta
    assert ota.analytic_gaussian_delta(epsilon, sigma, sensitivity) == pytest.approx(
        delta, rel=1e-6
    )
    # The closed form is the exact privacy profile.
    assert hockey_stick_delta(epsilon, sigma, sensitivity) == pytest.approx(delta, rel=1e-4)


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 0.9])
def test_analytic_sigma_beats_the_classical_calibration(epsilon):
    for delta in (1e-6, 1e-5, 1e-3):
        analytic = ota.analytic_gaussian_sigma(epsilon, delta, 1.0)
        classical = ota.classical_gaussian_sigma(epsilon, delta, 1.0)
        assert analytic < classical
        # The classical σ is (ε, δ)-DP too (it is valid for ε < 1).
        assert ota.analytic_gaussian_delta(epsilon, classical, 1.0) <= delta


def test_epsilon_inverts_sigma():
    for epsilon in (0.05, 0.3, 1.0, 3.0, 10.0):
        sigma = ota.analytic_gaussian_sigma(epsilon, 1e-5, math.sqrt(2))
        assert ota.analytic_gaussian_epsilon(sigma, 1e-5, math.sqrt(2)) == pytest.approx(
            epsilon, rel=1e-6
        )
    sigmas = [ota.analytic_gaussian_sigma(e, 1e-5) for e in (0.5, 2.0)]
    np.testing.assert_allclose(
        ota.achieved_epsilon(np.square([[sigmas[0]], [sigmas[1]]]), 1e-5),
        [[0.5], [2.0]],
        rtol=1e-6,
    )
    assert ota.achieved_epsilon(0.0, 1e-5) == np.inf
    # So much noise that even ε = 0 holds.
    assert ota.analytic_gaussian_epsilon(1e6, 1e-5, 1.0) == 0.0


def test_accounting_over_the_air_shares_the_noise_orthogonal_does_not():
    required = ota.analytic_gaussian_sigma(1.0, 1e-5) ** 2
    channel = 0.25 * required
    per_device_air = ota.over_the_air_dp_noise_variance(required, channel, 20)
    per_device_orth = ota.orthogonal_dp_noise_variance(required, 0.0)
    assert float(per_device_air) == pytest.approx(0.75 * required / 20, rel=1e-6)
    assert float(per_device_orth) == pytest.approx(required, rel=1e-6)
    # Channel noise above the requirement: nobody adds anything.
    assert float(ota.over_the_air_dp_noise_variance(required, 2 * required, 20)) == 0.0
    # Per-block numbers of active devices broadcast; zero active counts as one.
    active = jnp.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(
        ota.over_the_air_dp_noise_variance(1.0, 0.0, active), [1.0, 1.0, 0.25]
    )


def test_aggregate_channel_noise_matches_the_receiver(key):
    """The noise of the over-the-air sum estimate, measured, equals the formula."""
    snr_db, num_devices = 0.0, 4
    norm = ota.Normalization.simplex(10)
    cfg = ota.AirCompConfig(channel="awgn", backend="jax")
    values = jnp.full((40_000, num_devices, 10), 0.1)
    estimate = ota.over_the_air_average(key, values, snr_db, cfg, norm)
    measured = float(jnp.var(num_devices * estimate.average))  # the sum's noise, per entry
    expected = float(
        ota.aggregate_channel_noise_variance(ota.noise_power(snr_db, cfg), 1.0, norm, 10)
    )
    # Sample variance of 400 000 Gaussian entries: relative std 0.2 %.
    assert measured == pytest.approx(expected, rel=0.02)


def test_added_noise_has_the_requested_variance(key):
    values = jnp.zeros((100_000, 2, 3))
    noisy = ota.add_gaussian_noise(key, values, jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(jnp.var(noisy, axis=(0, 2)), [1.0, 4.0], rtol=0.02)


def test_widened_normalisation_keeps_noisy_votes_within_power(key):
    sigma2 = ota.analytic_gaussian_sigma(1.0, 1e-5) ** 2 / 20
    base = ota.Normalization.simplex(10)
    norm = base.widened(sigma2, 10)
    assert norm.scale == pytest.approx(math.sqrt(base.scale**2 + 10 * sigma2))
    votes = jax.nn.one_hot(np.random.default_rng(0).integers(0, 10, (5000, 20)), 10)
    noisy = ota.add_gaussian_noise(key, votes, sigma2)
    energy = jnp.mean(jnp.abs(ota.values_to_symbols(noisy, norm)) ** 2, axis=-1)
    assert float(energy.max()) <= 1.0 + 1e-5


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: ota.analytic_gaussian_sigma(0.0, 1e-5), "epsilon"),
        (lambda: ota.analytic_gaussian_sigma(1.0, 0.0), "delta"),
        (lambda: ota.analytic_gaussian_sigma(1.0, 1e-5, -1.0), "sensitivity"),
        (lambda: ota.analytic_gaussian_epsilon(0.0, 1e-5), "sigma"),
        (lambda: ota.classical_gaussian_sigma(1.0, 1.5), "delta"),
    ],
)
def test_bad_privacy_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()
