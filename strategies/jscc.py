"""Split inference with an analog link: deep joint source-channel coding (JSCC) of features.

The device runs the front of a :class:`~models.zoo.SplitClassifier` up to a
split point, and a learned encoder maps the features to ``k`` complex channel
symbols with exactly unit average energy per symbol for every sample. The
symbols cross the channel uncoded (analog); the server equalises them, a
learned decoder maps them back to features, and the back of the classifier
finishes the inference. Trained end to end through the channel, the scheme
degrades gracefully with the SNR instead of falling off a cliff as a coded
digital link does (Bourtsoulatze et al., "Deep Joint Source-Channel Coding for
Wireless Image Transmission", 2019).

Conventions (:mod:`phy.conventions`): SNR is Es/N0 per complex symbol in dB,
noise is CN(0, no) with ``no = 10**(-snr_db/10)`` for the unit-energy symbols.

Channels (``channel``):

* ``awgn``: ``y = x + n`` (:func:`phy.channels.awgn`).
* ``rayleigh``: one flat fading gain ``h ~ CN(0, 1)`` per sample, held over its
  ``k`` symbols (:func:`phy.channels.flat_fading_mac` with one device).
* ``tdl-a``: 3GPP TDL-A over OFDM (:func:`phy.channels.ofdm_mac`, Sionna
  only): the ``k`` symbols are spread evenly over a resource grid of
  ``ofdm_subcarriers`` subcarriers and ``ceil(k / ofdm_subcarriers)`` OFDM
  symbols (the other resource elements carry nothing and stay free for other
  users, so ``k`` channel uses are counted), each seeing its own gain.

The receiver knows the channel gains and ``no`` and equalises every symbol
with the MMSE weight ``x_hat = conj(h) y / (|h|^2 + no)``: the decoder sees
symbols on the transmitted scale, and a deep fade shrinks a symbol towards 0
instead of amplifying the noise. With ``side_info`` the encoder also sees the
nominal SNR and the decoder the effective SNR of every symbol,
``snr_db + 10 log10 |h|^2`` (clipped to [-50, 70] dB), as an extra input
(concatenated), so one codec serves a range of SNRs.

Training (:func:`train_jscc`) minimises the cross-entropy of the classifier's
logits with optax's Adam, the SNR drawn uniformly from ``snr_range_db`` per
sample and the channel drawn afresh every step, through Sionna via the bridge
(``backend="sionna"``) or through the JAX twins (``"jax"``; no twin of TDL-A).
The front is frozen; the back is optionally fine-tuned. Trained codecs are
stored as orbax checkpoints and cached under a key of everything that
determines them (:func:`cached_train_jscc`).
"""

import dataclasses
import functools
import hashlib
import json
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from airinfer.models.cache import cache_root
from airinfer.models.checkpoint import CheckpointMismatchError
from airinfer.models.datasets import Dataset, epoch_batches
from airinfer.models.zoo import SplitClassifier, feature_shape, flops
from airinfer.phy import channels
from airinfer.phy.conventions import linear_to_db, snr_db_to_no, symbols_to_reals
from airinfer.strategies.base import CHANNELS, Cost, Hardware, Link, Outcome, make_cost

__all__ = [
    "JSCC_CHECKPOINT_FORMAT",
    "SNR_CLIP_DB",
    "JSCCConfig",
    "unit_energy_symbols",
    "FeatureEncoder",
    "FeatureDecoder",
    "JSCCCodec",
    "ofdm_positions",
    "analog_link",
    "jscc_logits",
    "codec_flops",
    "JSCCSplitStrategy",
    "JSCCTrainReport",
    "make_train_step",
    "train_jscc",
    "accuracy_vs_snr",
    "classifier_fingerprint",
    "jscc_cache_key",
    "save_jscc",
    "load_jscc",
    "cached_train_jscc",
]

JSCC_CHECKPOINT_FORMAT = 1
# SNRs entering the networks as side information are clipped to this range
# (dB), so that a deep fade (|h|^2 -> 0) or a noise-free link (snr_db = inf)
# gives finite inputs.
SNR_CLIP_DB = (-50.0, 70.0)
# dB -> network input: 10 dB per unit keeps the usual -10..20 dB near [-1, 2].
_SNR_SCALE_DB = 10.0


