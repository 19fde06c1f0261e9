"""Analog over-the-air aggregation (AirComp) of device values over the K-user MAC.

The chain, for every inference (one fading block)::

    values [..., K, C] -> normalize (ota.encoding) -> complex symbols [..., K, n]
      -> precoding from the devices' channel estimates (ota.precoding)
      -> MAC of phy.channels: AWGN, Rayleigh/Rician block fading, or TDL/CDL over OFDM
      -> receive combining (several antennas: ``combiner``)
      -> scaling (zero-forcing, or the scalar LMMSE de-noising factor)
      -> de-normalisation -> estimated average [..., C] -> decision = argmax

What the receiver knows: the normalisation, who transmitted (the participation
mask and, for truncated inversion, who was above the threshold) and the
amplitude it should expect of each of them. It divides the received sum by
the sum of those amplitudes: with channel inversion that is the number of
active devices times ``sqrt(rho)``, so the estimate is the plain average over
the devices that transmitted; with the optimal power control it is ``K
sqrt(eta*)``, the weak devices (sent at full power) arriving short of it.

``local_device=True`` models the survey's edge ensemble: device 0 is the
inferring device and the receiver itself; its own values enter the average
exactly, with the weight of one device, and never cross the channel. With
``False`` (the over-the-air-ensemble setting) all K devices transmit to an
access point. In both, if nobody got through the estimate falls back to
device 0's values, exactly.

Power: ``power_constraint`` names the convention (:mod:`airinfer.ota.precoding`):
``"peak"`` (default) meets ``P`` on every block; ``"average"`` (truncated
inversion on Rayleigh fading) meets it on average over the fading, which
lets truncated inversion arrive with ``sqrt(P / E1(threshold))`` instead of
``sqrt(P threshold)``.

SNR: ``snr_db`` is the received Es/N0 per complex symbol of one device
sending at full power ``P`` through a channel of unit average gain,
``P E|h|^2 / no``, so ``no = P 10^(-snr_db/10)`` (noise CN(0, no), ``no/2``
per real dimension). ``repetitions = R`` sends the block R times and averages:
the noise variance becomes ``no / R`` (drawn that way: one draw per symbol).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from airinfer.ota._inputs import broadcast_batch, device_values, sweep
from airinfer.ota.aircomp_config import (  # the configuration, re-exported
    CHANNELS,
    FLAT_CHANNELS,
    OFDM_CHANNELS,
    AirCompConfig,
)
from airinfer.ota.combining import effective_channel, receive_combiner
from airinfer.ota.encoding import (
    Normalization,
    decide,
    denormalize,
    normalize,
    num_channel_uses,
)
from airinfer.ota.precoding import precode, truncated_inversion_amplitude
from airinfer.phy import channels
from airinfer.phy.conventions import reals_to_symbols, snr_db_to_no, symbols_to_reals

__all__ = [
    "FLAT_CHANNELS",
    "OFDM_CHANNELS",
    "CHANNELS",
    "AirCompConfig",
    "AirCompEstimate",
    "noise_power",
    "over_the_air_average",
    "receiver_estimate",
]


class AirCompEstimate(NamedTuple):
    """What the receiver makes of one over-the-air block.

    Attributes:
        average: ``[..., C]`` float32, the estimated average of the devices' values.
        num_active: ``[...]`` float32, devices whose values entered the average
            (the local device included; averaged over resource elements on OFDM).

    Under ``jit`` nothing refuses a NaN that appears inside the program (a
    traced NaN SNR, a member's NaN output): :attr:`decision` and
    :attr:`finite` flag it, so that no NaN wins an argmax.
    """

    average: jax.Array
    num_active: jax.Array

    @property
    def decision(self):
        """``[...]`` int32: argmax of ``average``, :data:`~airinfer.ota.encoding.NO_DECISION`
        where it is not finite (:func:`~airinfer.ota.encoding.decide`)."""
        return decide(self.average)

    @property
    def finite(self):
        """``[...]`` bool: whether every entry of ``average`` is finite."""
        return jnp.all(jnp.isfinite(self.average), axis=-1)


def noise_power(snr_db, config):
    """Noise power per complex symbol after averaging R repetitions: ``P 10^(-snr_db/10) / R``."""
    return snr_db_to_no(snr_db, config.power) / config.repetitions


def receiver_estimate(received, amplitude_sum, local_values, local_weight, no, config):
    """Scale the received sum into an estimate of the normalised average.

    All arrays are per real dimension of the normalised block:

    Input:
        received: ``[..., 2n]`` float, real and imaginary parts of the combined
            received block ``sum_k g_k b_k x_k + noise``.
        amplitude_sum: ``[..., 1 | 2n]`` ``sum_k a_k`` over devices that transmitted.
        local_values: ``[..., 2n]`` normalised values held by the receiver.
        local_weight: ``[..., 1 | 2n]`` their weight, or ``None`` without a local device.
        no: ``[...]`` noise power per complex symbol (after repetitions).
        config: :class:`AirCompConfig` (``lmmse_denoising``, ``lmmse_prior_energy``).

    Output:
        ``[..., 2n]`` float32: ``(A u_air + w u_local) / (A + w)`` with ``u_air =
        y / A`` (zero-forcing) or ``y A E / (A^2 E + no)`` (scalar LMMSE
        de-noising, prior energy ``E``); where ``A + w = 0`` (nobody
        transmitted) the local values.
    """
    no = jnp.asarray(no, jnp.float32)[..., None]
    if config.lmmse_denoising:
        energy = config.lmmse_prior_energy
        denominator = amplitude_sum**2 * energy + no
        ok = denominator > 0
        gain = jnp.where(ok, amplitude_sum * energy / jnp.where(ok, denominator, 1.0), 0.0)
        weighted_air = amplitude_sum * gain * received
    else:
        weighted_air = received  # A * (y / A)
    if local_weight is None:  # no local device: skip adding zeros
        total, numerator = amplitude_sum, weighted_air
    else:
        total = amplitude_sum + local_weight
        numerator = weighted_air + local_weight * local_values
    ok = total > 0
    return jnp.where(ok, numerator / jnp.where(ok, total, 1.0), local_values)


def _padded_reals(normalized, n):
    if normalized.shape[-1] == 2 * n:
        return normalized
    return jnp.pad(normalized, [(0, 0)] * (normalized.ndim - 1) + [(0, 1)])


def _per_real(per_symbol):
    """``[..., 1]`` stays; ``[..., n]`` (per resource element) becomes ``[..., 2n]``."""
    if per_symbol.shape[-1] == 1:
        return per_symbol
    return jnp.concatenate([per_symbol, per_symbol], axis=-1)


def _device_estimates(key, g, config):
    if config.device_csi_error_var == 0:
        return g
    error = channels.complex_normal(key, (math.prod(g.shape),), config.device_csi_error_var)
    return g + error.reshape(g.shape)


def _combiner(h, no, transmit, config):
    """The receiver's unit-norm combiner from the true channels ``h`` ``[B, M, K, L]``."""
    if config.combiner == "eigen":
        return receive_combiner(h)  # blind to the noise and to who transmits
    return receive_combiner(h, config.combiner, config.power, no, transmit)


def _precode(g, no, transmit, config):
    """The devices' coefficients from their estimates ``g`` ``[B, K, L]``; ``no`` ``[B]``."""
    return precode(
        g, config.precoding, config.power, config.threshold, transmit, no=no,
        power_constraint=config.power_constraint, mean_gain=config.mean_gain,
    )  # fmt: skip


def _full_batch(reals, batch_shape):
    return jnp.broadcast_to(reals, batch_shape + reals.shape[-2:])


def _transmit_mask(transmit, batch_shape, num_devices):
    if transmit is None:
        return jnp.ones(batch_shape + (num_devices,), jnp.float32)
    return transmit


def _awgn_block(key, reals, transmit, batch_shape, no, config):
    reals = _full_batch(reals, batch_shape)
    transmit = _transmit_mask(transmit, batch_shape, reals.shape[-2])
    amplitude = jnp.sqrt(jnp.float32(config.power))
    superposed = amplitude * jnp.einsum("...k,...kr->...r", transmit, reals)
    y = channels.awgn(key, reals_to_symbols(superposed), no, backend=config.backend)
    amplitude_sum = amplitude * jnp.sum(transmit, axis=-1, keepdims=True)
    reference = jnp.full(amplitude_sum.shape, amplitude)
    return symbols_to_reals(y), amplitude_sum, reference, jnp.sum(transmit, axis=-1)


def _uses_gain_shortcut(config):
    """Rayleigh, one antenna, perfect CSI, truncated inversion: after inversion
    the phase cancels and only the event ``|h|^2 >= threshold`` matters."""
    return (
        config.channel == "rayleigh"
        and config.precoding == "truncated"
        and config.num_rx_ant == 1
        and config.device_csi_error_var == 0
    )


def _rayleigh_truncated_block(key, reals, transmit, batch_shape, no, config):
    num_devices, num_reals = reals.shape[-2:]
    num_blocks = math.prod(batch_shape)
    active, noise = channels.truncated_rayleigh_draws(
        key, num_blocks, num_devices, num_reals, config.threshold, backend=config.backend
    )
    active = active.reshape(batch_shape + (num_devices,))
    noise = noise.reshape(batch_shape + (num_reals,))
    if transmit is not None:
        active = transmit * active
    amplitude = jnp.float32(
        truncated_inversion_amplitude(config.power, config.threshold, config.power_constraint)
    )
    # A masked sum, not an einsum: XLA fuses it with the noise into one loop
    # instead of a batch of 1 x K matrix products.
    received = amplitude * jnp.sum(active[..., None] * reals, axis=-2)
    received = received + jnp.sqrt(no / 2)[..., None] * noise
    num_active = jnp.sum(active, axis=-1)
    amplitude_sum = amplitude * num_active[..., None]
    return received, amplitude_sum, jnp.full(amplitude_sum.shape, amplitude), num_active


def _flat_fading_block(key, reals, transmit, batch_shape, no, config):
    key_channel, key_csi, key_noise = jax.random.split(key, 3)
    reals = _full_batch(reals, batch_shape)
    transmit = _transmit_mask(transmit, batch_shape, reals.shape[-2])
    batch_shape = reals.shape[:-2]
    num_devices = reals.shape[-2]
    h = channels.draw_flat_fading(
        key_channel, batch_shape, num_devices, num_rx_ant=config.num_rx_ant,
        fading=config.channel, k_factor=config.k_factor, backend=config.backend,
    )  # fmt: skip
    h = h[..., None]  # [..., M, K, 1]: one gain per block
    w = _combiner(h, no, transmit[..., None], config)  # [..., M, 1]
    g = effective_channel(h, w)  # [..., K, 1]
    pre = _precode(_device_estimates(key_csi, g, config), no, transmit[..., None], config)
    x = pre.coefficients * reals_to_symbols(reals)  # [..., K, n]
    y = channels.apply_mac(key_noise, x, h[..., 0], no, backend=config.backend)  # [..., M, n]
    y = jnp.einsum("...m,...mn->...n", jnp.conj(w[..., 0]), y)
    amplitude_sum = jnp.sum(pre.amplitudes, axis=-2)  # [..., 1]
    num_active = jnp.sum(pre.amplitudes > 0, axis=-2)[..., 0].astype(jnp.float32)
    return symbols_to_reals(y), amplitude_sum, pre.reference, num_active


def _ofdm_block(key, reals, transmit, batch_shape, no, config):
    key_channel, key_csi = jax.random.split(key)
    reals = _full_batch(reals, batch_shape)
    transmit = _transmit_mask(transmit, batch_shape, reals.shape[-2])
    batch_shape, (num_devices, num_reals) = reals.shape[:-2], reals.shape[-2:]
    n = num_reals // 2
    batch = math.prod(batch_shape)
    num_symbols = config.num_ofdm_symbols
    fft_size = config.fft_size or -(-n // num_symbols)
    if num_symbols * fft_size < n:
        raise ValueError(
            f"the OFDM grid {num_symbols} x {fft_size} holds fewer than the n={n} symbols "
            "of a block"
        )
    # The channel is linear and its noise additive: one channel call with silent
    # devices returns the channel and the noise alone; the precoded superposition
    # is then formed here, with the devices knowing their channels beforehand.
    silent = jnp.zeros((batch, num_devices, num_symbols, fft_size), jnp.complex64)
    out = channels.ofdm_mac(
        key_channel, silent, jnp.broadcast_to(no, batch_shape).reshape(-1),
        model=config.channel, num_rx_ant=config.num_rx_ant,
        subcarrier_spacing=config.subcarrier_spacing, delay_spread=config.delay_spread,
        carrier_frequency=config.carrier_frequency, speed=config.speed, backend=config.backend,
    )  # fmt: skip
    num_rx_ant = config.num_rx_ant
    h = out.h.reshape(batch, num_rx_ant, num_devices, -1)[..., :n]  # [B, M, K, n]
    noise = out.y.reshape(batch, num_rx_ant, -1)[..., :n]  # [B, M, n]
    no = jnp.broadcast_to(no, batch_shape).reshape(batch)
    transmit = transmit.reshape(batch, num_devices)[..., None]
    w = _combiner(h, no, transmit, config)  # [B, M, n]
    g = effective_channel(h, w)  # [B, K, n]
    pre = _precode(_device_estimates(key_csi, g, config), no, transmit, config)
    x = reals_to_symbols(reals.reshape(batch, num_devices, num_reals))
    y = jnp.sum(g * pre.coefficients * x, axis=-2) + jnp.sum(jnp.conj(w) * noise, axis=-2)
    amplitude_sum = jnp.sum(pre.amplitudes, axis=-2)  # [B, n]
    num_active = jnp.mean(jnp.sum(pre.amplitudes > 0, axis=-2), axis=-1, dtype=jnp.float32)

    def unflatten(a):
        return a.reshape(batch_shape + a.shape[1:])

    return (
        unflatten(symbols_to_reals(y)),
        unflatten(_per_real(amplitude_sum)),
        unflatten(_per_real(pre.reference)),
        unflatten(num_active),
    )


def over_the_air_average(
    key, values, snr_db, config, normalization, participation=None, num_devices=None
):
    """Estimate the average of the devices' values from one over-the-air block.

    Input:
        key: JAX PRNG key (fading, CSI error and noise derive from it).
        values: ``[..., K, C]`` float, device k's values in row k (softmax,
            one-hot or sign votes, logits, features): the devices are the
            second-to-last axis (members' outputs ``[K, N, C]`` go in as
            ``np.moveaxis(outputs, 0, 1)``). Every leading dimension is a batch
            dimension (SNR points × channel draws × samples): each entry of the
            batch is one inference and one independent fading block.
        snr_db: the received Es/N0 per complex symbol in dB of one device at
            full power through a unit-average-gain channel: ``no = P
            10^(-snr_db/10)`` (noise CN(0, no)). A scalar; or ``[S]``, a sweep:
            every point applies to the whole batch and the output gains a
            leading axis S; or an array of two or more dimensions that
            broadcasts with the batch (e.g. ``[S, 1]`` against values ``[N, K,
            C]``). NaN or inf is refused where the call is not traced.
        config: :class:`AirCompConfig` (static under ``jax.jit``).
        normalization: :class:`airinfer.ota.encoding.Normalization` (static), known to all;
            or ``None`` when ``values`` are already normalised with
            :func:`airinfer.ota.encoding.normalize` (in a sweep, normalise once outside
            the loop over SNR points and draws): the estimate then stays in
            normalised units, which has the same argmax.
        participation: optional ``[..., K]`` 0/1 mask of the devices that join
            this inference (see :func:`airinfer.ota.connectivity.participation_mask`);
            all by default.
        num_devices: optional K, checked against ``values.shape[-2]`` (a
            transposed ``[K, N, C]`` would otherwise read as N devices).

    Output:
        :class:`AirCompEstimate`: ``average`` ``[B..., C]`` float32
        (de-normalised) and ``num_active`` ``[B...]``, with ``B...`` the
        broadcast of ``values.shape[:-2]``, the SNR's shape and
        ``participation.shape[:-1]``; with a sweep ``[S]``, ``[S, ..., C]``
        and ``[S, ...]``. Differentiable in ``values``. ``values`` holding NaN
        or inf is refused where concrete; under ``jit`` a non-finite estimate
        gets :data:`~airinfer.ota.encoding.NO_DECISION` from
        :attr:`AirCompEstimate.decision`.
    """
    values = device_values(values, num_devices)
    if normalization is not None and not isinstance(normalization, Normalization):
        raise ValueError(f"normalization must be a Normalization or None, got {normalization!r}")
    values, snr_db = sweep(values, snr_db)
    return _average(key, values, snr_db, config, normalization, participation)


def _average(key, values, snr_db, config, normalization, participation):
    """:func:`over_the_air_average` on checked inputs (values float32, no 1-D sweep left)."""
    num_devices, num_values = values.shape[-2:]
    n = num_channel_uses(num_values)
    # Every batch dimension broadcasts: values shared by all SNR points and draws
    # stay small (e.g. values [N, 1, K, C] with snr_db [1, draws]).
    batch_shape = broadcast_batch(values, snr_db, participation)
    transmit = None  # everybody
    if participation is not None or config.local_device:
        transmit = jnp.ones(batch_shape + (num_devices,), jnp.float32)
    if participation is not None:
        transmit = transmit * (jnp.asarray(participation) > 0)
    if config.local_device:
        transmit = transmit.at[..., 0].set(0.0)  # the receiver does not transmit to itself
    no = jnp.broadcast_to(noise_power(snr_db, config), batch_shape)
    normalized = values if normalization is None else normalize(values, normalization)
    reals = _padded_reals(normalized, n)  # [..., K, 2n]

    if config.channel == "awgn":
        block = _awgn_block
    elif config.is_ofdm:
        block = _ofdm_block
    elif _uses_gain_shortcut(config):
        block = _rayleigh_truncated_block
    else:
        block = _flat_fading_block
    if block is _rayleigh_truncated_block or len(batch_shape) == 1:
        outputs = block(key, reals, transmit, batch_shape, no, config)
    else:
        # One flat batch axis through the channel: XLA compiles the channel's
        # random draws for one axis instead of one per batch axis.
        flat = (math.prod(batch_shape),)
        outputs = block(
            key,
            _full_batch(reals, batch_shape).reshape(flat + reals.shape[-2:]),
            None if transmit is None else transmit.reshape(flat + (num_devices,)),
            flat,
            no.reshape(flat),
            config,
        )
        outputs = tuple(out.reshape(batch_shape + out.shape[1:]) for out in outputs)
    received, amplitude_sum, reference, num_active = outputs
    local_weight = reference if config.local_device else None
    estimate = receiver_estimate(
        received, amplitude_sum, reals[..., 0, :], local_weight, no, config
    )[..., :num_values]
    average = estimate if normalization is None else denormalize(estimate, normalization)
    # Nobody else got through: the receiver has exactly device 0's values.
    alone = amplitude_sum == 0
    if alone.shape[-1] > 1:
        alone = alone[..., :num_values]
    average = jnp.where(alone, values[..., 0, :], average)
    if config.local_device:
        num_active = num_active + 1.0
    return AirCompEstimate(average, num_active)
