"""Device pre-processing for over-the-air aggregation, and the receive combiner.

Each device k scales its normalised symbols (energy per symbol <= 1, see
:mod:`airinfer.ota.encoding`) by a complex coefficient ``b_k`` computed from its own
estimate ``g_k`` of its effective channel to the receiver, so that the
receiver sees ``y = sum_k g_k b_k x_k + n``. The receiver knows which devices
transmitted and the amplitude ``a_k`` with which it should expect each of them
(``g_k b_k ≈ a_k`` when the estimate is exact); it divides by ``sum_k a_k``.

Shapes: effective channels ``[..., K, L]`` with the device axis second to
last; ``L = 1`` for flat block fading (one gain per block), ``L = n`` for
OFDM (one gain per resource element). Masks broadcast to ``[..., K, L]``.

Every precoder keeps ``|b_k|^2 <= P`` (the per-device power constraint) except
where its docstring says otherwise, and divides by channels only through
double-``where`` guards, so that gradients stay finite in deep fades.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from airinfer.ota._checks import check_choice, check_nonnegative, check_positive

__all__ = [
    "PRECODINGS",
    "Precoding",
    "truncated_channel_inversion",
    "full_channel_inversion",
    "phase_compensation",
    "precode",
    "receive_combiner",
    "effective_channel",
]

PRECODINGS = ("truncated", "full", "phase")

# Full inversion leaves out fades deeper than this: the weakest device sets the
# common amplitude of everybody, which must stay a finite (if useless) number.
MIN_CHANNEL_POWER = 1e-12
_POWER_ITERATIONS = 12


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


def truncated_channel_inversion(g, power, threshold, transmit=None):
    """Truncated channel inversion: invert the channel unless it is weaker than a threshold.

    Device k sends with ``b_k = sqrt(rho) / g_k`` if ``|g_k|^2 >= threshold``
    and stays silent otherwise; ``rho = power * threshold`` is the largest
    common receive power that every active device can reach, so
    ``|b_k|^2 = rho / |g_k|^2 <= power`` always.

    Input:
        g: ``[..., K, L]`` complex, the devices' estimates of their effective channels.
        power: P > 0, per-device average energy per symbol.
        threshold: > 0, the gain threshold on ``|g|^2``.
        transmit: optional mask broadcastable to ``g``; devices outside it stay silent.

    Output:
        :class:`Precoding`.
    """
    check_positive("power", power)
    check_positive("threshold", threshold)
    g = jnp.asarray(g, jnp.complex64)
    active = _mask(transmit, g) & (_channel_power(g) >= threshold)
    amplitude = jnp.sqrt(jnp.float32(power * threshold))
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


def precode(g, precoding, power, threshold=None, transmit=None):
    """Dispatch on the name: ``"truncated"``, ``"full"`` or ``"phase"`` (see the functions)."""
    check_choice("precoding", precoding, PRECODINGS)
    if precoding == "truncated":
        return truncated_channel_inversion(g, power, threshold, transmit)
    if precoding == "full":
        return full_channel_inversion(g, power, transmit)
    return phase_compensation(g, power, transmit)


def receive_combiner(h):
    """A unit-norm receive combiner ``w`` that serves all devices at once.

    With several receive antennas a single-antenna device cannot align its
    signal at every antenna; the receiver combines ``w^H y`` and each device
    inverts its effective channel ``w^H h_k``. ``w`` is the dominant eigenvector
    of ``sum_k h_k h_k^H`` (it maximises ``sum_k |w^H h_k|^2``), found by a fixed
    number of power iterations so that it stays differentiable. Noise after
    combining stays CN(0, no).

    Input:
        h: ``[..., M, K, L]`` complex channels.

    Output:
        w: ``[..., M, L]`` complex64, ``||w|| = 1``; all ones when ``M = 1``.
    """
    h = jnp.asarray(h, jnp.complex64)
    num_rx_ant = h.shape[-3]
    if num_rx_ant == 1:
        return jnp.ones(h.shape[:-3] + (1,) + h.shape[-1:], jnp.complex64)

    def normalise(v):
        norm2 = jnp.sum(_channel_power(v), axis=-2, keepdims=True)
        ok = norm2 > 1e-30
        fallback = jnp.zeros_like(v).at[..., 0, :].set(1.0)
        return jnp.where(ok, v / jnp.sqrt(jnp.where(ok, norm2, 1.0)), fallback)

    w = normalise(jnp.sum(h, axis=-2))  # start: the sum of the devices' channels
    for _ in range(_POWER_ITERATIONS):
        projections = jnp.einsum("...mkl,...ml->...kl", jnp.conj(h), w)  # h_k^H w
        w = normalise(jnp.einsum("...mkl,...kl->...ml", h, projections))
    return w


def effective_channel(h, w):
    """``g_k = w^H h_k``: ``h`` ``[..., M, K, L]``, ``w`` ``[..., M, L]`` -> ``[..., K, L]``."""
    return jnp.einsum("...ml,...mkl->...kl", jnp.conj(w), h)


def check_precoding_args(precoding, power, threshold):
    """Validate a precoder's configuration (used by the configs' ``__post_init__``)."""
    check_choice("precoding", precoding, PRECODINGS)
    check_positive("power", power)
    if precoding == "truncated":
        check_positive("threshold", threshold)
    elif threshold is not None:
        check_nonnegative("threshold", threshold)
