"""A digital hop: a real tensor quantised, LDPC-coded, sent over ``phy.digital`` and rebuilt.

The chain of one message (one row of ``values``, ``V`` reals)::

    values [..., V] -> clip to [low, high], b-bit mid-rise quantiser (phy.quantize)
      -> V*b info bits, MSB first -> zero-padded into B blocks of k info bits
      -> phy.digital.transmit: 5G LDPC (rate ~ code_rate) + Gray QAM over AWGN or
         Rayleigh fading, one-tap equaliser, APP demapper, BP decoder
      -> decided bits (errors and all) -> values_hat [..., V]

``B = ceil(V b / max_block_bits)`` blocks carry ``k = ceil(V b / B)`` bits each
(raised to the code's minimum of 12, or to a multiple of the bits per symbol
when uncoded); the codeword is the fewest whole QAM symbols reaching the
target rate, ``n = m ceil(k / (code_rate m))``. A message therefore costs
``B n / m`` complex channel uses and carries ``V b`` payload bits. With a 5G
NR MCS (``mcs``, an index of 38.214 table ``mcs_table``) its QAM order and
target rate replace ``modulation`` and ``code_rate`` (same rule for ``n``;
:class:`airinfer.phy.digital_payload.LinkSettings`);
:func:`airinfer.strategies.adaptation.adapt_mcs` sets it for an SNR.

SNR is Es/N0 per complex symbol in dB; symbols have unit energy and the noise
is CN(0, no), ``no = 10**(-snr_db/10)``. ``rayleigh`` is ``phy.digital``'s
fading, i.i.d. CN(0, 1) per symbol with perfect CSI at the receiver. The link
runs on the backend :func:`send` is given: Sionna's blocks through the bridge,
or their JAX twins (``"jax"``, no TensorFlow).

Example::

    hop = DigitalHop(bits=8, low=0.0, high=4.0)
    features_hat = send(key, features, 10.0, hop, "rayleigh")  # [B, V] -> [B, V]
    uses, payload = hop.cost(features.shape[-1])
"""

import dataclasses
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from airinfer.phy import quantize
from airinfer.phy.digital_payload import DIGITAL_CHANNELS, LinkSettings, on_backend

__all__ = ["HOP_CHANNELS", "HopCost", "DigitalHop", "send", "reconstruct"]

#: Channels a digital hop can use (``phy.digital``'s).
HOP_CHANNELS = DIGITAL_CHANNELS

_LDPC_MIN_K = 12
_LDPC_MAX_K = 8448
_MODULATIONS = {"qpsk": 2, "16qam": 4, "64qam": 6}
_CODINGS = ("ldpc", "uncoded")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class HopCost(NamedTuple):
    """Resources of one message of ``V`` values.

    Attributes:
        channel_uses: complex channel uses, ``num_blocks * n / m`` (int).
        payload_bits: info bits of the quantised values, ``V * b`` (int; the
            zero padding of the last block is not counted).
        num_blocks: codewords per message (int).
    """

    channel_uses: int
    payload_bits: int
    num_blocks: int


