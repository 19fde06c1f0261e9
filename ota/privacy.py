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

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import log_ndtr, ndtr

from airinfer.ota._checks import check_positive
from airinfer.ota.encoding import num_channel_uses

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
