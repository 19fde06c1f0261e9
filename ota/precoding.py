"""Device pre-processing for over-the-air aggregation, and the receive combiners.

Each device k scales its normalised symbols (energy per symbol <= 1, see
:mod:`airinfer.ota.encoding`) by a complex coefficient ``b_k`` computed from its own
estimate ``g_k`` of its effective channel to the receiver, so that the
receiver sees ``y = sum_k g_k b_k x_k + n``. The receiver knows which devices
transmitted and the amplitude ``a_k`` with which it should expect each of them
(``g_k b_k ≈ a_k`` when the estimate is exact); it divides by ``sum_k a_k``.

Shapes: effective channels ``[..., K, L]`` with the device axis second to
last; ``L = 1`` for flat block fading (one gain per block), ``L = n`` for
OFDM (one gain per resource element). Masks broadcast to ``[..., K, L]``.

The power constraint is a convention, named by ``power_constraint``:
``"peak"`` (the default) keeps ``|b_k|^2 <= P`` on every block, for every
precoder; ``"average"`` (truncated inversion only: broadband analog
aggregation, Zhu, Wang and Huang) keeps the average of ``|b_k|^2`` over the
fading at ``P`` and lets single blocks exceed it. Precoders divide by channels
only through double-``where`` guards, so that gradients stay finite in deep
fades.

With several receive antennas the devices precode against their effective
channels ``g_k = w^H h_k`` after the receiver's combiner ``w``
(:mod:`airinfer.ota.combining`).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from scipy.special import exp1

from airinfer.ota._checks import check_choice, check_nonnegative, check_positive

__all__ = [
    "PRECODINGS",
    "POWER_CONSTRAINTS",
    "Precoding",
    "truncated_inversion_amplitude",
    "truncated_channel_inversion",
    "full_channel_inversion",
    "phase_compensation",
    "optimal_denoising_factor",
    "optimal_power_control",
    "precode",
    "check_power_constraint",
    "aggregation_mse",
]

PRECODINGS = ("truncated", "full", "phase", "optimal")
POWER_CONSTRAINTS = ("peak", "average")

# Full inversion leaves out fades deeper than this: the weakest device sets the
# common amplitude of everybody, which must stay a finite (if useless) number.
MIN_CHANNEL_POWER = 1e-12


class Precoding(NamedTuple):
    """The devices' transmit coefficients and what the receiver expects of them.

    Attributes:
        coefficients: ``[..., K, L]`` complex64 ``b_k``; zero for silent devices.
        amplitudes: ``[..., K, L]`` float32 ``a_k >= 0``, the receive amplitude
            the receiver attributes to device k (zero if it stayed silent).
        reference: ``[..., L]`` float32, the amplitude of one device at the
            design point (``sqrt(rho)`` for inversion, ``sqrt(P)`` for phase
            compensation): the weight the receiver gives a value it holds locally.
    """

    coefficients: jax.Array
    amplitudes: jax.Array
    reference: jax.Array


def _channel_power(g):
    return jnp.real(g) ** 2 + jnp.imag(g) ** 2


def _safe_inverse(g, use):
    """``1 / g`` where ``use``, else 0, with finite gradients everywhere (double-where)."""
    return jnp.where(use, 1.0 / jnp.where(use, g, 1.0), 0.0).astype(jnp.complex64)


def _mask(transmit, g):
    if transmit is None:
        return jnp.ones(g.shape, bool)
    return jnp.broadcast_to(jnp.asarray(transmit) > 0, g.shape)


def truncated_inversion_amplitude(power, threshold, power_constraint="peak", mean_gain=1.0):
    """The receive amplitude ``sqrt(rho)`` of truncated channel inversion.

    A device with ``|g|^2 >= threshold`` sends ``b = sqrt(rho) / g``, power ``rho / |g|^2``.

    * ``"peak"``: ``rho = P threshold``, the largest common receive power that
      every active device reaches within ``P`` on every block.
    * ``"average"`` (Zhu, Wang and Huang, broadband analog aggregation): the
      power averaged over the fading is ``P``. For ``|g|^2`` exponential with
      mean ``m`` (Rayleigh fading), ``E[rho / |g|^2; |g|^2 >= threshold] = rho
      E1(threshold / m) / m``, so ``rho = P m / E1(threshold / m)`` (``E1`` the
      exponential integral); a single block may need up to ``rho / threshold``.
      At threshold 0.1, ``m = 1``: ``rho = 0.549 P``, 5.5x (7.4 dB) the peak's.

    In both, a device takes part with probability ``exp(-threshold / m)``.

    Parameters:
        power: P > 0. threshold: > 0, on ``|g|^2``.
        power_constraint: ``"peak"`` or ``"average"``.
        mean_gain: m > 0, the mean of the devices' ``|g|^2`` estimates (``"average"`` only).

    Output:
        float ``sqrt(rho)``.
    """
    check_positive("power", power)
    check_positive("threshold", threshold)
    check_choice("power_constraint", power_constraint, POWER_CONSTRAINTS)
    check_positive("mean_gain", mean_gain)
    if power_constraint == "peak":
        return math.sqrt(power * threshold)
    return math.sqrt(power * mean_gain / float(exp1(threshold / mean_gain)))


def truncated_channel_inversion(g, power, threshold, transmit=None, power_constraint="peak",
                                mean_gain=1.0):  # fmt: skip
    """Truncated channel inversion: invert the channel unless it is weaker than a threshold.

    Device k sends with ``b_k = sqrt(rho) / g_k`` if ``|g_k|^2 >= threshold``
    and stays silent otherwise; ``sqrt(rho)`` from
    :func:`truncated_inversion_amplitude`: under ``"peak"``, ``rho = P
    threshold`` and ``|b_k|^2 = rho / |g_k|^2 <= P`` always; under
    ``"average"`` the power meets ``P`` on average over Rayleigh fading.

    Input:
        g: ``[..., K, L]`` complex, the devices' estimates of their effective channels.
        power: P > 0, per-device energy per symbol (per block or on average).
        threshold: > 0, the gain threshold on ``|g|^2``.
        transmit: optional mask broadcastable to ``g``; devices outside it stay silent.
        power_constraint, mean_gain: see :func:`truncated_inversion_amplitude`.

    Output:
        :class:`Precoding`.
    """
    amplitude = truncated_inversion_amplitude(power, threshold, power_constraint, mean_gain)
    g = jnp.asarray(g, jnp.complex64)
    active = _mask(transmit, g) & (_channel_power(g) >= threshold)
    amplitude = jnp.float32(amplitude)
    coefficients = amplitude * _safe_inverse(g, active)
    amplitudes = jnp.where(active, amplitude, 0.0).astype(jnp.float32)
    reference = jnp.full(g.shape[:-2] + g.shape[-1:], amplitude, jnp.float32)
    return Precoding(coefficients, amplitudes, reference)


def full_channel_inversion(g, power, transmit=None):
    """Channel inversion by every device, aligned to the weakest one.

    All transmitting devices invert their channels to the common amplitude
    ``sqrt(rho)``, ``rho = power * min_k |g_k|^2`` (over the transmitting devices,
    per resource element), the largest that the weakest device can reach: the
    power constraint holds for all, and one deep fade drags the received
    signal down for everybody. A device whose ``|g|^2`` is below 1e-12
    (-120 dB, or exactly zero) cannot be inverted and stays silent.
    """
    check_positive("power", power)
    g = jnp.asarray(g, jnp.complex64)
    channel_power = _channel_power(g)
    usable = _mask(transmit, g) & (channel_power >= MIN_CHANNEL_POWER)
    weakest = jnp.min(jnp.where(usable, channel_power, jnp.inf), axis=-2)  # [..., L]
    weakest = jnp.where(jnp.isfinite(weakest), weakest, 1.0)
    amplitude = jnp.sqrt(power * weakest)  # [..., L]
    coefficients = amplitude[..., None, :] * _safe_inverse(g, usable)
    amplitudes = jnp.where(usable, amplitude[..., None, :], 0.0).astype(jnp.float32)
    return Precoding(coefficients, amplitudes, amplitude.astype(jnp.float32))


def phase_compensation(g, power, transmit=None):
    """Phase-only compensation: full power, the channel's phase undone.

    ``b_k = sqrt(P) conj(g_k) / |g_k|``, so device k arrives with amplitude
    ``sqrt(P) |g_k|``: the receiver's estimate is an average weighted by the
    channel gains (biased towards strong devices, but never silent).
    """
    check_positive("power", power)
    g = jnp.asarray(g, jnp.complex64)
    transmit = _mask(transmit, g)
    channel_power = _channel_power(g)
    usable = transmit & (channel_power > 0)
    magnitude = jnp.sqrt(jnp.where(usable, channel_power, 1.0))
    amplitude = jnp.sqrt(jnp.float32(power))
    phase = jnp.where(usable, jnp.conj(g) / magnitude, 0.0).astype(jnp.complex64)
    amplitudes = jnp.where(usable, amplitude * magnitude, 0.0).astype(jnp.float32)
    reference = jnp.full(g.shape[:-2] + g.shape[-1:], amplitude, jnp.float32)
    return Precoding(amplitude * phase, amplitudes, reference)


def _safe_sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at 0 (double-where)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _per_element_noise(no, g):
    """``no``, per block ``[...]`` or per element ``[..., L]``, as ``[..., 1, L]`` beside ``g``."""
    no = jnp.asarray(no, jnp.float32)
    if no.ndim == g.ndim - 1 and no.shape[-1:] == g.shape[-1:]:
        return no[..., None, :]
    if no.ndim == g.ndim - 2:
        return no[..., None, None]
    return jnp.broadcast_to(no, g.shape[:-2] + g.shape[-1:])[..., None, :]


def optimal_denoising_factor(g, power, no, transmit=None):
    """The MSE-optimal denoising factor of Cao, Zhu, Xu and Huang (IEEE TWC 2020).

    Sort the transmitting devices by their quality indicators ``q_k = P |g_k|^2``,
    ``q_(1) <= ... <= q_(K)``. Their Theorem 1 (static channels, peak power
    ``P``) gives ``eta* = eta_(i*)`` with

    ``eta_(i) = ((no + sum_{k<=i} q_(k)) / sum_{k<=i} sqrt(q_(k)))^2``

    and ``i*`` the index with ``q_(i*) <= eta_(i*) <= q_(i*+1)``. In
    ``u = 1 / sqrt(eta)`` the MSE is convex, and ``eta_(i)`` minimises the
    quadratic in which the i weakest devices send at full power, whose slope
    is never below the MSE's: its minimiser comes first, every
    ``eta_(i) >= eta*``, and ``eta* = min_i eta_(i)``, computed here without
    the search. At ``no = 0`` it is ``q_(1)``: full inversion to the weakest
    device.

    Input:
        g: ``[..., K, L]`` complex, the devices' effective channels.
        power: P > 0, per-device energy per symbol.
        no: noise power per complex symbol after combining, ``[...]`` (per
            block) or ``[..., L]``.
        transmit: optional mask broadcastable to ``g``: the devices that take part.

    Output:
        ``[..., L]`` float32 ``eta*``; ``inf`` where no transmitting device has
        a non-zero channel.
    """
    check_positive("power", power)
    g = jnp.asarray(g, jnp.complex64)
    quality = power * _channel_power(g)
    ordered = jnp.sort(jnp.where(_mask(transmit, g), quality, jnp.inf), axis=-2)
    member = jnp.isfinite(ordered)  # prefixes over the transmitting devices only
    ordered = jnp.where(member, ordered, 0.0)
    energy = jnp.cumsum(ordered, axis=-2)
    amplitude = jnp.cumsum(_safe_sqrt(ordered), axis=-2)
    ok = member & (amplitude > 0)
    no = _per_element_noise(no, g)
    candidates = jnp.where(ok, ((no + energy) / jnp.where(ok, amplitude, 1.0)) ** 2, jnp.inf)
    return jnp.min(candidates, axis=-2).astype(jnp.float32)


def optimal_power_control(g, power, no, transmit=None):
    """The threshold-structured optimal power control of Cao, Zhu, Xu and Huang.

    For the denoising factor ``eta*`` of :func:`optimal_denoising_factor`, device
    k inverts its channel, ``b_k = sqrt(eta*) / g_k``, when its quality
    indicator ``P |g_k|^2`` exceeds ``eta*``, and sends at full power with its
    phase undone, ``b_k = sqrt(P) conj(g_k) / |g_k|``, otherwise. ``(b, eta*)``
    jointly minimise the MSE of the sum estimate ``y / sqrt(eta)`` subject to
    ``|b_k|^2 <= P``:
    ``MSE* = sum_{k: P|g_k|^2 < eta*} (sqrt(P) |g_k| / sqrt(eta*) - 1)^2 + no / eta*``
    for independent zero-mean unit-energy symbols (see :func:`aggregation_mse`).

    The receiver attributes ``sqrt(eta*)`` to every transmitting device, so it
    divides the received sum by ``K sqrt(eta*)``: the weak devices arrive
    short of it (the MSE-optimal bias), the strong ones exactly on it. No
    transmitting device stays silent. As ``no -> 0`` this becomes full inversion aligned
    to the weakest device; at low SNR most devices send at full power.

    Input:
        g: ``[..., K, L]`` complex, the devices' estimates of their effective channels.
        power: P > 0, per-device average energy per symbol.
        no: noise power per complex symbol after combining, ``[...]`` or ``[..., L]``.
        transmit: optional mask broadcastable to ``g``; devices outside it stay silent.

    Output:
        :class:`Precoding` with ``reference = sqrt(eta*)``.
    """
    g = jnp.asarray(g, jnp.complex64)
    eta = optimal_denoising_factor(g, power, no, transmit)[..., None, :]  # [..., 1, L]
    found = jnp.isfinite(eta)
    root_eta = _safe_sqrt(jnp.where(found, eta, 0.0))
    use = _mask(transmit, g) & found
    channel_power = _channel_power(g)
    invert = use & (power * channel_power > eta)
    has_phase = use & (channel_power > 0)
    magnitude = _safe_sqrt(jnp.where(has_phase, channel_power, 0.0))
    phase = jnp.where(has_phase, jnp.conj(g) / jnp.where(has_phase, magnitude, 1.0), 0.0)
    full_power = jnp.sqrt(jnp.float32(power)) * phase
    coefficients = jnp.where(invert, root_eta * _safe_inverse(g, invert), full_power)
    amplitudes = jnp.where(use, root_eta, 0.0).astype(jnp.float32)
    reference = jnp.where(found, root_eta, jnp.sqrt(jnp.float32(power)))[..., 0, :]
    return Precoding(coefficients.astype(jnp.complex64), amplitudes, reference)


def precode(g, precoding, power, threshold=None, transmit=None, no=None, power_constraint="peak",
            mean_gain=1.0):  # fmt: skip
    """Dispatch on the name: ``"truncated"``, ``"full"``, ``"phase"`` or ``"optimal"``.

    ``threshold`` and ``mean_gain`` are used by ``"truncated"`` only, ``no`` (noise
    power per complex symbol after combining, ``[...]`` or ``[..., L]``) by
    ``"optimal"`` only; ``power_constraint="average"`` by ``"truncated"`` only
    (:func:`check_power_constraint`).
    """
    check_choice("precoding", precoding, PRECODINGS)
    check_power_constraint(power_constraint, precoding)
    if precoding == "truncated":
        return truncated_channel_inversion(
            g, power, threshold, transmit, power_constraint, mean_gain
        )
    if precoding == "full":
        return full_channel_inversion(g, power, transmit)
    if precoding == "optimal":
        if no is None:
            raise ValueError("precoding 'optimal' needs the noise power no")
        return optimal_power_control(g, power, no, transmit)
    return phase_compensation(g, power, transmit)


def check_power_constraint(power_constraint, precoding):
    """``"peak"`` for every precoder; ``"average"`` for truncated inversion only (ValueError)."""
    check_choice("power_constraint", power_constraint, POWER_CONSTRAINTS)
    if power_constraint == "peak" or precoding == "truncated":
        return
    why = {
        "optimal": (
            "its threshold policy (Cao et al., static channels) meets the budget on every "
            "block; their policy for a budget averaged over the fading (regularised channel "
            "inversion from a Lagrange dual over the fading distribution) is not implemented"
        ),
        "phase": "phase compensation sends at full power on every block (average = peak)",
        "full": "full inversion is aligned to the weakest device of each block; it has no "
        "average-power form here",
    }[precoding]
    raise ValueError(
        f"power_constraint='average' does not apply to precoding={precoding!r}: {why}; "
        "use precoding='truncated' or power_constraint='peak'"
    )


def aggregation_mse(g, precoding, no, transmit=None):
    """The MSE of the receiver's estimate of the average, given the channels.

    The devices send independent zero-mean symbols of unit energy ``x_k``; the
    receiver (without a local device, zero-forcing scaling) estimates their
    average over the transmitting devices ``T`` by ``y / A``, ``A = sum_k a_k``:

    ``MSE = sum_k |g_k b_k / A - 1{k in T} / |T||^2 + no / A^2``;

    for :func:`optimal_power_control` (``A = |T| sqrt(eta*)``) it is the sum-MSE
    of Cao et al. divided by ``|T|^2``. Where nobody transmitted (``A = 0``)
    the estimate is 0 and the MSE ``1 / |T|``.

    Input:
        g: ``[..., K, L]`` complex, the true effective channels.
        precoding: :class:`Precoding` the devices used (from their estimates of ``g``).
        no: noise power per complex symbol after combining, ``[...]`` or ``[..., L]``.
        transmit: optional mask broadcastable to ``g`` (everybody by default).

    Output:
        ``[..., L]`` float32 conditional MSE per complex symbol.
    """
    g = jnp.asarray(g, jnp.complex64)
    members = _mask(transmit, g).astype(jnp.float32)
    count = jnp.maximum(jnp.sum(members, axis=-2, keepdims=True), 1.0)
    total = jnp.sum(precoding.amplitudes, axis=-2, keepdims=True)
    ok = total > 0
    safe_total = jnp.where(ok, total, 1.0)
    misalignment = jnp.sum(
        _channel_power(g * precoding.coefficients / safe_total - members / count),
        axis=-2, keepdims=True,
    )  # fmt: skip
    mse = misalignment + _per_element_noise(no, g) / safe_total**2
    return jnp.where(ok, mse, 1.0 / count)[..., 0, :].astype(jnp.float32)


def check_precoding_args(precoding, power, threshold):
    """Validate a precoder's configuration (used by the configs' ``__post_init__``)."""
    check_choice("precoding", precoding, PRECODINGS)
    check_positive("power", power)
    if precoding == "truncated":
        check_positive("threshold", threshold)
    elif threshold is not None:
        check_nonnegative("threshold", threshold)
