"""Split edge-cloud inference over a digital link: front on the device, back on the server.

The device runs the model's front up to ``split_point``; its features are
quantised to ``bits`` bits per value with clipping, coded with 5G LDPC,
mapped to Gray QAM and sent over the link's channel (:mod:`airinfer.phy.digital`,
Sionna); the server dequantises the decided bits and runs the back::

    images -> front -> [compress] -> quantise -> bits -> LDPC + QAM -> channel
           -> decided bits -> dequantise -> [expand] -> back -> logits

Two uniform quantisers with ``L = 2**bits`` levels, codes packed MSB first
(:mod:`airinfer.phy.quantize`):

* ``signed=True``: :mod:`airinfer.phy.quantize`'s mid-rise quantiser over
  ``[-clip, clip]``, levels ``-clip + (i + 1/2) 2 clip / L``.
* ``signed=False``, for ReLU features (the CNN's and MLP's split points): levels
  ``i clip / (L - 1)``, ``i = 0 .. L - 1``, nearest level. Zero and ``clip``
  are levels: the many exact zeros of ReLU features come back as zeros. (A
  mid-rise quantiser would turn each into half a step, a bias that summed over
  thousands of features wrecks the back's input.)

Both are a :class:`~airinfer.strategies.feature_coding.FeatureQuantizer` (shared
with the edge ensemble's shared encoder). A value inside the range comes back
within half a step, :attr:`SplitDigitalStrategy.quantization_error_bound`;
``calibrate_clip`` picks ``clip`` from a percentile of training features. Every
reception carries an ideal CRC's verdict (``intact``), which the hybrid
strategy consults.

An optional learned ``Bottleneck`` shrinks the features' last axis (channels of
a convolutional feature map, units of a dense one) from ``C`` to ``c`` before
quantisation and restores it on the server; its code is ``tanh``-bounded in
``(-1, 1)``, so it is quantised over ``[-1, 1]``. ``train_bottleneck`` trains it
through the quantiser with a straight-through gradient, front and back frozen.
The three live in :mod:`airinfer.strategies.feature_coding`.

The digital link runs on ``Link.backend`` (Sionna's blocks, or their JAX twins
without TensorFlow, flat channels only), and ``Link.channel`` is one of the
digital link's channels. It runs
``modulation`` at LDPC rate ``code_rate``, or a 5G NR MCS (``mcs``, an index of
38.214 table ``mcs_table``); :func:`airinfer.strategies.adaptation.adapt_mcs`
sets ``mcs`` for an SNR.

Cost of one inference: payload ``F bits`` info bits (``F`` values sent per
sample), channel uses ``ceil(F bits / k) n / bits_per_symbol`` (exact), the
front's FLOPs (plus the compressor's) on the device, the back's (plus the
expander's) on the server.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from airinfer.models.zoo import SplitClassifier, feature_shape, flops
from airinfer.phy.digital_payload import (
    LinkSettings,
    channel_uses_per_sample,
    num_blocks,
    send_bits,
)
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Cost, Hardware, make_cost
from airinfer.strategies.feature_coding import (
    BOTTLENECK_CLIP,
    Bottleneck,
    FeatureQuantizer,
    bottleneck_flops,
    check_split_point,
)
from airinfer.strategies.local import check_common, check_images, inference_copy

__all__ = ["SplitReception", "SplitDigitalStrategy"]


class SplitReception(NamedTuple):
    """Features before and after the link.

    Attributes:
        sent: ``[B, ...]`` float32, the device's values before quantisation
            (the front's features, or the bottleneck's code).
        received: ``[B, ...]`` float32, the server's dequantised values from the decided bits.
        intact: ``[B]`` bool, every sent bit was decided right: what an ideal
            CRC (one that detects every error, its bits not counted) reports.
    """

    sent: jax.Array
    received: jax.Array
    intact: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class SplitDigitalStrategy:
    """Front on the device, quantised features over a digital link, back on the server.

    Parameters:
        model: the split classifier.
        split_point: one of ``model.split_points``.
        bits: bits per value, an int in ``[1, 16]``.
        clip: quantiser range bound (a Python float > 0,
            :func:`~airinfer.strategies.feature_coding.calibrate_clip`);
            must be None with a bottleneck, whose code is clipped at 1.
        hardware: compute speeds and symbol rate behind the latency.
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"`` (without an MCS).
        code_rate: LDPC rate ``k / n`` (without an MCS).
        block_bits: info bits ``k`` per LDPC block, in ``[12, 8448]``.
        signed: quantise over ``[-clip, clip]`` (True, mid-rise) or ``[0, clip]``
            (False, zero a level). With a bottleneck it must be True (the code is signed).
        bottleneck: optional :class:`~airinfer.strategies.feature_coding.Bottleneck`
            (:func:`~airinfer.strategies.feature_coding.train_bottleneck`).
        mcs: None (``modulation`` and ``code_rate``), or an index of 38.214 MCS
            table ``mcs_table`` that sets both (a ``modulation`` or ``code_rate``
            changed from its default is then refused); see
            :class:`~airinfer.phy.digital_payload.LinkSettings` and, to choose it
            per SNR, :func:`airinfer.strategies.adaptation.adapt_mcs`.
        mcs_table: 1 or 2, only with an ``mcs``.

    Input (``__call__``):
        key: JAX PRNG key of the channel and noise; the same key gives the same result.
        images: ``[B, H, W, C]`` float32 normalised images.
        link: :class:`~airinfer.strategies.base.Link`; ``snr_db`` is Es/N0 per complex
            symbol in dB (noise CN(0, no), ``no = 10**(-snr_db/10)``; average
            Es/N0 under Rayleigh fading).

    Output:
        :class:`~airinfer.strategies.base.Outcome` with the server's logits
        ``[B, num_classes]`` float32 and the cost of one inference.
    """

    model: SplitClassifier
    split_point: str
    bits: int
    clip: float | None = None
    hardware: Hardware = Hardware()
    modulation: str = "qpsk"
    code_rate: float = 0.5
    block_bits: int = 512
    signed: bool = True
    bottleneck: Bottleneck | None = None
    mcs: int | None = None
    mcs_table: int = 2
    _flops: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        check_common(self.model, self.hardware)
        check_split_point(self.model, self.split_point)
        if self.bottleneck is not None:
            if not isinstance(self.bottleneck, Bottleneck):
                raise ValueError(
                    f"bottleneck: {type(self.bottleneck).__name__} is not a Bottleneck or None"
                )
            if self.clip is not None:
                raise ValueError(
                    f"clip: {self.clip!r} given with a bottleneck, whose tanh code is "
                    f"clipped at {BOTTLENECK_CLIP}; leave clip None"
                )
            if self.signed is False:
                raise ValueError("signed: False with a bottleneck, whose code is signed")
        elif self.clip is None:
            raise ValueError("clip: None; give the quantiser's range (calibrate_clip)")
        clip = BOTTLENECK_CLIP if self.bottleneck is not None else self.clip
        # checks bits, clip and signed
        object.__setattr__(self, "_quantizer", FeatureQuantizer(self.bits, clip, self.signed))
        # checks modulation, code_rate, mcs and mcs_table, then block_bits, now
        object.__setattr__(self, "_settings", LinkSettings.of(self))
        self.link_config("awgn")

    @property
    def name(self) -> str:
        return f"split_digital_b{self.bits}"

    @property
    def range_bound(self) -> float:
        """The quantiser's clip level: ``clip``, or 1 with a bottleneck."""
        return BOTTLENECK_CLIP if self.bottleneck is not None else float(self.clip)

    @property
    def quantizer(self) -> FeatureQuantizer:
        """The :class:`FeatureQuantizer` of the sent values."""
        return self._quantizer

    @property
    def quantization_error_bound(self) -> float:
        """Largest error of a value inside the quantiser's range: half a step."""
        return self.quantizer.error_bound

    def link_config(self, channel: str):
        """The :class:`airinfer.phy.digital.LinkConfig` used over ``channel``."""
        return self._settings.link_config(channel, self.block_bits)

    def num_blocks(self, input_shape: tuple[int, ...]) -> int:
        """LDPC blocks of one sample's message: ``ceil(payload_bits / block_bits)``."""
        return num_blocks(self.payload_bits(input_shape), self.block_bits)

    def sent_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's quantised values (features, or the bottleneck's code)."""
        shape = feature_shape(self.model, self.split_point, tuple(input_shape))
        if self.bottleneck is not None:
            if shape[-1] != self.bottleneck.features:
                raise ValueError(
                    f"bottleneck: takes {self.bottleneck.features} features on the last axis, "
                    f"the front at {self.split_point!r} gives {shape}"
                )
            shape = (*shape[:-1], self.bottleneck.channels)
        return shape

    def payload_bits(self, input_shape: tuple[int, ...]) -> int:
        """Info bits per sample: values sent times ``bits``."""
        return math.prod(self.sent_shape(input_shape)) * self.bits

    def compute_flops(self, input_shape: tuple[int, ...]) -> tuple[float, float]:
        """``(device, server)`` FLOPs of one sample, bottleneck included."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._flops:
            device = flops(self.model, input_shape, self.split_point, "front")
            server = flops(self.model, input_shape, self.split_point, "back")
            if self.bottleneck is not None:
                shape = feature_shape(self.model, self.split_point, input_shape)
                device += bottleneck_flops(self.bottleneck, shape, "compress")
                server += bottleneck_flops(self.bottleneck, shape, "expand")
            self._flops[input_shape] = (device, server)
        return self._flops[input_shape]

    def quantize_to_bits(self, values):
        """Values ``[...]`` -> bits ``[..., bits]`` float32 of 0/1, MSB first."""
        return self.quantizer.to_bits(values)

    def bits_to_values(self, bit_array):
        """Bits ``[..., bits]`` (MSB first) -> reconstructed values ``[...]`` float32."""
        return self.quantizer.to_values(bit_array)

    def receive(self, key: jax.Array, images: jax.Array, link: Link) -> SplitReception:
        """Run the front, quantise, send and dequantise: the values the server gets.

        Same inputs as ``__call__``; returns a :class:`SplitReception`.
        """
        config = self.link_config(link.channel)
        sent = self.device_output(images)
        batch = sent.shape[0]
        bits = self.quantize_to_bits(sent)
        flat = bits.reshape(batch, -1)
        decided = send_bits(key, flat, link.snr_db, config, backend=link.backend)
        received = self.bits_to_values(decided.reshape(bits.shape))
        return SplitReception(sent, received, jnp.all(decided == flat, axis=-1))

    def device_output(self, images: jax.Array) -> jax.Array:
        """The values the device quantises: its front's features, or their bottleneck
        code, ``[B, ...]`` float32."""
        check_images(images)
        self.sent_shape(images.shape[1:])  # checks the bottleneck against the features
        sent = inference_copy(self.model).front(images, self.split_point)
        return sent if self.bottleneck is None else self.bottleneck.compress(sent)

    def message(self, images: jax.Array, snr_db=None) -> jax.Array:
        """What leaves the device: the quantised features (or bottleneck code) as the
        server rebuilds them from error-free bits, ``[B, ...]`` float32."""
        return self.bits_to_values(self.quantize_to_bits(self.device_output(images)))

    def received(self, key: jax.Array, images: jax.Array, link: Link) -> jax.Array:
        """What the server (or an eavesdropper at the same SNR) gets: the values it rebuilt
        from the decided bits, errors and all, ``[B, ...]`` float32 (as :meth:`message`)."""
        return self.receive(key, images, link).received

    def server(self, received: jax.Array) -> jax.Array:
        """Server side: received values ``[B, ...]`` -> logits ``[B, num_classes]`` float32."""
        if self.bottleneck is not None:
            received = self.bottleneck.expand(received)
        return inference_copy(self.model).back(received, self.split_point)

    def cost(self, input_shape: tuple[int, ...], channel: str) -> Cost:
        """The :class:`~airinfer.strategies.cost.Cost` of a sample over ``channel``."""
        payload = self.payload_bits(input_shape)
        uses = channel_uses_per_sample(payload, self.link_config(channel))
        device, server = self.compute_flops(input_shape)
        return make_cost(float(uses), float(payload), device, server, self.hardware)

    def outcome_with_crc(self, key: jax.Array, images: jax.Array, link: Link):
        """``(outcome, intact)``: what ``__call__`` returns, and ``[B]`` bool, whether each
        sample's features arrived without a bit error (an ideal CRC's verdict)."""
        reception = self.receive(key, images, link)
        cost = self.cost(images.shape[1:], link.channel)
        return Outcome(self.server(reception.received), cost), reception.intact

    def __call__(self, key: jax.Array, images: jax.Array, link: Link) -> Outcome:
        return self.outcome_with_crc(key, images, link)[0]
