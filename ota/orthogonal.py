"""The digital orthogonal baseline: quantise, code, send in separate slots, average what decodes.

Each participating device quantises its C values to ``b`` bits (uniform
mid-rise quantiser over ``[low, high]``, :mod:`airinfer.phy.quantize`) and sends the
``C b`` bits as one LDPC codeword with QAM in its own orthogonal slot
(:mod:`airinfer.phy.digital`). The slot sees the same flat block fading as the analog
scheme; with perfect-CSI equalisation a block-fading gain ``h_k`` is an AWGN
link at the effective SNR ``P ||h_k||^2 / no`` (maximum-ratio combining over
the receive antennas). A CRC is assumed: a block with any bit error is
dropped. The receiver averages the values of the devices that got through,
falling back to device 0's own values if none did (and, with
``local_device=True``, always counting device 0 exactly, as the receiver).

Two modes give the same statistics:

* ``"simulate"``: every codeword goes through the Sionna link.
* ``"abstraction"``: each block is dropped with probability BLER(effective
  SNR), the BLER taken from a table measured once with the same link
  (:func:`measure_bler_table`, cached per link configuration) and interpolated
  linearly in dB. Fast enough for full sweeps on a CPU.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.ota._checks import (
    check_bool_field,
    check_choice,
    check_k_factor,
    check_nonnegative,
    check_positive,
    check_positive_int,
    refuse_changed,
)
from airinfer.ota._inputs import broadcast_batch, device_values, sweep
from airinfer.ota.encoding import decide
from airinfer.phy import channels, digital, quantize

__all__ = [
    "MODES",
    "ORTHOGONAL_CHANNELS",
    "OrthogonalConfig",
    "OrthogonalEstimate",
    "BlerTable",
    "DEFAULT_BLER_GRID_DB",
    "measure_bler_table",
    "bler_at",
    "channel_power_gains",
    "ofdm_slot_gains",
    "effective_snr_db",
    "orthogonal_average",
]

MODES = ("abstraction", "simulate")
ORTHOGONAL_CHANNELS = ("awgn", "rayleigh", "rician") + tuple(channels.OFDM_MODELS)
#: Es/N0 grid (dB) of the BLER tables; below it BLER is its first value, above its last.
DEFAULT_BLER_GRID_DB = tuple(float(x) for x in np.arange(-6.0, 20.01, 0.5))
# A deep fade's gain is floored before taking dB (-300 dB: surely dropped).
_MIN_GAIN = 1e-30
# Resource elements per call of the OFDM channel generator: it holds every path
# of every element (TDL-A: 23 complex taps), so a sweep's whole batch at once
# would take tens of GB; in calls of 2^22 elements it takes under 1 GB.
MAX_OFDM_ELEMENTS_PER_CALL = 2**22


@dataclasses.dataclass(frozen=True)
class OrthogonalConfig:
    """Configuration of the digital orthogonal baseline; hashable (a static jit argument).

    Parameters:
        channel: ``"awgn"``, ``"rayleigh"`` or ``"rician"`` flat block fading
            (one draw per device and inference), or an OFDM model of
            ``phy.channels`` (``"tdl-a"`` …): each device's codeword then fills
            one OFDM symbol of its own slot, one QAM symbol per subcarrier, and
            decodes at the mutual-information effective SNR of its subcarriers
            (see :func:`effective_snr_db`).
        bits: quantiser bits per value, 1..16.
        low, high: the quantiser's range (values outside are clipped).
        modulation: ``"qpsk"``, ``"16qam"`` or ``"64qam"``.
        code_rate: target LDPC rate in (0, 1); the codeword is the fewest whole
            QAM symbols that reach it: ``n = m ceil(C b / (rate m))``.
        num_iter: belief-propagation iterations.
        power: P > 0, energy per symbol of each device in its slot.
        num_rx_ant: receive antennas (maximum-ratio combining).
        k_factor: Rician K-factor (linear), > 0 on ``"rician"``, 0 elsewhere.
        mode: ``"abstraction"`` or ``"simulate"``.
        local_device: device 0 is the receiver: counted exactly, never sent.
        backend: channel draws with ``"sionna"`` or the ``"jax"`` twin (OFDM models included).
        subcarrier_spacing, delay_spread, carrier_frequency, speed: OFDM channel
            parameters (Hz, s, Hz, m/s), as in ``phy.channels.ofdm_mac``; only
            on OFDM channels.

    A field that would have no effect is refused (a K-factor off Rician fading,
    OFDM parameters on flat channels, several antennas on AWGN).
    """

    channel: str = "rayleigh"
    bits: int = 8
    low: float = 0.0
    high: float = 1.0
    modulation: str = "qpsk"
    code_rate: float = 0.5
    num_iter: int = 20
    power: float = 1.0
    num_rx_ant: int = 1
    k_factor: float = 0.0
    mode: str = "abstraction"
    local_device: bool = False
    backend: str = "sionna"
    subcarrier_spacing: float = 30e3
    delay_spread: float = 100e-9
    carrier_frequency: float = 3.5e9
    speed: float = 0.0

    def __post_init__(self):
        check_choice("channel", self.channel, ORTHOGONAL_CHANNELS)
        check_positive_int("bits", self.bits)
        if self.bits > quantize.MAX_BITS:
            raise ValueError(f"bits must be in [1, {quantize.MAX_BITS}], got {self.bits!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"need finite low < high, got low={self.low!r}, high={self.high!r}")
        check_choice("modulation", self.modulation, tuple(digital.MODULATIONS))
        check_positive("code_rate", self.code_rate)
        if not self.code_rate < 1:
            raise ValueError(f"code_rate must be in (0, 1) (LDPC), got {self.code_rate!r}")
        check_positive_int("num_iter", self.num_iter)
        check_positive("power", self.power)
        check_positive_int("num_rx_ant", self.num_rx_ant)
        check_nonnegative("k_factor", self.k_factor)
        check_choice("mode", self.mode, MODES)
        check_choice("backend", self.backend, ("sionna", "jax"))
        for name in ("subcarrier_spacing", "delay_spread", "carrier_frequency"):
            check_positive(name, getattr(self, name))
        check_nonnegative("speed", self.speed)
        check_bool_field(self, "local_device")
        check_k_factor(self.channel, self.k_factor)
        if self.channel == "awgn":
            refuse_changed(self, ("num_rx_ant",), "channel='awgn' has no fading to combine over")
        if self.channel not in channels.OFDM_MODELS:
            refuse_changed(
                self, ("subcarrier_spacing", "delay_spread", "carrier_frequency", "speed"),
                f"OFDM parameters only apply to {tuple(channels.OFDM_MODELS)}, not to "
                f"channel={self.channel!r}",
            )  # fmt: skip

    @property
    def bits_per_symbol(self):
        return digital.MODULATIONS[self.modulation]

    def link(self, num_values):
        """The :class:`~airinfer.phy.digital.LinkConfig` of a device's slot, C = ``num_values``."""
        check_positive_int("num_values", num_values)
        k = num_values * self.bits
        m = self.bits_per_symbol
        n = m * math.ceil(round(k / (self.code_rate * m), 9))
        return digital.LinkConfig(
            self.modulation, "awgn", "ldpc", k, n, 0.0, self.num_iter, backend=self.backend
        )