@dataclasses.dataclass(frozen=True)
class DigitalHop:
    """How a real tensor crosses one digital link; hashable (a static ``jax.jit`` argument).

    Parameters:
        bits: quantiser bits per value, 1..16.
        low, high: the quantiser's range; values outside are clipped.
        modulation: ``"qpsk"`` | ``"16qam"`` | ``"64qam"`` (Gray-mapped QAM).
        coding: ``"ldpc"`` (5G NR LDPC) or ``"uncoded"``.
        code_rate: target LDPC rate in (0, 1) (ignored uncoded).
        max_block_bits: most info bits per codeword (LDPC: 12..8448).
        num_iter: belief-propagation iterations of the decoder.
        mcs: None (``modulation`` and ``code_rate``), or an index of 38.214 MCS
            table ``mcs_table`` that sets both (LDPC only; a ``modulation`` or
            ``code_rate`` changed from its default is then refused). Its table
            is read from Sionna, so :meth:`cost` then imports TensorFlow.
        mcs_table: 1 or 2, only with an ``mcs``.
    """

    bits: int = 8
    low: float = 0.0
    high: float = 1.0
    modulation: str = "qpsk"
    coding: str = "ldpc"
    code_rate: float = 0.5
    max_block_bits: int = _LDPC_MAX_K
    num_iter: int = 20
    mcs: int | None = None
    mcs_table: int = 2

    def __post_init__(self):
        if not _is_int(self.bits) or not 1 <= self.bits <= quantize.MAX_BITS:
            raise ValueError(f"bits must be an int in [1, {quantize.MAX_BITS}], got {self.bits!r}")
        try:
            low, high = float(self.low), float(self.high)
        except (TypeError, ValueError):
            raise ValueError(
                f"low, high must be numbers, got {self.low!r}, {self.high!r}"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"need finite low < high, got low={self.low!r}, high={self.high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.modulation not in _MODULATIONS:
            raise ValueError(
                f"modulation must be one of {tuple(_MODULATIONS)}, got {self.modulation!r}"
            )
        if self.coding not in _CODINGS:
            raise ValueError(f"coding must be one of {_CODINGS}, got {self.coding!r}")
        if self.coding == "ldpc" and not 0 < self.code_rate < 1:
            raise ValueError(f"code_rate must be in (0, 1) for LDPC, got {self.code_rate!r}")
        low_k = _LDPC_MIN_K if self.coding == "ldpc" else 1
        high_k = _LDPC_MAX_K if self.coding == "ldpc" else 2**31 - 1
        if not _is_int(self.max_block_bits) or not low_k <= self.max_block_bits <= high_k:
            raise ValueError(
                f"max_block_bits must be an int in [{low_k}, {high_k}] for {self.coding}, "
                f"got {self.max_block_bits!r}"
            )
        if not _is_int(self.num_iter) or self.num_iter < 1:
            raise ValueError(f"num_iter must be an int >= 1, got {self.num_iter!r}")
        if self.mcs is not None and self.coding != "ldpc":
            raise ValueError(
                f"coding: {self.coding!r} with mcs={self.mcs!r}; an MCS sets an LDPC code"
            )
        LinkSettings.of(self)  # checks mcs and mcs_table

    @classmethod
    def fit(cls, features, bits=8, quantile=1.0, **kwargs):
        """A hop whose quantiser range covers ``features`` (calibration data).

        ``low``/``high`` are the ``1 - quantile`` and ``quantile`` quantiles of
        all values of ``features`` (min and max for ``quantile=1``); a constant
        tensor gets a range of width 1 above its value. ``kwargs`` go to the
        constructor.
        """
        if not 0.5 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0.5, 1], got {quantile!r}")
        values = np.asarray(features, np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("features must be a non-empty array of finite values")
        low, high = np.quantile(values, [1.0 - quantile, quantile])
        if not high > low:
            high = low + 1.0
        return cls(bits=bits, low=float(low), high=float(high), **kwargs)

    @property
    def bits_per_symbol(self):
        """Bits per QAM symbol m: 2, 4 or 6 (8 with a 256QAM MCS)."""
        if self.mcs is not None:
            return LinkSettings.of(self).bits_per_symbol
        return _MODULATIONS[self.modulation]

    def num_blocks(self, num_values):
        """Codewords per message of ``num_values`` values: ``ceil(V b / max_block_bits)``."""
        _check_num_values(num_values)
        return -(-num_values * self.bits // self.max_block_bits)

    def block_bits(self, num_values):
        """Info bits ``k`` of each codeword of a ``num_values`` message:
        ``ceil(V b / num_blocks)``, at least 12 (LDPC) or a whole number of
        symbols (uncoded)."""
        k = -(-num_values * self.bits // self.num_blocks(num_values))
        if self.coding == "uncoded":
            m = self.bits_per_symbol
            return m * -(-k // m)
        return max(k, _LDPC_MIN_K)

    def link(self, num_values, channel):
        """The :class:`~airinfer.phy.digital.LinkConfig` of one ``num_values`` codeword."""
        from airinfer.phy import digital  # imports TensorFlow and Sionna: only when a link is built

        _check_channel(channel)
        k = self.block_bits(num_values)
        if self.mcs is not None:
            link = LinkSettings.of(self).link_config(channel, k)
            return dataclasses.replace(link, num_iter=self.num_iter)
        if self.coding == "uncoded":
            return digital.LinkConfig(self.modulation, channel, "uncoded", k, k, 0.0, self.num_iter)
        m = self.bits_per_symbol
        # Exact rational ceiling: rates such as 1/3 are not exact floats.
        n = m * math.ceil(round(k / (self.code_rate * m), 9))
        return digital.LinkConfig(self.modulation, channel, "ldpc", k, n, 0.0, self.num_iter)

    def cost(self, num_values):
        """:class:`HopCost` of one message of ``num_values`` values (no TensorFlow
        needed without an MCS)."""
        blocks = self.num_blocks(num_values)
        payload = num_values * self.bits
        m = self.bits_per_symbol
        k = self.block_bits(num_values)
        if self.mcs is not None:
            symbols = LinkSettings.of(self).link_config(HOP_CHANNELS[0], k).num_symbols
        elif self.coding == "uncoded":
            symbols = k // m
        else:
            symbols = math.ceil(round(k / (self.code_rate * m), 9))
        return HopCost(blocks * symbols, payload, blocks)

    def _quantizer(self):
        return (self.low + self.high) / 2, (self.high - self.low) / 2


def _check_num_values(num_values):
    if not _is_int(num_values) or num_values < 1:
        raise ValueError(f"num_values must be an int >= 1, got {num_values!r}")


def _check_channel(channel):
    if channel not in HOP_CHANNELS:
        raise ValueError(
            f"channel: {channel!r} is not supported by a digital hop; "
            f"allowed: {', '.join(HOP_CHANNELS)}"
        )


def reconstruct(values, hop):
    """What an error-free hop delivers: ``values`` clipped, quantised and dequantised.

    Input ``[...]`` float; output ``[...]`` float32.
    """
    middle, clip = hop._quantizer()
    codes = quantize.quantize(jnp.asarray(values, jnp.float32) - middle, hop.bits, clip)
    return middle + quantize.dequantize(codes, hop.bits, clip)


def send(key, values, snr_db, hop, channel, *, backend="sionna"):
    """Send every message of ``values`` over its own digital link and rebuild it.

    Input:
        key: JAX PRNG key (fading and noise of every block derive from it).
        values: ``[..., V]`` float; each leading index is one message of ``V``
            values, coded into its own :meth:`DigitalHop.num_blocks` codewords.
        snr_db: scalar or broadcastable to ``values.shape[:-1]``, Es/N0 per
            complex symbol in dB (noise CN(0, no), ``no = 10**(-snr_db/10)``;
            average Es/N0 for ``rayleigh``). Traced values do not recompile.
        hop: :class:`DigitalHop` (static).
        channel: ``"awgn"`` or ``"rayleigh"`` (static).
        backend: ``"sionna"`` or ``"jax"`` (static; a strategy's ``Link.backend``).

    Output:
        ``[..., V]`` float32: the dequantised values of the decided bits. Where
        every bit decodes correctly this equals :func:`reconstruct` exactly.
    """
    from airinfer.phy import digital

    if not isinstance(hop, DigitalHop):
        raise ValueError(f"hop must be a DigitalHop, got {type(hop).__name__}")
    _check_channel(channel)
    values = jnp.asarray(values, jnp.float32)
    if values.ndim < 1 or values.size == 0:
        raise ValueError(f"values must have shape [..., V] with V >= 1, got {values.shape}")
    leading, num_values = values.shape[:-1], values.shape[-1]
    messages = math.prod(leading)
    link = on_backend(hop.link(num_values, channel), backend)
    blocks = hop.num_blocks(num_values)
    payload = num_values * hop.bits
    middle, clip = hop._quantizer()
    bits = quantize.quantize_to_bits(values - middle, hop.bits, clip)  # [..., V, b]
    bits = bits.reshape(messages, payload)
    # Zero padding fills the last block; it is sent but never read back.
    bits = jnp.pad(bits, ((0, 0), (0, blocks * link.k - payload)))
    try:
        snr = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), leading).reshape(messages)
    except ValueError:
        raise ValueError(
            f"snr_db of shape {jnp.shape(snr_db)} does not broadcast to the messages' "
            f"shape {leading}"
        ) from None
    bits_hat, _ = digital.transmit(
        key, bits.reshape(messages * blocks, link.k), jnp.repeat(snr, blocks), link
    )
    bits_hat = bits_hat.reshape(messages, blocks * link.k)[:, :payload]
    values_hat = middle + quantize.bits_to_values(bits_hat.reshape(messages, num_values, -1), clip)
    return values_hat.reshape(values.shape)
