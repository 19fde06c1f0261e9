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

Both are :class:`FeatureQuantizer` (shared with the edge ensemble's shared
encoder). A value inside the range comes back within half a step,
:attr:`SplitDigitalStrategy.quantization_error_bound`; :func:`calibrate_clip`
picks ``clip`` from a percentile of training features. Every reception
carries an ideal CRC's verdict (``intact``), which the hybrid strategy consults.

An optional learned :class:`Bottleneck` shrinks the features' last axis
(channels of a convolutional feature map, units of a dense one) from ``C`` to
``c`` before quantisation and restores it on the server; its code is
``tanh``-bounded in ``(-1, 1)``, so it is quantised over ``[-1, 1]``.
:func:`train_bottleneck` trains it through the quantiser with a
straight-through gradient (:func:`airinfer.phy.quantize.fake_quantize`), front and back
frozen.

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
import numpy as np
import optax
from flax import nnx

from airinfer.models.datasets import Dataset
from airinfer.models.fit import fit
from airinfer.models.zoo import SplitClassifier, feature_shape, flops, xla_flops
from airinfer.phy import quantize
from airinfer.phy.digital_payload import (
    LinkSettings,
    channel_uses_per_sample,
    num_blocks,
    send_bits,
)
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Cost, Hardware, make_cost
from airinfer.strategies.local import check_common, check_images, inference_copy

__all__ = [
    "FeatureQuantizer",
    "Bottleneck",
    "SplitReception",
    "SplitDigitalStrategy",
    "calibrate_clip",
    "train_bottleneck",
    "bottleneck_flops",
]

#: The bottleneck's code lies in (-1, 1) (tanh): its quantiser clips at 1.
BOTTLENECK_CLIP = 1.0


@dataclasses.dataclass(frozen=True)
class FeatureQuantizer:
    """The ``bits``-bit uniform quantiser of features (the two of the module docstring).

    Parameters:
        bits: bits per value, an int in ``[1, 16]``.
        clip: the range bound, a finite number > 0.
        signed: mid-rise over ``[-clip, clip]`` (True) or levels ``i clip / (L - 1)``
            over ``[0, clip]`` (False, zero a level).
    """

    bits: int
    clip: float
    signed: bool = True

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise ValueError(f"bits: {self.bits!r} is not an int in [1, {quantize.MAX_BITS}]")
        if not 1 <= self.bits <= quantize.MAX_BITS:
            raise ValueError(f"bits: {self.bits} is not in [1, {quantize.MAX_BITS}]")
        if isinstance(self.clip, bool) or not isinstance(self.clip, int | float):
            raise ValueError(f"clip: {self.clip!r} is not a number")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip: {self.clip!r} is not finite and > 0")
        if not isinstance(self.signed, bool):
            raise ValueError(f"signed: {self.signed!r} is not a bool")

    @property
    def error_bound(self) -> float:
        """Largest error of a value inside the range: half a step."""
        if self.signed:
            return self.clip / 2**self.bits
        return self.clip / (2**self.bits - 1) / 2

    def to_bits(self, values):
        """Values ``[...]`` -> bits ``[..., bits]`` float32 of 0/1, MSB first."""
        if self.signed:
            return quantize.quantize_to_bits(values, self.bits, self.clip)
        top = 2**self.bits - 1
        codes = jnp.clip(jnp.round(values * (top / self.clip)), 0, top)
        return quantize.codes_to_bits(codes.astype(jnp.int32), self.bits)

    def to_values(self, bit_array):
        """Bits ``[..., bits]`` (MSB first) -> reconstructed values ``[...]`` float32."""
        if self.signed:
            return quantize.bits_to_values(bit_array, self.clip)
        codes = quantize.bits_to_codes(bit_array).astype(jnp.float32)
        return codes * (self.clip / (2**self.bits - 1))

    def round_trip(self, values):
        """What error-free bits deliver: ``values`` ``[...]`` quantised and rebuilt, float32."""
        return self.to_values(self.to_bits(values))


