"""The analytic Gaussian mechanism and the over-the-air vs orthogonal DP accounting."""

import math
from dataclasses import replace as dataclasses_replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, stats

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


def reference_simplex_projection(v):
    """argmin_p ||p - v|| over the simplex: ``max(v - θ, 0)`` with θ found by root-finding
    (float64; independent of the sort-based code)."""
    return np.maximum(v - optimize.brentq(lambda t: np.maximum(v - t, 0).sum() - 1,
                                          v.min() - 1, v.max()), 0)  # fmt: skip


def test_projection_onto_the_simplex_enforces_the_sensitivity():
    rng = np.random.default_rng(0)
    v = rng.normal(scale=2.0, size=(500, 10))
    p = np.asarray(ota.project_to_simplex(v))
    np.testing.assert_allclose(p, [reference_simplex_projection(x) for x in v], atol=2e-6)
    assert p.min() >= 0 and np.allclose(p.sum(-1), 1, atol=1e-5)
    # any two outputs lie within the sensitivity the accounting uses
    distances = np.linalg.norm(p[:, None] - p[None], axis=-1)
    assert distances.max() <= ota.SOFTMAX_SENSITIVITY + 1e-6
    # softmax outputs and one-hot votes pass unchanged
    probs = np.asarray(jax.nn.softmax(jnp.asarray(v)))
    np.testing.assert_allclose(ota.project_to_simplex(probs), probs, atol=1e-6)
    votes = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 500)]
    np.testing.assert_array_equal(ota.project_to_simplex(votes), votes)


def test_noisy_value_scale_is_exceeded_with_the_stated_probability(key):
    p, variance, num_values = 0.05, 2.0, 10
    # Noise alone (clean radius ~0): the norm exceeds the scale with probability p exactly.
    scale = ota.noisy_value_scale(1e-9, variance, num_values, p)
    assert scale == pytest.approx(math.sqrt(variance * stats.chi2.ppf(1 - p, num_values)))
    noise = ota.add_gaussian_noise(key, jnp.zeros((200_000, num_values)), variance)
    rate = float(jnp.mean(jnp.linalg.norm(noise, axis=-1) > scale))
    # binomial std sqrt(p(1-p)/2e5) = 4.9e-4; 5 std
    assert rate == pytest.approx(p, abs=2.5e-3)
    # With a clean one-hot vote on the ball's edge the triangle inequality keeps it <= p.
    base = ota.Normalization.simplex(num_values)
    scale = ota.noisy_value_scale(base.scale, variance, num_values, p)
    vote = jnp.zeros(num_values).at[0].set(1.0) - base.offset
    rate = float(jnp.mean(jnp.linalg.norm(vote + noise, axis=-1) > scale))
    assert rate <= p + 2.5e-3


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 4.0, 1e4])
def test_the_plan_puts_exactly_the_required_noise_on_the_sum(epsilon):
    base, num_values, num_devices, no, p = ota.Normalization.simplex(10), 10, 20, 1.0, 1e-3
    required = ota.analytic_gaussian_sigma(epsilon, 1e-5) ** 2
    plan = ota.over_the_air_privacy_plan(required, no, 1.0, base, num_values, num_devices, p)
    assert not plan.normalization.clip and plan.normalization.offset == base.offset
    scale = ota.noisy_value_scale(base.scale, plan.device_noise_variance, num_values, p)
    assert plan.normalization.scale == pytest.approx(scale, rel=1e-12)
    channel = float(ota.aggregate_channel_noise_variance(no, 1.0, plan.normalization, num_values))
    assert plan.channel_noise_variance == pytest.approx(channel, rel=1e-6)
    assert plan.total_noise_variance == pytest.approx(
        num_devices * plan.device_noise_variance + channel, rel=1e-6
    )
    if epsilon < 1e4:
        assert plan.total_noise_variance == pytest.approx(required, rel=1e-9)
    else:  # the channel alone brings more than privacy needs: the devices add nothing
        assert plan.device_noise_variance == 0.0 and plan.total_noise_variance > required


def test_a_clipping_normalisation_is_affine_without_clip():
    norm = ota.Normalization(offset=0.1, scale=2.0, clip=False)
    values = jnp.asarray(np.random.default_rng(1).normal(scale=10.0, size=(50, 10)))
    np.testing.assert_allclose(
        ota.denormalize(ota.normalize(values, norm), norm), values, rtol=1e-5, atol=1e-5
    )
    clipped = ota.normalize(values, dataclasses_replace(norm, clip=True))
    assert float(jnp.max(jnp.sum(clipped**2, -1))) <= 5 * (1 + 1e-5)  # n = 5, energy <= 1


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: ota.analytic_gaussian_sigma(0.0, 1e-5), "epsilon"),
        (lambda: ota.analytic_gaussian_sigma(1.0, 0.0), "delta"),
        (lambda: ota.analytic_gaussian_sigma(1.0, 1e-5, -1.0), "sensitivity"),
        (lambda: ota.analytic_gaussian_epsilon(0.0, 1e-5), "sigma"),
        (lambda: ota.classical_gaussian_sigma(1.0, 1.5), "delta"),
        (lambda: ota.noisy_value_scale(1.0, 1.0, 10, 0.0), "power_excess_probability"),
        (lambda: ota.noisy_value_scale(1.0, -1.0, 10, 0.1), "noise_variance"),
        (lambda: ota.Normalization(clip=1), "clip"),
    ],
)
def test_bad_privacy_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()