class BlerTable(NamedTuple):
    """Block error rate vs Es/N0: ``snr_db`` increasing, ``bler`` in [0, 1] (NumPy float32)."""

    snr_db: np.ndarray
    bler: np.ndarray


class OrthogonalEstimate(NamedTuple):
    """What the receiver makes of the orthogonal slots.

    Attributes:
        average: ``[..., C]`` float32, the average of the values that got through.
        num_received: ``[...]`` float32, devices in that average (local one included).
        received: ``[..., K]`` bool, whose block decoded (False for silent devices).

    As :class:`~airinfer.ota.aircomp.AirCompEstimate`, :attr:`decision` never lets
    a NaN that appeared under ``jit`` win the argmax.
    """

    average: jax.Array
    num_received: jax.Array
    received: jax.Array

    @property
    def decision(self):
        """``[...]`` int32: argmax of ``average``, :data:`~airinfer.ota.encoding.NO_DECISION`
        where it is not finite (:func:`~airinfer.ota.encoding.decide`)."""
        return decide(self.average)

    @property
    def finite(self):
        """``[...]`` bool: whether every entry of ``average`` is finite."""
        return jnp.all(jnp.isfinite(self.average), axis=-1)


@functools.cache
def _measured_table(link, snr_points, num_blocks, seed):
    key = jax.random.key(seed)
    bler = []
    zeros_in_a_row = 0
    for i, snr_db in enumerate(snr_points):
        if zeros_in_a_row >= 2:
            # The waterfall is behind us: BLER only falls with SNR.
            bler.append(0.0)
            continue
        counts = digital.error_counts(jax.random.fold_in(key, i), link, snr_db, num_blocks)
        bler.append(int(counts.block_errors) / num_blocks)
        zeros_in_a_row = zeros_in_a_row + 1 if bler[-1] == 0 else 0
    return BlerTable(np.asarray(snr_points, np.float32), np.asarray(bler, np.float32))