class Bottleneck(nnx.Module):
    """A learned compressor (device) and expander (server) of the features' last axis.

    Parameters:
        features: ``C``, size of the features' last axis.
        channels: ``c``, size of the code's last axis (``1 <= c``).
        rngs: ``nnx.Rngs`` for the initial weights.

    :meth:`compress` maps ``[..., C]`` to ``tanh(x W + b)`` ``[..., c]`` in
    ``(-1, 1)`` (a 1x1 convolution on feature maps); :meth:`expand` maps
    ``[..., c]`` back to ``[..., C]`` linearly.
    """

    def __init__(self, features: int, channels: int, *, rngs: nnx.Rngs):
        for name, value in (("features", features), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {value!r} is not an int >= 1")
        self.features = features
        self.channels = channels
        self.compressor = nnx.Linear(features, channels, rngs=rngs)
        self.expander = nnx.Linear(channels, features, rngs=rngs)

    def compress(self, features):
        """``[..., C]`` float32 -> code ``[..., c]`` float32 in ``(-1, 1)``."""
        return jnp.tanh(self.compressor(features))

    def expand(self, code):
        """``[..., c]`` float32 -> features ``[..., C]`` float32."""
        return self.expander(code)


def bottleneck_flops(bottleneck: Bottleneck, code_shape: tuple[int, ...], part: str) -> float:
    """XLA's FLOPs of one sample through the bottleneck (a multiply-add counts 2).

    Parameters:
        bottleneck: the :class:`Bottleneck`.
        code_shape: shape of one sample's features before compression, ``(..., C)``.
        part: ``"compress"`` (device) or ``"expand"`` (server).
    """
    if part not in ("compress", "expand"):
        raise ValueError(f"part: unknown {part!r}; allowed: compress, expand")
    graphdef, state = nnx.split(bottleneck)
    shape = tuple(code_shape)
    if part == "expand":
        shape = (*shape[:-1], bottleneck.channels)

    def apply(state, x):
        module = nnx.merge(graphdef, state)
        return module.compress(x) if part == "compress" else module.expand(x)

    return xla_flops(apply, state, jax.ShapeDtypeStruct((1, *shape), jnp.float32))


def _check_split_point(model: SplitClassifier, split_point: str):
    if split_point not in model.split_points:
        raise ValueError(
            f"split_point: unknown {split_point!r}; allowed: {', '.join(model.split_points)}"
        )


def _features(model, split_point, images, batch_size):
    """The front's features of ``images``, computed in batches, as one NumPy array."""
    front = jax.jit(lambda x: model.front(x, split_point))
    parts = [
        np.asarray(front(jnp.asarray(images[start : start + batch_size])))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts)


def calibrate_clip(
    model: SplitClassifier,
    split_point: str,
    images,
    percentile: float = 99.9,
    *,
    batch_size: int = 512,
) -> float:
    """The clip level of the feature quantiser: a percentile of the features' magnitudes.

    Parameters:
        model: the split classifier (run in inference mode).
        split_point: where it is cut.
        images: ``[N, H, W, C]`` float32 training images (normalised).
        percentile: in ``(0, 100]``; 100 gives the largest magnitude seen, so
            nothing of ``images`` is clipped.
        batch_size: images per jitted call.

    Output:
        Python float > 0, ``percentile``-th percentile of ``|features|`` over
        every value of every image (ValueError if all are zero).
    """
    _check_split_point(model, split_point)
    check_images(images)
    if isinstance(percentile, bool) or not isinstance(percentile, int | float):
        raise ValueError(f"percentile: {percentile!r} is not a number in (0, 100]")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile: {percentile!r} is not in (0, 100]")
    features = _features(inference_copy(model), split_point, images, batch_size)
    clip = float(np.percentile(np.abs(features), percentile))
    if not clip > 0:
        raise ValueError(
            f"images: the {percentile}th percentile of |features| at {split_point!r} is "
            f"{clip}; no clip > 0 follows from it"
        )
    return clip


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
        clip: quantiser range bound (a Python float > 0, :func:`calibrate_clip`);
            must be None with a bottleneck, whose code is clipped at 1.
        hardware: compute speeds and symbol rate behind the latency.
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"`` (without an MCS).
        code_rate: LDPC rate ``k / n`` (without an MCS).
        block_bits: info bits ``k`` per LDPC block, in ``[12, 8448]``.
        signed: quantise over ``[-clip, clip]`` (True, mid-rise) or ``[0, clip]``
            (False, zero a level). With a bottleneck it must be True (the code is signed).
        bottleneck: optional :class:`Bottleneck` (:func:`train_bottleneck`).
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
        _check_split_point(self.model, self.split_point)
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


def train_bottleneck(
    key: jax.Array,
    model: SplitClassifier,
    split_point: str,
    dataset: Dataset,
    *,
    bits: int,
    channels: int,
    steps: int,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
) -> Bottleneck:
    """Train a :class:`Bottleneck` at ``split_point`` through a ``bits``-bit quantiser.

    The loss is the cross-entropy of ``back(expand(q(compress(front(x)))))``
    on the training split, ``q`` the ``bits``-bit quantiser over ``[-1, 1]``
    with a straight-through gradient (:func:`airinfer.phy.quantize.fake_quantize`).
    Front and back are frozen (inference mode); only the bottleneck learns,
    with Adam. The link is not in the loop: what the bottleneck learns is a
    compact code for error-free bits.

    Parameters:
        key: JAX PRNG key: initial weights (``fold_in(key, 0)``) and batches
            (``fold_in(fold_in(key, 1), step)``, drawn without replacement).
        model: the trained split classifier.
        split_point: where it is cut.
        dataset: :class:`~airinfer.models.datasets.Dataset`; its ``train_images``, ``train_labels``.
        bits: bits per code value, in ``[1, 16]``.
        channels: ``c``, the code's last axis.
        steps: optimisation steps, >= 1.
        batch_size: samples per step, at most the training set.
        learning_rate: Adam's step size, > 0.

    Output:
        The trained :class:`Bottleneck`.
    """
    _check_split_point(model, split_point)
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset: {type(dataset).__name__} is not a models.datasets.Dataset")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= quantize.MAX_BITS:
        raise ValueError(f"bits: {bits!r} is not an int in [1, {quantize.MAX_BITS}]")
    n = len(dataset.train_labels)
    for name, value, high in (("steps", steps, None), ("batch_size", batch_size, n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {value!r} is not an int >= 1")
        if high is not None and value > high:
            raise ValueError(f"{name}: {value} exceeds the {high} training samples")
    if not (isinstance(learning_rate, int | float) and learning_rate > 0):
        raise ValueError(f"learning_rate: {learning_rate!r} is not a number > 0")

    frozen = inference_copy(model)
    shape = feature_shape(frozen, split_point, dataset.image_shape)
    bottleneck = Bottleneck(shape[-1], channels, rngs=nnx.Rngs(params=jax.random.fold_in(key, 0)))
    graphdef, params = nnx.split(bottleneck)
    batch_key = jax.random.fold_in(key, 1)

    def loss(params, state, key, x, y):
        module = nnx.merge(graphdef, params)
        features = jax.lax.stop_gradient(frozen.front(x, split_point))
        code = quantize.fake_quantize(module.compress(features), bits, BOTTLENECK_CLIP)
        logits = frozen.back(module.expand(code), split_point)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state

    # one "epoch" of `steps` batches, each drawn without replacement with its own key
    rows = jax.vmap(
        lambda s: jax.random.choice(jax.random.fold_in(batch_key, s), n, (batch_size,), False)
    )(jnp.arange(steps))
    fitted = fit(
        loss,
        params,
        optax.adam(learning_rate),
        (dataset.train_images, dataset.train_labels),
        lambda epoch: rows,
        epochs=1,
    )
    return nnx.merge(graphdef, fitted.params)