@dataclasses.dataclass(frozen=True)
class JSCCConfig:
    """An analog split link and how its encoder/decoder are trained.

    Attributes:
        split_point: where the classifier is cut (a name of its ``split_points``).
        symbols: ``k``, complex channel uses per sample (>= 1).
        channel: ``awgn``, ``rayleigh`` or ``tdl-a``, the training channel.
        snr_range_db: ``(low, high)``: training SNRs (Es/N0 per complex symbol,
            dB) are drawn uniformly from it, one per sample.
        side_info: give the SNR to the encoder and the decoder.
        hidden: hidden units of the encoder and of the decoder.
        fine_tune_back: train the classifier's back end with the codec (the
            front stays frozen either way).
        epochs: passes over the training split.
        batch_size: samples per step.
        learning_rate: peak Adam learning rate, cosine-decayed to 0.
        seed: seeds the initialisation, batch order, SNRs and channel draws.
        backend: ``sionna`` (Sionna's channels through the bridge) or ``jax``
            (the twins; none for ``tdl-a``).
        ofdm_subcarriers: subcarriers of the resource grid (``tdl-a`` only).
    """

    split_point: str = "conv2"
    symbols: int = 16
    channel: Literal["awgn", "rayleigh", "tdl-a"] = "awgn"
    snr_range_db: tuple[float, float] = (-10.0, 20.0)
    side_info: bool = True
    hidden: int = 128
    fine_tune_back: bool = False
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    backend: Literal["sionna", "jax"] = "sionna"
    ofdm_subcarriers: int = 64

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel: unknown {self.channel!r}; allowed: {', '.join(CHANNELS)}")
        if self.backend not in ("sionna", "jax"):
            raise ValueError(f"backend: unknown {self.backend!r}; allowed: sionna, jax")
        if self.channel == "tdl-a" and self.backend == "jax":
            raise ValueError(
                "backend: 'jax' has no twin of the 'tdl-a' channel (OFDM); use backend 'sionna'"
            )
        for name in ("symbols", "hidden", "epochs", "batch_size", "ofdm_subcarriers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name}: {value!r} is not an int >= 1")
        try:
            low, high = (float(v) for v in self.snr_range_db)
        except (TypeError, ValueError):
            raise ValueError(
                f"snr_range_db: {self.snr_range_db!r} is not a pair (low, high) of numbers"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"snr_range_db: {self.snr_range_db!r} is not finite with low <= high")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: {self.learning_rate!r} is not > 0")
        # JSON round trips give lists; keep the config hashable
        object.__setattr__(self, "snr_range_db", (low, high))
        object.__setattr__(self, "side_info", bool(self.side_info))
        object.__setattr__(self, "fine_tune_back", bool(self.fine_tune_back))

    def to_dict(self) -> dict:
        """A JSON-ready dict; ``JSCCConfig(**d)`` rebuilds the config."""
        return dataclasses.asdict(self) | {"snr_range_db": list(self.snr_range_db)}


# --------------------------------------------------------------------------- the codec


def unit_energy_symbols(reals):
    """Pack ``2k`` reals into ``k`` complex symbols of exactly unit average energy.

    Input:
        reals: ``[batch, 2k]`` float, the first ``k`` real parts, then the
            ``k`` imaginary parts.

    Output:
        ``[batch, k]`` complex64 with ``mean(|x|^2) = 1`` over the ``k``
        symbols of every sample. Each row is first divided by its largest
        magnitude, so that neither tiny nor huge inputs under- or overflow when
        squared; an all-zero row becomes ``1 + 0j`` everywhere (still unit
        energy, with a zero gradient instead of a NaN).
    """
    reals = jnp.asarray(reals, jnp.float32)
    if reals.ndim != 2 or reals.shape[-1] % 2:
        raise ValueError(f"reals must have shape [batch, 2k], got {reals.shape}")
    peak = jnp.max(jnp.abs(reals), axis=-1, keepdims=True)
    nonzero = peak > 0
    scaled = reals / jnp.where(nonzero, peak, 1.0)
    # mean |x|^2 over k symbols = 2 * mean of the 2k squared reals; >= 1/k here
    energy = 2.0 * jnp.mean(scaled**2, axis=-1, keepdims=True)
    scaled = scaled * jax.lax.rsqrt(jnp.where(nonzero, energy, 1.0))
    re, im = jnp.split(scaled, 2, axis=-1)
    symbols = jax.lax.complex(re, im)
    return jnp.where(nonzero, symbols, jnp.ones_like(symbols))


def _snr_input(snr_db):
    """SNR in dB as a network input: clipped to :data:`SNR_CLIP_DB`, in units of 10 dB."""
    return jnp.clip(jnp.asarray(snr_db, jnp.float32), *SNR_CLIP_DB) / _SNR_SCALE_DB