def measure_bler_table(link, snr_db=DEFAULT_BLER_GRID_DB, num_blocks=1000, seed=0):
    """Measure BLER vs Es/N0 of ``link`` over AWGN, once per configuration (cached).

    Parameters:
        link: :class:`airinfer.phy.digital.LinkConfig` (see :meth:`OrthogonalConfig.link`).
        snr_db: increasing Es/N0 grid in dB (per complex symbol).
        num_blocks: codewords per point (binomial error ``sqrt(p(1-p)/num_blocks)``).
        seed: of the JAX key; point i uses ``fold_in(key, i)``.

    Output:
        :class:`BlerTable`. Points past two zero-error points in a row are set
        to 0 without simulating them.
    """
    if not isinstance(link, digital.LinkConfig):
        raise ValueError(f"link must be a phy.digital.LinkConfig, got {type(link).__name__}")
    points = tuple(float(x) for x in snr_db)
    if len(points) < 2 or any(b <= a for a, b in zip(points, points[1:], strict=False)):
        raise ValueError(f"snr_db must be an increasing grid of >= 2 points, got {snr_db!r}")
    check_positive_int("num_blocks", num_blocks)
    return _measured_table(link, points, int(num_blocks), int(seed))


def bler_at(snr_db, table):
    """BLER interpolated linearly in dB (clamped at the ends of the grid), jit-able."""
    return jnp.interp(jnp.asarray(snr_db, jnp.float32), table.snr_db, table.bler)


def channel_power_gains(key, batch_shape, num_devices, config):
    """``||h_k||^2`` per device and block, ``[*batch_shape, K]`` float32.

    AWGN: ones. Rayleigh with one antenna on the JAX twin: drawn directly as
    Exp(1) (only the gain matters after equalisation); otherwise from
    ``phy.channels.draw_flat_fading`` on the configured backend.
    """
    shape = tuple(batch_shape) + (num_devices,)
    if config.channel in channels.OFDM_MODELS:
        raise ValueError(f"channel {config.channel!r} is frequency-selective: see effective_snr_db")
    if config.channel == "awgn":
        return jnp.ones(shape, jnp.float32)
    if config.channel == "rayleigh" and config.num_rx_ant == 1 and config.backend == "jax":
        # Drawn flat and reshaped: XLA compiles a one-dimensional generator much faster.
        return jax.random.exponential(key, (math.prod(shape),), jnp.float32).reshape(shape)
    h = channels.draw_flat_fading(
        key, tuple(batch_shape), num_devices, num_rx_ant=config.num_rx_ant,
        fading=config.channel, k_factor=config.k_factor, backend=config.backend,
    )  # fmt: skip
    return jnp.sum(jnp.real(h) ** 2 + jnp.imag(h) ** 2, axis=-2)


