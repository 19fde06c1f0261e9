"""What crosses a split: the feature quantiser and the learned bottleneck.

:class:`FeatureQuantizer` quantises a split point's features to ``bits`` bits
per value (signed mid-rise over ``[-clip, clip]``, or unsigned levels
``i clip / (L - 1)`` for ReLU features; :mod:`airinfer.strategies.split_digital`
says why), with ``clip`` from :func:`calibrate_clip`. The optional
:class:`Bottleneck` shrinks the features' last axis from ``C`` to ``c`` with a
``tanh``-bounded code (quantised over ``[-1, 1]``) and restores it on the
server; :func:`train_bottleneck` trains it through the quantiser with a
straight-through gradient, front and back frozen. The digital split and the
edge ensemble's shared encoder (:mod:`airinfer.strategies.observation`) use both.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from airinfer.models.datasets import Dataset
from airinfer.models.fit import fit
from airinfer.models.zoo import SplitClassifier, feature_shape, xla_flops
from airinfer.phy import quantize
from airinfer.strategies.local import check_images, inference_copy

__all__ = [
    "BOTTLENECK_CLIP",
    "FeatureQuantizer",
    "Bottleneck",
    "bottleneck_flops",
    "check_split_point",
    "calibrate_clip",
    "train_bottleneck",
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
        if not isinstance(self.signed, bool | np.bool_):
            raise ValueError(f"signed: {self.signed!r} is not a bool")
        object.__setattr__(self, "signed", bool(self.signed))

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


def check_split_point(model: SplitClassifier, split_point: str):
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
    check_split_point(model, split_point)
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
    check_split_point(model, split_point)
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