class FeatureEncoder(nnx.Module):
    """Device side: features -> ``k`` complex channel symbols of unit average energy.

    A dense ReLU layer and a dense output layer of ``2k`` reals, packed into
    complex symbols by :func:`unit_energy_symbols` (per-sample power constraint).

    Parameters:
        num_features: size of one sample's flattened features.
        symbols: ``k``.
        hidden: hidden units.
        side_info: the SNR is an extra input.
        rngs: ``nnx.Rngs`` for the initial weights.

    Input:
        features: ``[batch, ...]`` float32, the front's output.
        snr_db: ``[batch]`` float32 nominal Es/N0 in dB (used with ``side_info``).

    Output:
        ``[batch, k]`` complex64, ``mean(|x|^2) = 1`` per sample.
    """

    def __init__(self, num_features: int, symbols: int, hidden: int, side_info: bool, *, rngs):
        self.side_info = side_info
        self.hidden = nnx.Linear(num_features + int(side_info), hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 2 * symbols, rngs=rngs)

    def __call__(self, features, snr_db):
        inputs = features.reshape(features.shape[0], -1)
        if self.side_info:
            inputs = jnp.concatenate([inputs, _snr_input(snr_db)[:, None]], axis=-1)
        return unit_energy_symbols(self.out(jax.nn.relu(self.hidden(inputs))))


class FeatureDecoder(nnx.Module):
    """Server side: equalised symbols -> features for the classifier's back end.

    Parameters:
        symbols: ``k``.
        feature_shape: shape of one sample's features (no batch axis).
        hidden: hidden units.
        side_info: the per-symbol effective SNR is an extra input.
        rngs: ``nnx.Rngs`` for the initial weights.

    Input:
        equalised: ``[batch, k]`` complex64, the MMSE-equalised symbols.
        effective_snr_db: ``[batch, k]`` float32, ``snr_db + 10 log10 |h|^2``
            per symbol (used with ``side_info``).

    Output:
        ``[batch, *feature_shape]`` float32.
    """

    def __init__(self, symbols: int, feature_shape, hidden: int, side_info: bool, *, rngs):
        self.side_info = side_info
        self.feature_shape = tuple(int(d) for d in feature_shape)
        inputs = 2 * symbols + (symbols if side_info else 0)
        self.hidden = nnx.Linear(inputs, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, math.prod(self.feature_shape), rngs=rngs)

    def __call__(self, equalised, effective_snr_db):
        inputs = symbols_to_reals(equalised)
        if self.side_info:
            inputs = jnp.concatenate([inputs, _snr_input(effective_snr_db)], axis=-1)
        features = self.out(jax.nn.relu(self.hidden(inputs)))
        return features.reshape(features.shape[0], *self.feature_shape)


class JSCCCodec(nnx.Module):
    """The encoder and decoder of one analog split link.

    Parameters:
        feature_shape: shape of one sample's features at the split point.
        symbols: ``k`` complex channel uses per sample.
        hidden: hidden units of each network.
        side_info: the networks see the SNR.
        rngs: ``nnx.Rngs``.
    """

    def __init__(self, feature_shape, symbols: int, hidden: int, side_info: bool, *, rngs):
        self.feature_shape = tuple(int(d) for d in feature_shape)
        self.symbols = int(symbols)
        num_features = math.prod(self.feature_shape)
        self.encoder = FeatureEncoder(num_features, symbols, hidden, side_info, rngs=rngs)
        self.decoder = FeatureDecoder(symbols, self.feature_shape, hidden, side_info, rngs=rngs)

    @classmethod
    def from_config(cls, config: JSCCConfig, feature_shape, key) -> "JSCCCodec":
        """A freshly initialised codec for ``config``, weights drawn from ``key``."""
        return cls(
            feature_shape,
            config.symbols,
            config.hidden,
            config.side_info,
            rngs=nnx.Rngs(params=key),
        )

    def encode(self, features, snr_db):
        """See :class:`FeatureEncoder`."""
        return self.encoder(features, snr_db)

    def decode(self, equalised, effective_snr_db):
        """See :class:`FeatureDecoder`."""
        return self.decoder(equalised, effective_snr_db)


# --------------------------------------------------------------------------- the channel