def ofdm_slot_gains(key, batch, num_devices, num_symbols, config):
    """``||h_f||^2`` of each device's slot on ``num_symbols`` subcarriers: ``[batch, K, N]``.

    Drawn in calls of at most :data:`MAX_OFDM_ELEMENTS_PER_CALL` resource
    elements (call i with ``fold_in(key, i)``); one call with ``key`` itself
    when the batch fits.
    """

    def draw(key, blocks):
        silent = jnp.zeros((blocks, num_devices, 1, num_symbols), jnp.complex64)
        h = channels.ofdm_mac(
            key,
            silent,
            0.0,
            model=config.channel,
            num_rx_ant=config.num_rx_ant,
            subcarrier_spacing=config.subcarrier_spacing,
            delay_spread=config.delay_spread,
            carrier_frequency=config.carrier_frequency,
            speed=config.speed,
            backend=config.backend,
        ).h  # [blocks, M, K, 1, N]
        return jnp.sum(jnp.real(h) ** 2 + jnp.imag(h) ** 2, axis=1)[:, :, 0]

    per_call = max(1, MAX_OFDM_ELEMENTS_PER_CALL // (num_devices * num_symbols))
    if batch <= per_call:
        return draw(key, batch)
    num_calls = -(-batch // per_call)
    gains = jax.lax.map(lambda i: draw(jax.random.fold_in(key, i), per_call), jnp.arange(num_calls))
    return gains.reshape(num_calls * per_call, num_devices, num_symbols)[:batch]


def effective_snr_db(key, snr_db, num_devices, num_values, config):
    """The Es/N0 (dB) at which each device's codeword decodes, ``[*snr_db.shape, K]``.

    Flat channels: ``snr_db + 10 log10 ||h_k||^2`` (maximum-ratio combining).
    OFDM channels: the codeword's ``N`` QAM symbols sit on ``N`` subcarriers of
    one OFDM symbol, each with its own gain ``g_f = ||h_f||^2``; a code spread
    over them behaves like an AWGN link at the mutual-information effective SNR
    ``2^(mean_f log2(1 + snr g_f)) - 1`` (MIESM with Gaussian inputs), which is
    what the BLER table and the simulated link are given.
    """
    snr_db = jnp.asarray(snr_db, jnp.float32)
    batch_shape = snr_db.shape
    if config.channel not in channels.OFDM_MODELS:
        gains = channel_power_gains(key, batch_shape, num_devices, config)
        return snr_db[..., None] + 10.0 * jnp.log10(jnp.maximum(gains, _MIN_GAIN))
    num_symbols = config.link(num_values).num_symbols
    batch = math.prod(batch_shape)
    gains = ofdm_slot_gains(key, batch, num_devices, num_symbols, config)  # [B, K, N]
    snr = jnp.power(10.0, snr_db.reshape(batch, 1, 1) / 10.0) * gains
    effective = jnp.exp2(jnp.mean(jnp.log2(1.0 + snr), axis=-1)) - 1.0  # [B, K]
    effective_db = 10.0 * jnp.log10(jnp.maximum(effective, _MIN_GAIN))
    return effective_db.reshape(batch_shape + (num_devices,))


def _quantizer(config):
    return (config.high + config.low) / 2, (config.high - config.low) / 2


def _simulate(key, values, snr_db, config):
    """Every device's codeword through the Sionna link: (decoded values, block ok)."""
    middle, clip = _quantizer(config)
    shape = values.shape
    link = config.link(shape[-1])
    bits = quantize.quantize_to_bits(values - middle, config.bits, clip)  # [..., K, C, b]
    flat_bits = bits.reshape(-1, link.k)
    bits_hat, _ = digital.transmit(key, flat_bits, snr_db.reshape(-1), link)
    ok = jnp.all(bits_hat == flat_bits, axis=-1).reshape(shape[:-1])
    decoded = middle + quantize.bits_to_values(bits_hat.reshape(bits.shape), clip)
    return decoded, ok


def orthogonal_average(
    key, values, snr_db, config, participation=None, bler_table=None, num_devices=None
):
    """Average the devices' values sent digitally in orthogonal slots.

    Input:
        key: JAX PRNG key.
        values: ``[..., K, C]`` float, the devices second to last; each batch
            entry is one inference. NaN or inf is refused where concrete.
        snr_db: Es/N0 per complex symbol in dB of a device's slot through a
            unit-average-gain channel (``no = P 10^(-snr_db/10)``); device k
            decodes at ``snr_db + 10 log10 ||h_k||^2`` (OFDM: see
            :func:`effective_snr_db`). A scalar; ``[S]``, a sweep (the output
            gains a leading axis S); or an array of two or more dimensions
            broadcastable to ``values.shape[:-2]``. NaN or inf is refused where
            concrete.
        config: :class:`OrthogonalConfig` (static under ``jax.jit``).
        participation: optional ``[..., K]`` 0/1 mask of the devices that join.
        bler_table: :class:`BlerTable` for ``mode="abstraction"``; measured
            (and cached) with :func:`measure_bler_table` when omitted.
        num_devices: optional K, checked against ``values.shape[-2]``.

    Output:
        :class:`OrthogonalEstimate`, over the batch ``[B...]``: the broadcast of
        ``values.shape[:-2]`` and the SNR's shape (``[S, ...]`` for a sweep).
    """
    values, snr_db = sweep(device_values(values, num_devices), snr_db)
    batch_shape = broadcast_batch(values, snr_db, participation)
    values = jnp.broadcast_to(values, batch_shape + values.shape[-2:])
    num_devices, num_values = values.shape[-2:]
    transmit = jnp.ones(batch_shape + (num_devices,), bool)
    if participation is not None:
        transmit = transmit & (jnp.asarray(participation) > 0)
    if config.local_device:
        transmit = transmit.at[..., 0].set(False)
    key_channel, key_link = jax.random.split(key)
    snr_db = jnp.broadcast_to(snr_db, batch_shape)
    effective = effective_snr_db(key_channel, snr_db, num_devices, num_values, config)

    if config.mode == "simulate":
        decoded, ok = _simulate(key_link, values, effective, config)
    else:
        table = bler_table
        if table is None:
            table = measure_bler_table(config.link(num_values))
        middle, clip = _quantizer(config)
        decoded = middle + quantize.dequantize(
            quantize.quantize(values - middle, config.bits, clip), config.bits, clip
        )
        uniform = jax.random.uniform(key_link, (effective.size,)).reshape(effective.shape)
        ok = uniform >= bler_at(effective, table)

    # A NaN or inf value stays one through the quantiser (which would map it to a
    # level), so that under jit it never decides (estimate.decision).
    decoded = jnp.where(jnp.isfinite(values), decoded, values)
    received = transmit & ok
    weights = received.astype(jnp.float32)
    total = jnp.einsum("...k,...kc->...c", weights, decoded)
    count = jnp.sum(weights, axis=-1)
    if config.local_device:
        total = total + values[..., 0, :]
        count = count + 1.0
    safe_count = jnp.where(count > 0, count, 1.0)[..., None]
    average = jnp.where((count > 0)[..., None], total / safe_count, values[..., 0, :])
    # a traced NaN SNR drops every block (no comparison holds): flag it, not device 0 alone
    average = jnp.where(jnp.isnan(snr_db)[..., None], jnp.nan, average)
    return OrthogonalEstimate(average, count, received)
