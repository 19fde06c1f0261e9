"""Differential privacy of shared outputs: the analytic Gaussian mechanism and its accounting.

Calibration (host side, float64): the Gaussian mechanism ``f(D) + N(0, σ² I)``
with L2 sensitivity ``Δ`` is (ε, δ)-DP iff (Balle & Wang, ICML 2018, Thm. 8)::

    δ(ε, σ) = Φ(Δ/(2σ) - εσ/Δ) - e^ε Φ(-Δ/(2σ) - εσ/Δ) <= δ

:func:`analytic_gaussian_sigma` finds the smallest such σ by bisection in
log σ; :func:`analytic_gaussian_epsilon` inverts for ε at a given σ. Both are
tighter than the classical ``σ = sqrt(2 ln(1.25/δ)) Δ / ε`` (valid for ε < 1).

Accounting (as in the over-the-air-ensemble paper, Yilmaz et al.): a query
releases the devices' outputs, each of sensitivity ``Δ`` (``√2`` for one-hot
votes and softmax outputs: two such vectors differ by at most ``√2`` in L2).

The mechanism as built matches that accounting:

1. each device bounds its contribution *before* the noise: its output is
   projected onto the probability simplex (:func:`project_to_simplex`, a
   no-op on softmax outputs and one-hot votes), so that ``Δ = √2`` is
   enforced, not assumed;
2. it adds its Gaussian noise;
3. nothing shrinks or clips the noisy vector afterwards over the air: it is
   sent through a fixed affine map (``Normalization(clip=False)``) whose scale
   covers the clean value plus the noise's norm with probability ``1 - p``
   (:func:`noisy_value_scale`). With probability at most ``p`` per device and
   block the transmission exceeds the power budget; it is sent anyway.

The released sum then carries exactly Gaussian noise of the accounted
variance. Orthogonally each device's noisy output is (ε, δ)-DP on its own, and
what its digital link does with it afterwards (quantising, clipping to the
quantiser's range, dropping a failed block) is post-processing.

* Over the air the receiver sees only the sum, once: the noise required on
  it, ``σ²``, is shared. The effective channel noise on the sum counts towards
  it, and the K devices add the rest in equal parts:
  ``(σ² - channel)⁺ / K`` each (:func:`over_the_air_dp_noise_variance`).
* Orthogonally each device's output is seen alone: each must carry
  ``(σ² - its own effective channel noise)⁺`` (:func:`orthogonal_dp_noise_variance`);
  a digital link delivers values exactly or not at all, so its channel noise
  is 0.

Variances here are per entry, in the units of the values (not of the
normalised symbols): :func:`aggregate_channel_noise_variance` converts the
receiver's noise into them.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import log_ndtr, ndtr
from scipy.stats import chi2

from airinfer.ota._checks import check_positive, check_positive_int
from airinfer.ota.encoding import Normalization, num_channel_uses

__all__ = [
    "SOFTMAX_SENSITIVITY",
    "analytic_gaussian_delta",
    "analytic_gaussian_sigma",
    "analytic_gaussian_epsilon",
    "classical_gaussian_sigma",
    "achieved_epsilon",
    "aggregate_channel_noise_variance",
    "over_the_air_dp_noise_variance",
    "orthogonal_dp_noise_variance",
    "add_gaussian_noise",
    "project_to_simplex",
    "noisy_value_scale",
    "OverTheAirPrivacyPlan",
    "over_the_air_privacy_plan",
]

#: L2 sensitivity of a one-hot vote or a softmax output: ``||p - q|| <= √2``.
SOFTMAX_SENSITIVITY = math.sqrt(2.0)

_BISECTION_STEPS = 200


def _check_delta(delta):
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")


def analytic_gaussian_delta(epsilon, sigma, sensitivity=SOFTMAX_SENSITIVITY):
    """δ(ε, σ) of the Gaussian mechanism with L2 sensitivity Δ (exact, float64).

    ``Φ(Δ/(2σ) - εσ/Δ) - e^ε Φ(-Δ/(2σ) - εσ/Δ)``; the second term is taken in
    log space so that large ε do not overflow. Scalars or broadcastable arrays.
    """
    epsilon = np.asarray(epsilon, np.float64)
    sigma = np.asarray(sigma, np.float64)
    ratio = sensitivity / (2 * sigma)
    shift = epsilon * sigma / sensitivity
    return ndtr(ratio - shift) - np.exp(epsilon + log_ndtr(-ratio - shift))


def analytic_gaussian_sigma(epsilon, delta, sensitivity=SOFTMAX_SENSITIVITY):
    """The smallest σ for which the Gaussian mechanism is (ε, δ)-DP (bisection in log σ).

    Parameters:
        epsilon: > 0. delta: in (0, 1). sensitivity: L2 sensitivity Δ > 0.

    Output:
        float σ with ``δ(ε, σ) <= delta`` within a relative 1e-12 of the bound.
    """
    check_positive("epsilon", epsilon)
    check_positive("sensitivity", sensitivity)
    _check_delta(delta)
    # delta(eps, sigma) decreases in sigma: bracket, then bisect log(sigma).
    low = high = sensitivity
    while analytic_gaussian_delta(epsilon, low, sensitivity) <= delta:
        low /= 2
    while analytic_gaussian_delta(epsilon, high, sensitivity) > delta:
        high *= 2
    log_low, log_high = math.log(low), math.log(high)
    for _ in range(_BISECTION_STEPS):
        middle = (log_low + log_high) / 2
        if analytic_gaussian_delta(epsilon, math.exp(middle), sensitivity) > delta:
            log_low = middle
        else:
            log_high = middle
        if log_high - log_low < 1e-12:
            break
    return math.exp(log_high)


def analytic_gaussian_epsilon(sigma, delta, sensitivity=SOFTMAX_SENSITIVITY):
    """The smallest ε for which noise σ gives (ε, δ)-DP; 0 if even ε = 0 holds.

    Parameters:
        sigma: > 0, noise standard deviation per entry. delta: in (0, 1).
        sensitivity: Δ > 0.

    Output:
        float ε >= 0 (bisection, absolute precision 1e-10).
    """
    check_positive("sigma", sigma)
    check_positive("sensitivity", sensitivity)
    _check_delta(delta)
    if analytic_gaussian_delta(0.0, sigma, sensitivity) <= delta:
        return 0.0
    low, high = 0.0, 1.0
    while analytic_gaussian_delta(high, sigma, sensitivity) > delta:
        low, high = high, 2 * high
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if analytic_gaussian_delta(middle, sigma, sensitivity) > delta:
            low = middle
        else:
            high = middle
        if high - low < 1e-10:
            break
    return high


def achieved_epsilon(noise_variance, delta, sensitivity=SOFTMAX_SENSITIVITY):
    """ε achieved per point by a total Gaussian noise variance on the released output.

    ``noise_variance``: scalar or array (e.g. per SNR point: the DP noise the
    devices added plus the effective channel noise, per entry, value units).
    Output: float64 array of the same shape (``inf`` where the variance is 0).
    """
    variance = np.asarray(noise_variance, np.float64)
    out = np.full(variance.shape, np.inf)
    for index in np.ndindex(variance.shape):
        if variance[index] > 0:
            out[index] = analytic_gaussian_epsilon(math.sqrt(variance[index]), delta, sensitivity)
    return out


def classical_gaussian_sigma(epsilon, delta, sensitivity=SOFTMAX_SENSITIVITY):
    """The classical calibration ``sqrt(2 ln(1.25/δ)) Δ / ε`` (Dwork & Roth; valid for ε < 1)."""
    check_positive("epsilon", epsilon)
    check_positive("sensitivity", sensitivity)
    _check_delta(delta)
    return math.sqrt(2 * math.log(1.25 / delta)) * sensitivity / epsilon


def aggregate_channel_noise_variance(no, amplitude, normalization, num_values):
    """Channel noise on the receiver's estimate of the **sum** of the values, per entry.

    The receiver reads the sum as ``K offset + (scale / sqrt(n)) y / a`` where
    every device arrives with amplitude ``a`` (``sqrt(P threshold)`` under
    truncated inversion, ``sqrt(P)`` on AWGN) and ``y`` carries CN(0, no)
    noise, ``no / 2`` per real: the variance is ``scale² no / (2 n a²)``.

    Input: ``no`` (after repetitions) and ``amplitude`` arrays or floats;
    ``normalization``: :class:`airinfer.ota.encoding.Normalization`; ``num_values`` C.
    Output: same shape as the broadcast of ``no`` and ``amplitude``.
    """
    n = num_channel_uses(num_values)
    return normalization.scale**2 * jnp.asarray(no) / (2 * n * jnp.asarray(amplitude) ** 2)


def over_the_air_dp_noise_variance(required_variance, channel_noise_variance, num_devices):
    """Per-device DP noise over the air: ``max(σ² - channel, 0) / K`` (jnp, broadcasts).

    ``num_devices`` may be an array (e.g. the devices active in each block);
    fewer than one is treated as one.
    """
    shortfall = jnp.maximum(jnp.asarray(required_variance) - channel_noise_variance, 0.0)
    return shortfall / jnp.maximum(jnp.asarray(num_devices, jnp.float32), 1.0)


def orthogonal_dp_noise_variance(required_variance, channel_noise_variance=0.0):
    """Per-device DP noise in orthogonal slots: ``max(σ² - its own channel noise, 0)``."""
    return jnp.maximum(jnp.asarray(required_variance) - channel_noise_variance, 0.0)


def add_gaussian_noise(key, values, variance):
    """``values + N(0, variance)`` entrywise; ``variance`` broadcastable to ``values.shape[:-1]``
    (one variance per device and inference) or a scalar. ``[..., C]`` float32."""
    values = jnp.asarray(values, jnp.float32)
    std = jnp.sqrt(jnp.asarray(variance, jnp.float32))
    if std.ndim:
        std = std[..., None]
    noise = jax.random.normal(key, (values.size,), jnp.float32).reshape(values.shape)
    return values + std * noise


def project_to_simplex(values):
    """Euclidean projection of each vector onto the probability simplex (sort-based).

    ``max(v - θ, 0)`` with θ such that the entries sum to 1 (Held, Wolfe and
    Crowder; Duchi et al., ICML 2008). Any two outputs then differ by at most
    :data:`SOFTMAX_SENSITIVITY` = √2 in L2: the sensitivity the accounting
    uses is enforced. Softmax outputs and one-hot votes come back unchanged
    (up to float rounding of their sum).

    Input ``[..., C]`` float; output ``[..., C]`` float32.
    """
    values = jnp.asarray(values, jnp.float32)
    ordered = -jnp.sort(-values, axis=-1)
    excess = jnp.cumsum(ordered, axis=-1) - 1.0
    index = jnp.arange(1, values.shape[-1] + 1, dtype=jnp.float32)
    support = jnp.sum(ordered - excess / index > 0, axis=-1, keepdims=True)  # >= 1
    theta = jnp.take_along_axis(excess, support - 1, axis=-1) / support
    return jnp.maximum(values - theta, 0.0)


def noisy_value_scale(clean_radius, noise_variance, num_values, excess_probability):
    """The scale of a fixed affine map for values carrying noise ``N(0, noise_variance I_C)``.

    ``r + σ sqrt(F⁻¹(1 - p))`` with ``F`` the χ² distribution with ``C`` degrees
    of freedom: a clean value within ``r`` of the offset plus its noise stays
    within that radius with probability at least ``1 - p`` (triangle
    inequality), so a device's energy per symbol exceeds 1 (its power budget)
    with probability at most ``p``.

    Parameters:
        clean_radius: r > 0, the bound on the clean values' ``||v - offset||``.
        noise_variance: σ² >= 0 per entry.
        num_values: C.
        excess_probability: p in (0, 1).

    Output:
        float scale.
    """
    check_positive("clean_radius", clean_radius)
    check_positive_int("num_values", num_values)
    if not (math.isfinite(noise_variance) and noise_variance >= 0):
        raise ValueError(f"noise_variance must be finite and >= 0, got {noise_variance!r}")
    _check_excess_probability(excess_probability)
    quantile = chi2.ppf(1.0 - excess_probability, num_values)
    return clean_radius + math.sqrt(noise_variance * quantile)


def _check_excess_probability(p):
    if not 0 < p < 1:
        raise ValueError(f"power_excess_probability must be in (0, 1), got {p!r}")


class OverTheAirPrivacyPlan(NamedTuple):
    """What each device adds and how it sends, for one privacy level over the air.

    Attributes:
        device_noise_variance: per entry, what each of the K devices adds.
        normalization: the devices' fixed map (``clip=False``), scale from
            :func:`noisy_value_scale`.
        channel_noise_variance: the channel's noise on the released sum, per
            entry, value units (it grows with the scale).
        total_noise_variance: ``K device + channel``, the Gaussian noise on the
            released sum: the required variance, or the channel's alone where
            that is more.
    """

    device_noise_variance: float
    normalization: Normalization
    channel_noise_variance: float
    total_noise_variance: float


def over_the_air_privacy_plan(required_variance, no, amplitude, base, num_values, num_devices,
                              excess_probability):  # fmt: skip
    """Each device's DP noise over the air such that the released sum carries exactly
    ``required_variance`` (channel noise included), and the map the devices send with.

    The channel noise on the sum is ``c s²`` with ``c = no / (2 n a²)`` and ``s``
    the scale ``r + q σ_d`` (:func:`noisy_value_scale`, ``q² = F⁻¹(1 - p)``), so
    ``K σ_d² + c (r + q σ_d)² = σ²`` is a quadratic in ``σ_d``: its positive
    root, or ``σ_d = 0`` where the channel alone brings ``c r² >= σ²``.

    Parameters:
        required_variance: σ² >= 0 on the released sum, per entry.
        no: noise power per complex symbol (after repetitions).
        amplitude: a > 0, every device's receive amplitude (all K transmit).
        base: :class:`~airinfer.ota.encoding.Normalization` of the clean values
            (its ``scale`` bounds them: r).
        num_values: C. num_devices: K.
        excess_probability: p in (0, 1), the allowed probability that a device's
            block exceeds its power budget.

    Output:
        :class:`OverTheAirPrivacyPlan` (host floats).
    """
    check_positive("amplitude", amplitude)
    check_positive_int("num_devices", num_devices)
    _check_excess_probability(excess_probability)
    per_unit = float(aggregate_channel_noise_variance(no, amplitude, Normalization(), num_values))
    radius = base.scale
    root = math.sqrt(chi2.ppf(1.0 - excess_probability, num_values))
    a = num_devices + per_unit * root**2
    b = 2 * per_unit * radius * root
    c = per_unit * radius**2 - required_variance
    device_std = 0.0 if c >= 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    scale = noisy_value_scale(radius, device_std**2, num_values, excess_probability)
    normalization = Normalization(base.offset, scale, clip=False)
    channel = per_unit * scale**2
    return OverTheAirPrivacyPlan(
        device_std**2, normalization, channel, num_devices * device_std**2 + channel
    )