def ofdm_positions(symbols: int, subcarriers: int) -> tuple[tuple[int, int], np.ndarray]:
    """Where ``k`` symbols go on the resource grid of the ``tdl-a`` channel.

    The grid has ``ceil(k / subcarriers)`` OFDM symbols of ``subcarriers``
    subcarriers; the ``k`` symbols take evenly spaced resource elements
    (frequency first), so that they spread over the band.

    Returns:
        ``((num_ofdm_symbols, subcarriers), positions)``: ``positions`` ``[k]``
        int, distinct indices into the flattened grid.
    """
    num_ofdm_symbols = -(-symbols // subcarriers)
    size = num_ofdm_symbols * subcarriers
    return (num_ofdm_symbols, subcarriers), (np.arange(symbols) * size) // symbols


def analog_link(key, x, snr_db, channel: str, *, backend="sionna", ofdm_subcarriers: int = 64):
    """Send analog symbols over ``channel`` and equalise them at the receiver.

    Input:
        key: JAX PRNG key (channel and noise).
        x: ``[batch, k]`` complex64 symbols.
        snr_db: Es/N0 per complex symbol in dB, scalar or ``[batch]``; noise is
            CN(0, no) with ``no = 10**(-snr_db/10)`` (``+inf`` gives no noise).
        channel: ``awgn``, ``rayleigh`` or ``tdl-a`` (see the module docstring).
        backend: ``sionna`` or ``jax`` (not for ``tdl-a``).
        ofdm_subcarriers: subcarriers of the ``tdl-a`` resource grid.

    Output:
        ``(equalised, effective_snr_db)``: ``[batch, k]`` complex64, the MMSE
        estimates ``conj(h) y / (|h|^2 + no)``, and ``[batch, k]`` float32,
        ``snr_db + 10 log10 |h|^2`` per symbol.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel: unknown {channel!r}; allowed: {', '.join(CHANNELS)}")
    if backend not in ("sionna", "jax"):
        raise ValueError(f"backend: unknown {backend!r}; allowed: sionna, jax")
    if channel == "tdl-a" and backend == "jax":
        raise ValueError(
            "backend: 'jax' has no twin of the 'tdl-a' channel (OFDM); use backend 'sionna'"
        )
    x = jnp.asarray(x).astype(jnp.complex64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape [batch, k], got {x.shape}")
    batch, k = x.shape
    snr_db = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), (batch,))
    no = snr_db_to_no(snr_db)
    if channel == "awgn":
        y = channels.awgn(key, x, no, backend=backend)
        h = jnp.ones_like(x)
    elif channel == "rayleigh":
        out = channels.flat_fading_mac(key, x[:, None, :], no, backend=backend)
        y = out.y[:, 0, :]
        h = jnp.broadcast_to(out.h_est[:, 0, :], (batch, k))
    else:
        grid_shape, positions = ofdm_positions(k, ofdm_subcarriers)
        grid = jnp.zeros((batch, math.prod(grid_shape)), jnp.complex64).at[:, positions].set(x)
        out = channels.ofdm_mac(key, grid.reshape(batch, 1, *grid_shape), no, model="tdl-a")
        y = out.y[:, 0].reshape(batch, -1)[:, positions]
        h = out.h_est[:, 0, 0].reshape(batch, -1)[:, positions]
    gain = jnp.real(h) ** 2 + jnp.imag(h) ** 2
    # the floor keeps h = 0 with no = 0 (a noise-free deep fade) at 0, not NaN
    denominator = jnp.maximum(gain + no[:, None], jnp.finfo(jnp.float32).tiny)
    equalised = jnp.conj(h) * y / denominator.astype(jnp.complex64)
    effective_snr_db = snr_db[:, None] + linear_to_db(gain)
    return equalised, effective_snr_db


def jscc_logits(classifier, codec, key, images, snr_db, channel, config: JSCCConfig, *, backend):
    """Front, encoder, channel, equaliser, decoder, back: the whole analog split chain.

    Input:
        classifier: the :class:`~models.zoo.SplitClassifier` (used as it is:
            put it in eval mode first).
        codec: the :class:`JSCCCodec`.
        key: JAX PRNG key of the channel.
        images: ``[batch, H, W, C]`` float32.
        snr_db: Es/N0 per complex symbol in dB, scalar or ``[batch]``.
        channel: ``awgn``, ``rayleigh`` or ``tdl-a``.
        config: split point and OFDM grid.
        backend: ``sionna`` or ``jax``.

    Output:
        ``[batch, num_classes]`` float32 logits. No gradient reaches the front.
    """
    features = jax.lax.stop_gradient(classifier.front(images, config.split_point))
    snr_db = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), (images.shape[0],))
    symbols = codec.encode(features, snr_db)
    equalised, effective_snr_db = analog_link(
        key, symbols, snr_db, channel, backend=backend, ofdm_subcarriers=config.ofdm_subcarriers
    )
    return classifier.back(codec.decode(equalised, effective_snr_db), config.split_point)


def _cpu_flops(function, *args) -> float:
    """XLA's flop count of ``function(*args)`` (shape structs), lowered for the CPU.

    As :func:`models.zoo.flops` does: the CPU program gives a count before
    compilation on every backend.
    """
    on_cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    args = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=on_cpu), args)
    return float(jax.jit(function).lower(*args).cost_analysis()["flops"])


def codec_flops(codec: JSCCCodec) -> tuple[float, float]:
    """FLOPs of one sample through the encoder and through the decoder (XLA's count).

    The receiver's equaliser (a complex multiply and divide per symbol) is not
    counted, as a digital link's demapper is not.

    Returns:
        ``(encoder_flops, decoder_flops)``.
    """
    graphdef, state = nnx.split(codec)
    k = codec.symbols

    def encode(state, features, snr_db):
        return nnx.merge(graphdef, state).encode(features, snr_db)

    def decode(state, equalised, effective_snr_db):
        return nnx.merge(graphdef, state).decode(equalised, effective_snr_db)

    encoder = _cpu_flops(
        encode,
        state,
        jax.ShapeDtypeStruct((1, *codec.feature_shape), jnp.float32),
        jax.ShapeDtypeStruct((1,), jnp.float32),
    )
    decoder = _cpu_flops(
        decode,
        state,
        jax.ShapeDtypeStruct((1, k), jnp.complex64),
        jax.ShapeDtypeStruct((1, k), jnp.float32),
    )
    return encoder, decoder


# --------------------------------------------------------------------------- the strategy


@dataclasses.dataclass(frozen=True, eq=False)
class JSCCSplitStrategy:
    """Split inference over an analog link with a learned encoder/decoder (deep JSCC).

    Call it as ``strategy(key, images, link) -> Outcome`` (see
    :mod:`strategies.base`); jit-able: ``jax.jit(strategy)``. ``link.channel``
    and ``link.backend`` choose the channel the symbols cross (it may differ
    from the one the codec was trained on); ``link.connectivity`` plays no part
    (one device, one server).

    Parameters:
        classifier: the split classifier (its back end fine-tuned or not); a
            copy is taken in eval mode.
        codec: the trained :class:`JSCCCodec`.
        config: the link's :class:`JSCCConfig` (split point, ``k``, OFDM grid).
        hardware: compute speeds and symbol rate behind the latency.
        name: ``"split_analog"``.

    Input:
        key: JAX PRNG key (channel and noise).
        images: ``[batch, H, W, C]`` float32.
        link: :class:`~strategies.base.Link`; ``snr_db`` scalar or ``[batch]``.

    Output:
        :class:`~strategies.base.Outcome`: logits ``[batch, num_classes]``
        float32; cost of one sample: ``k`` channel uses, 0 payload bits,
        device FLOPs of the front and the encoder, server FLOPs of the decoder
        and the back (XLA's counts), latency per :func:`strategies.base.latency_s`.
    """

    classifier: SplitClassifier
    codec: JSCCCodec
    config: JSCCConfig
    hardware: Hardware = Hardware()
    name: str = "split_analog"

    def __post_init__(self):
        if self.config.split_point not in self.classifier.split_points:
            raise ValueError(
                f"split_point: unknown {self.config.split_point!r}; allowed: "
                f"{', '.join(self.classifier.split_points)}"
            )
        if self.codec.symbols != self.config.symbols:
            raise ValueError(
                f"symbols: the codec sends {self.codec.symbols}, the config says "
                f"{self.config.symbols}"
            )
        classifier = nnx.clone(self.classifier)
        classifier.eval()
        object.__setattr__(self, "_classifier", nnx.split(classifier))
        object.__setattr__(self, "_codec", nnx.split(nnx.clone(self.codec)))
        object.__setattr__(self, "_costs", {})

    def cost(self, input_shape) -> Cost:
        """The :class:`~strategies.base.Cost` of one sample of shape ``(H, W, C)``."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._costs:
            classifier = nnx.merge(*self._classifier)
            found = feature_shape(classifier, self.config.split_point, input_shape)
            if found != self.codec.feature_shape:
                raise ValueError(
                    f"images: inputs of shape {input_shape} give features {found} at "
                    f"{self.config.split_point!r}, the codec expects {self.codec.feature_shape}"
                )
            encoder, decoder = codec_flops(nnx.merge(*self._codec))
            front = flops(classifier, input_shape, self.config.split_point, "front")
            back = flops(classifier, input_shape, self.config.split_point, "back")
            self._costs[input_shape] = make_cost(
                float(self.config.symbols), 0.0, front + encoder, decoder + back, self.hardware
            )
        return self._costs[input_shape]

    def message(self, images, snr_db):
        """The encoder's ``k`` unit-energy symbols at ``snr_db`` as reals ``[B, 2k]`` float32
        (real parts, then imaginary parts)."""
        images = jnp.asarray(images, jnp.float32)
        features = nnx.merge(*self._classifier).front(images, self.config.split_point)
        snr_db = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), (images.shape[0],))
        return symbols_to_reals(nnx.merge(*self._codec).encode(features, snr_db))

    def __call__(self, key, images, link: Link) -> Outcome:
        images = jnp.asarray(images, jnp.float32)
        if images.ndim != 4:
            raise ValueError(f"images must have shape [batch, H, W, C], got {images.shape}")
        cost = self.cost(images.shape[1:])
        logits = jscc_logits(
            nnx.merge(*self._classifier),
            nnx.merge(*self._codec),
            key,
            images,
            link.snr_db,
            link.channel,
            self.config,
            backend=link.backend,
        )
        return Outcome(logits, cost)


# --------------------------------------------------------------------------- training


class JSCCTrainReport(NamedTuple):
    """What happened while training a codec.

    Attributes:
        losses: ``[steps]`` float32 training cross-entropy of every step.
        train_seconds: wall time, compilation included.
        compile_seconds: wall time of the first step (mostly compilation).
    """

    losses: np.ndarray
    train_seconds: float
    compile_seconds: float


def _check_classifier(classifier: SplitClassifier, dataset: Dataset, config: JSCCConfig):
    if config.split_point not in classifier.split_points:
        raise ValueError(
            f"split_point: unknown {config.split_point!r}; allowed: "
            f"{', '.join(classifier.split_points)}"
        )
    return feature_shape(classifier, config.split_point, dataset.image_shape)


@functools.lru_cache(maxsize=16)
def make_train_step(classifier_def, codec_def, config: JSCCConfig, total_steps: int):
    """The optimiser and the jitted training step of one architecture and config.

    Cached, so that training the same architecture again reuses the compiled step.

    Args:
        classifier_def, codec_def: the ``nnx.GraphDef`` of the classifier and
            of the codec.
        config: the link and training settings.
        total_steps: length of the cosine learning-rate schedule.

    Returns:
        ``(optimizer, step)``: an optax Adam whose state ``step`` updates, and
        ``step(trainable, classifier_state, opt_state, key, images, labels,
        batch) -> (trainable, opt_state, loss)``, where ``trainable`` is
        ``{"codec": state}`` (plus ``"classifier"`` with ``fine_tune_back``),
        ``images [N, H, W, C]`` / ``labels [N]`` the whole training set and
        ``batch [B]`` the rows of this step; ``key`` draws the SNRs (uniform in
        ``snr_range_db``, one per sample) and the channel.
    """
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(1, total_steps))
    optimizer = optax.adam(schedule)
    low, high = config.snr_range_db

    def loss_fn(trainable, classifier_state, key, images, labels):
        if config.fine_tune_back:
            classifier_state = trainable["classifier"]
        classifier = nnx.merge(classifier_def, classifier_state)
        codec = nnx.merge(codec_def, trainable["codec"])
        key_snr, key_channel = jax.random.split(key)
        snr_db = jax.random.uniform(key_snr, (images.shape[0],), jnp.float32, low, high)
        logits = jscc_logits(
            classifier, codec, key_channel, images, snr_db, config.channel, config,
            backend=config.backend,
        )  # fmt: skip
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def step(trainable, classifier_state, opt_state, key, images, labels, batch):
        loss, grads = jax.value_and_grad(loss_fn)(
            trainable, classifier_state, key, images[batch], labels[batch]
        )
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, loss

    return optimizer, jax.jit(step)


def train_jscc(
    classifier: SplitClassifier,
    dataset: Dataset,
    config: JSCCConfig,
    *,
    on_step: Callable[[int], None] | None = None,
) -> tuple[JSCCCodec, SplitClassifier, JSCCTrainReport]:
    """Train a codec end to end through the channel on ``dataset``'s training split.

    Each step draws a batch, one SNR per sample uniformly from
    ``config.snr_range_db`` and a fresh channel realisation, and takes an Adam
    step on the cross-entropy of the classifier's logits. The classifier runs
    in eval mode (BatchNorm statistics fixed); its front is frozen, its back
    is trained too when ``config.fine_tune_back``.

    Keys: ``root = key(config.seed)``; the codec is initialised with
    ``fold_in(root, 0)``; epoch ``e`` shuffles with ``fold_in(fold_in(root,
    1), e)``; step ``s`` draws SNRs and channel with ``fold_in(fold_in(root,
    2), s)``.

    Args:
        classifier: a trained :class:`~models.zoo.SplitClassifier` (not modified).
        dataset: the data (``train_images`` ``[N, H, W, C]``, ``train_labels``).
        config: the link and training settings.
        on_step: called with 1 after every step (a progress bar).

    Returns:
        ``(codec, classifier, report)``: the trained codec, the classifier (a
        copy in eval mode, its back fine-tuned if asked) and a
        :class:`JSCCTrainReport`.
    """
    start = time.perf_counter()
    features = _check_classifier(classifier, dataset, config)
    root = jax.random.key(config.seed)
    codec = JSCCCodec.from_config(config, features, jax.random.fold_in(root, 0))
    classifier = nnx.clone(classifier)
    classifier.eval()
    classifier_def, classifier_state = nnx.split(classifier)
    codec_def, codec_state = nnx.split(codec)

    n = len(dataset.train_labels)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size
    total_steps = config.epochs * steps_per_epoch
    optimizer, step = make_train_step(classifier_def, codec_def, config, total_steps)

    trainable = {"codec": codec_state}
    if config.fine_tune_back:
        trainable["classifier"] = classifier_state
    opt_state = optimizer.init(trainable)
    images, labels = jnp.asarray(dataset.train_images), jnp.asarray(dataset.train_labels)
    rows = np.arange(n, dtype=np.int32)
    batch_root, step_root = jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)
    losses, compile_seconds = [], 0.0
    for epoch in range(config.epochs):
        for batch in epoch_batches(jax.random.fold_in(batch_root, epoch), rows, batch_size):
            index = len(losses)
            trainable, opt_state, loss = step(
                trainable,
                classifier_state,
                opt_state,
                jax.random.fold_in(step_root, index),
                images,
                labels,
                jnp.asarray(batch),
            )
            if index == 0:
                loss.block_until_ready()
                compile_seconds = time.perf_counter() - start
            losses.append(loss)
            if on_step:
                on_step(1)
    losses = np.asarray(jnp.stack(losses)) if losses else np.zeros(0, np.float32)
    codec = nnx.merge(codec_def, trainable["codec"])
    classifier = nnx.merge(classifier_def, trainable.get("classifier", classifier_state))
    report = JSCCTrainReport(losses, time.perf_counter() - start, compile_seconds)
    return codec, classifier, report


def accuracy_vs_snr(
    strategy: JSCCSplitStrategy,
    key,
    images,
    labels,
    snr_db: Sequence[float],
    *,
    channel: str = "awgn",
    backend: str = "sionna",
    chunk_size: int = 1000,
) -> np.ndarray:
    """Test accuracy of ``strategy`` at each SNR.

    Point ``i`` uses the key ``fold_in(key, i)`` (and ``fold_in`` of that per
    chunk), so a point's result does not depend on the other points. One
    compiled function serves every point: the SNR is a traced value.

    Args:
        strategy: the analog split strategy.
        key: JAX PRNG key.
        images: ``[N, H, W, C]`` float32; labels: ``[N]`` int.
        snr_db: Es/N0 per complex symbol in dB, one per point.
        channel, backend: of the :class:`~strategies.base.Link`.
        chunk_size: images per call (the last chunk is padded to it).

    Returns:
        ``[len(snr_db)]`` float64 accuracies in [0, 1].
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    n = len(labels)
    chunk_size = min(chunk_size, n)
    run = jax.jit(strategy)
    accuracies = []
    for i, snr in enumerate(snr_db):
        point_key = jax.random.fold_in(key, i)
        correct = 0
        for c, begin in enumerate(range(0, n, chunk_size)):
            chunk = images[begin : begin + chunk_size]
            padded = np.concatenate(
                [chunk, np.zeros((chunk_size - len(chunk), *chunk.shape[1:]), np.float32)]
            )
            link = Link(snr_db=jnp.float32(snr), channel=channel, backend=backend)
            logits = run(jax.random.fold_in(point_key, c), padded, link).logits
            predictions = np.asarray(logits)[: len(chunk)].argmax(-1)
            correct += int((predictions == labels[begin : begin + chunk_size]).sum())
        accuracies.append(correct / n)
    return np.asarray(accuracies, np.float64)


# --------------------------------------------------------------------------- checkpoints and cache


def classifier_fingerprint(classifier: SplitClassifier) -> str:
    """Hex SHA-256 of the classifier's state (every array's path, dtype, shape and bytes)."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(classifier)))[0]
    for path, leaf in leaves:
        array = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def jscc_cache_key(
    dataset_name: str, split_seed: int, classifier: SplitClassifier, config: JSCCConfig
) -> str:
    """Hex SHA-256 identifying the codec these settings train (the classifier by its weights)."""
    description = {
        "dataset": dataset_name,
        "split_seed": split_seed,
        "classifier": classifier_fingerprint(classifier),
        "jscc": config.to_dict(),
        "checkpoint_format": JSCC_CHECKPOINT_FORMAT,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def _checkpointer() -> ocp.Checkpointer:
    return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def save_jscc(
    path,
    codec: JSCCCodec,
    classifier: SplitClassifier,
    config: JSCCConfig,
    metadata: dict | None = None,
) -> pathlib.Path:
    """Write a codec and its classifier to the orbax checkpoint folder ``path`` (must not exist).

    The checkpoint has two items: ``description`` (JSON: format, config,
    feature shape, the classifier's fingerprint, ``metadata``) and ``state``
    (``{"codec": ..., "classifier": ...}``; the classifier is stored whole, so
    a fine-tuned back end comes back with it).

    Returns:
        ``path`` as an absolute ``pathlib.Path``.
    """
    path = pathlib.Path(path).absolute()
    description = {
        "format": JSCC_CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "feature_shape": list(codec.feature_shape),
        "classifier_sha256": classifier_fingerprint(classifier),
        "metadata": metadata or {},
    }
    state = {
        "codec": nnx.to_pure_dict(nnx.state(codec)),
        "classifier": nnx.to_pure_dict(nnx.state(classifier)),
    }
    _checkpointer().save(
        path,
        ocp.args.Composite(
            description=ocp.args.JsonSave(description), state=ocp.args.StandardSave(state)
        ),
    )
    return path


def load_jscc(
    path, classifier: SplitClassifier, expected_config: JSCCConfig | None = None
) -> tuple[JSCCCodec, SplitClassifier, JSCCConfig, dict]:
    """Read a checkpoint written by :func:`save_jscc`.

    Args:
        path: the checkpoint folder.
        classifier: a classifier of the stored architecture (its weights are
            replaced by the stored ones; it is not modified).
        expected_config: the config the caller expects, or None to accept
            what is stored.

    Returns:
        ``(codec, classifier, config, metadata)``.

    Raises:
        CheckpointMismatchError: other format, or a config field differs
            (named in the message), or the classifier's architecture differs.
    """
    path = pathlib.Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}")
    description = _checkpointer().restore(
        path, ocp.args.Composite(description=ocp.args.JsonRestore())
    )["description"]
    if description.get("format") != JSCC_CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(
            f"{path}: checkpoint format {description.get('format')!r}, "
            f"this version reads {JSCC_CHECKPOINT_FORMAT}"
        )
    config = JSCCConfig(**description["config"])
    if expected_config is not None and config != expected_config:
        differences = ", ".join(
            f"{f.name}: checkpoint has {getattr(config, f.name)!r}, "
            f"expected {getattr(expected_config, f.name)!r}"
            for f in dataclasses.fields(JSCCConfig)
            if getattr(config, f.name) != getattr(expected_config, f.name)
        )
        raise CheckpointMismatchError(f"{path}: config differs: {differences}")
    shape = tuple(description["feature_shape"])
    codec_def, codec_state = nnx.split(
        nnx.eval_shape(lambda: JSCCCodec.from_config(config, shape, jax.random.key(0)))
    )
    classifier = nnx.clone(classifier)
    classifier_def, classifier_state = nnx.split(classifier)
    abstract = {
        "codec": nnx.to_pure_dict(codec_state),
        "classifier": nnx.to_pure_dict(classifier_state),
    }
    abstract = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype), abstract)
    try:
        restored = _checkpointer().restore(
            path, ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )["state"]
    except (ValueError, KeyError) as error:
        raise CheckpointMismatchError(
            f"{path}: the stored classifier or codec has another architecture ({error})"
        ) from None
    nnx.replace_by_pure_dict(codec_state, restored["codec"])
    nnx.replace_by_pure_dict(classifier_state, restored["classifier"])
    codec = nnx.merge(codec_def, codec_state)
    classifier = nnx.merge(classifier_def, classifier_state)
    classifier.eval()
    return codec, classifier, config, description["metadata"]


def cached_train_jscc(
    classifier: SplitClassifier,
    dataset: Dataset,
    split_seed: int,
    config: JSCCConfig,
    *,
    root=None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[JSCCCodec, SplitClassifier, JSCCTrainReport | None, pathlib.Path]:
    """Load the codec from the cache, or train it with :func:`train_jscc` and store it there.

    The key (:func:`jscc_cache_key`) covers the data set and split seed, the
    classifier's weights and the whole :class:`JSCCConfig` (backend included:
    the two backends draw different channels). Entries live in
    ``root / "jscc-<key>"``, ``root`` defaulting to :func:`models.cache.cache_root`.

    Returns:
        ``(codec, classifier, report or None when loaded, checkpoint path)``.
    """
    root = pathlib.Path(root) if root is not None else cache_root()
    _check_classifier(classifier, dataset, config)
    path = root / f"jscc-{jscc_cache_key(dataset.name, split_seed, classifier, config)}"
    if path.is_dir():
        codec, trained, _, _ = load_jscc(path, classifier, config)
        return codec, trained, None, path
    codec, trained, report = train_jscc(classifier, dataset, config, on_step=on_step)
    root.mkdir(parents=True, exist_ok=True)
    metadata = {
        "dataset": dataset.name,
        "split_seed": split_seed,
        "train_seconds": report.train_seconds,
        "final_loss": float(report.losses[-1]) if len(report.losses) else None,
    }
    try:
        save_jscc(path, codec, trained, config, metadata)
    except ValueError:
        # orbax refuses an existing destination: another process stored the
        # same codec first, and theirs is as good
        if not path.is_dir():
            raise
    return codec, trained, report, path
