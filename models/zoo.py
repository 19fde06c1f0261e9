"""The model zoo: classifiers that can be cut into a device front and a server back.

Every model is a :class:`SplitClassifier`: an ordered list of named stages.
Cutting after stage ``p`` (a *split point*, any stage name but the last) gives a
front ``x -> features`` that runs on the device and a back ``features ->
logits`` that runs on the server; ``back(front(x, p), p) == model(x)``.

Three families, each with a width multiplier that scales its channel or unit
counts:

* ``cnn``: a compact CNN (3×3 conv + ReLU + 2×2 max-pool stages, then a dense
  hidden layer) for 8×8, 28×28 and 32×32 inputs: two conv stages below 32×32
  inputs, three from 32×32 up.
* ``mobilenet_v2``: MobileNetV2 in its CIFAR variant (stride-1 stem, stride 1
  in the second bottleneck group, so 32×32 inputs end at 4×4), channels scaled
  by the width multiplier and rounded to multiples of 8, as in the edge-
  ensemble experiments (widths 0.25, 0.33, 0.5, 1.0). Width 1.0 with 10
  classes has 2.24 M parameters.
* ``mlp``: flatten, two ReLU hidden layers, logits.

Models hold BatchNorm statistics (MobileNetV2) as ``nnx.BatchStat``; call
``model.eval()`` before inference, as usual in NNX.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "MODEL_KINDS",
    "ModelConfig",
    "SplitClassifier",
    "CompactCNN",
    "MobileNetV2",
    "MLP",
    "ConvPool",
    "FlattenDense",
    "build_model",
    "abstract_model",
    "count_params",
    "split_params",
    "feature_shape",
    "flops",
    "xla_flops",
]

MODEL_KINDS = ("cnn", "mobilenet_v2", "mlp")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What a classifier is; everything needed to rebuild it.

    Attributes:
        kind: one of :data:`MODEL_KINDS`.
        input_shape: ``(H, W, C)`` of one image.
        num_classes: number of output logits.
        width: width multiplier (> 0) of channels / hidden units.
    """

    kind: str = "cnn"
    input_shape: tuple[int, int, int] = (8, 8, 1)
    num_classes: int = 10
    width: float = 1.0

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(
                f"model kind: unknown {self.kind!r}; allowed: {', '.join(MODEL_KINDS)}"
            )
        if not (isinstance(self.width, int | float) and 0 < self.width <= 4):
            raise ValueError(f"width: {self.width!r} is not a number in (0, 4]")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape: {self.input_shape!r} is not (H, W, C) of positive ints")
        if self.num_classes < 2:
            raise ValueError(f"num_classes: {self.num_classes} is below 2")
        # JSON round trips give lists; keep the config hashable and comparable
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "width", float(self.width))

    def to_dict(self) -> dict:
        """A JSON-ready dict; ``ModelConfig(**d)`` rebuilds the config."""
        return dataclasses.asdict(self) | {"input_shape": list(self.input_shape)}


class SplitClassifier(nnx.Module):
    """A classifier made of named stages, cut-able after any but the last.

    Subclasses set ``self.stages`` (an ``nnx.List`` of callables) and
    ``self.stage_names`` (a tuple of str of the same length).
    """

    stages: nnx.List
    stage_names: tuple[str, ...]

    @property
    def split_points(self) -> tuple[str, ...]:
        """Names of the stages after which the model can be cut, input to output."""
        return self.stage_names[:-1]

    def _stage_index(self, split_point: str) -> int:
        if split_point not in self.split_points:
            raise ValueError(
                f"split_point: unknown {split_point!r}; allowed: {', '.join(self.split_points)}"
            )
        return self.stage_names.index(split_point)

    def front(self, x, split_point: str):
        """The device part: ``x [B, H, W, C]`` -> features after ``split_point``."""
        for stage in self.stages[: self._stage_index(split_point) + 1]:
            x = stage(x)
        return x

    def back(self, features, split_point: str):
        """The server part: features after ``split_point`` -> logits ``[B, num_classes]``."""
        for stage in self.stages[self._stage_index(split_point) + 1 :]:
            features = stage(features)
        return features

    def __call__(self, x):
        """``x [B, H, W, C]`` float32 -> logits ``[B, num_classes]``."""
        for stage in self.stages:
            x = stage(x)
        return x


# He initialisation for ReLU nets, from a plain normal: the default truncated
# normal compiles one erfinv program per kernel shape, which made building a
# MobileNetV2 take tens of seconds on a CPU.
_KERNEL_INIT = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")


def _scaled(base: int, width: float) -> int:
    return max(1, round(base * width))


class ConvPool(nnx.Module):
    """A stage of :class:`CompactCNN`: 3×3 conv, ReLU, 2×2 max-pool; halves H and W.

    Public so that other packages can take such a stage apart (the horizontal
    partition splits its output channels across devices).

    Input ``[B, H, W, in_channels]`` -> output ``[B, ceil(H/2), ceil(W/2), out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(
            in_channels, out_channels, (3, 3), padding="SAME", kernel_init=_KERNEL_INIT, rngs=rngs
        )

    def __call__(self, x):
        x = jax.nn.relu(self.conv(x))
        return nnx.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")


class FlattenDense(nnx.Module):
    """A dense stage of :class:`CompactCNN` and :class:`MLP`: flatten, dense, optional ReLU.

    Public for the same reason as :class:`ConvPool` (its output units can be
    split across devices).

    Input ``[B, ...]`` with ``in_features`` values per sample -> output ``[B, out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, relu: bool, *, rngs: nnx.Rngs):
        self.dense = nnx.Linear(in_features, out_features, kernel_init=_KERNEL_INIT, rngs=rngs)
        self.relu = relu

    def __call__(self, x):
        x = self.dense(x.reshape(x.shape[0], -1))
        return jax.nn.relu(x) if self.relu else x


class CompactCNN(SplitClassifier):
    """Compact CNN: ``conv1``, ``conv2`` [, ``conv3``], ``hidden``, ``logits``.

    Channels ``(32, 64, 128) × width`` and ``128 × width`` hidden units. Each
    conv stage halves the image (ceil), so 8×8 -> 2×2, 28×28 -> 7×7,
    32×32 -> 4×4. Split points: the conv stages and ``hidden``.
    """

    BASE_CHANNELS = (32, 64, 128)
    BASE_HIDDEN = 128

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        height, width_px, channels = config.input_shape
        num_conv = 3 if min(height, width_px) >= 32 else 2
        widths = [_scaled(c, config.width) for c in self.BASE_CHANNELS[:num_conv]]
        stages, names = [], []
        for i, out_channels in enumerate(widths):
            stages.append(ConvPool(channels, out_channels, rngs=rngs))
            names.append(f"conv{i + 1}")
            channels = out_channels
            height, width_px = math.ceil(height / 2), math.ceil(width_px / 2)
        hidden = _scaled(self.BASE_HIDDEN, config.width)
        stages.append(FlattenDense(height * width_px * channels, hidden, relu=True, rngs=rngs))
        stages.append(FlattenDense(hidden, config.num_classes, relu=False, rngs=rngs))
        self.stages = nnx.List(stages)
        self.stage_names = (*names, "hidden", "logits")


class MLP(SplitClassifier):
    """MLP: ``hidden1``, ``hidden2`` (``256 × width`` ReLU units each), ``logits``."""

    BASE_HIDDEN = 256

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        hidden = _scaled(self.BASE_HIDDEN, config.width)
        self.stages = nnx.List(
            [
                FlattenDense(math.prod(config.input_shape), hidden, relu=True, rngs=rngs),
                FlattenDense(hidden, hidden, relu=True, rngs=rngs),
                FlattenDense(hidden, config.num_classes, relu=False, rngs=rngs),
            ]
        )
        self.stage_names = ("hidden1", "hidden2", "logits")


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round channel counts to multiples of 8 (never below 90 % of ``value``), as MobileNet does."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class _ConvBN(nnx.Module):
    """Conv (no bias), BatchNorm, optional ReLU6."""

    def __init__(self, in_ch, out_ch, kernel, *, stride=1, groups=1, relu6=True, rngs):
        self.conv = nnx.Conv(
            in_ch,
            out_ch,
            (kernel, kernel),
            strides=stride,
            padding="SAME",
            feature_group_count=groups,
            use_bias=False,
            kernel_init=_KERNEL_INIT,
            rngs=rngs,
        )
        # momentum 0.9: running statistics settle within the few epochs we train
        self.norm = nnx.BatchNorm(out_ch, momentum=0.9, rngs=rngs)
        self.relu6 = relu6

    def __call__(self, x):
        x = self.norm(self.conv(x))
        return jax.nn.relu6(x) if self.relu6 else x


class _InvertedResidual(nnx.Module):
    """MobileNetV2 bottleneck: 1×1 expand, 3×3 depthwise, 1×1 linear projection."""

    def __init__(self, in_ch, out_ch, stride, expansion, *, rngs):
        hidden = in_ch * expansion
        layers = [_ConvBN(in_ch, hidden, 1, rngs=rngs)] if expansion != 1 else []
        layers += [
            _ConvBN(hidden, hidden, 3, stride=stride, groups=hidden, rngs=rngs),
            _ConvBN(hidden, out_ch, 1, relu6=False, rngs=rngs),
        ]
        self.layers = nnx.List(layers)
        self.residual = stride == 1 and in_ch == out_ch

    def __call__(self, x):
        y = x
        for layer in self.layers:
            y = layer(y)
        return x + y if self.residual else y


class _Blocks(nnx.Module):
    def __init__(self, blocks):
        self.blocks = nnx.List(blocks)

    def __call__(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class _Head(nnx.Module):
    """1×1 conv to the last channels, then global average pooling."""

    def __init__(self, in_ch, out_ch, *, rngs):
        self.conv = _ConvBN(in_ch, out_ch, 1, rngs=rngs)

    def __call__(self, x):
        return jnp.mean(self.conv(x), axis=(1, 2))


class MobileNetV2(SplitClassifier):
    """MobileNetV2, CIFAR variant: ``stem``, ``stage1`` … ``stage7``, ``head``, ``logits``.

    Bottleneck groups (expansion t, channels c, repeats n, stride s):
    ``(1,16,1,1) (6,24,2,1) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2)
    (6,320,1,1)``; the stem is a stride-1 3×3 conv to 32 channels and the head
    a 1×1 conv to 1280 channels (scaled up, never down, by the width).
    """

    BOTTLENECKS = (
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        channels = _make_divisible(32 * config.width)
        stages = [_ConvBN(config.input_shape[-1], channels, 3, rngs=rngs)]
        names = ["stem"]
        for group, (expansion, base, repeats, stride) in enumerate(self.BOTTLENECKS):
            out_ch = _make_divisible(base * config.width)
            blocks = []
            for i in range(repeats):
                blocks.append(
                    _InvertedResidual(
                        channels, out_ch, stride if i == 0 else 1, expansion, rngs=rngs
                    )
                )
                channels = out_ch
            stages.append(_Blocks(blocks))
            names.append(f"stage{group + 1}")
        last = _make_divisible(1280 * max(1.0, config.width))
        stages.append(_Head(channels, last, rngs=rngs))
        stages.append(nnx.Linear(last, config.num_classes, kernel_init=_KERNEL_INIT, rngs=rngs))
        self.stages = nnx.List(stages)
        self.stage_names = (*names, "head", "logits")


_CLASSES = {"cnn": CompactCNN, "mobilenet_v2": MobileNetV2, "mlp": MLP}


def build_model(config: ModelConfig, key) -> SplitClassifier:
    """Build the classifier described by ``config``, initialised from ``jax.random`` key ``key``.

    The initial weights are drawn with an ``rbg`` key derived from ``key``:
    XLA's own bit generator compiles to a few instructions, where threefry
    unrolls into a large program per weight tensor (building a MobileNetV2
    under ``jit`` compiled for a minute on a 2-core CPU, against seconds).
    ``rbg`` bits may differ between backends; the same key gives the same model
    on one backend.
    """
    init_key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    return _CLASSES[config.kind](config, rngs=nnx.Rngs(params=init_key))


def abstract_model(config: ModelConfig) -> SplitClassifier:
    """The model with shape-only parameters: no allocation, no compilation."""
    return nnx.eval_shape(lambda: build_model(config, jax.random.key(0)))


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (``nnx.Param`` entries; BatchNorm statistics excluded)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def split_params(model: SplitClassifier, split_point: str) -> tuple[int, int]:
    """Parameters of the front (device) and back (server) at ``split_point``."""
    cut = model._stage_index(split_point) + 1
    front = sum(count_params(stage) for stage in model.stages[:cut])
    return front, count_params(model) - front


def _eval_part(model: SplitClassifier, part: str, split_point: str | None):
    """A pure ``(state, x) -> y`` of one part of the model in inference mode."""
    graphdef, state = nnx.split(model)

    def apply(state, x):
        copy = nnx.merge(graphdef, state)
        copy.eval()
        if part == "front":
            return copy.front(x, split_point)
        if part == "back":
            return copy.back(x, split_point)
        return copy(x)

    return apply, state


def feature_shape(
    model: SplitClassifier, split_point: str, input_shape: tuple[int, ...]
) -> tuple[int, ...]:
    """Shape of one sample's features at ``split_point`` (no batch axis), for ``input_shape``."""
    apply, state = _eval_part(model, "front", split_point)
    out = jax.eval_shape(apply, state, jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    return tuple(out.shape[1:])


def flops(
    model: SplitClassifier,
    input_shape: tuple[int, ...],
    split_point: str | None = None,
    part: str = "full",
) -> float:
    """Floating-point operations of one inference on one sample, by XLA's cost analysis.

    XLA counts a multiply-add as 2 flops. The count comes from the program
    lowered for the CPU, before compilation (cheap), on any backend.

    Args:
        model: the classifier.
        input_shape: ``(H, W, C)`` of one image.
        split_point: needed for ``part`` ``"front"`` or ``"back"``.
        part: ``"full"``, ``"front"`` (device) or ``"back"`` (server).
    """
    if part not in ("full", "front", "back"):
        raise ValueError(f"part: unknown {part!r}; allowed: full, front, back")
    apply, state = _eval_part(model, part, split_point)
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    if part == "back":
        x = jax.ShapeDtypeStruct((1, *feature_shape(model, split_point, input_shape)), jnp.float32)
    return xla_flops(apply, state, x)


def xla_flops(function, *args) -> float:
    """Floating-point operations of ``function(*args)`` by XLA's cost analysis.

    XLA counts a multiply-add as 2 flops. Only the shapes and dtypes of
    ``args`` (pytrees of arrays or ``jax.ShapeDtypeStruct``) matter: nothing
    is computed or compiled.

    Args:
        function: a jit-able function.
        *args: its arguments.

    Returns:
        The count as a Python float.
    """
    # Lowered for the CPU whatever the backend: the GPU backend gives no count
    # before compilation, and after it counts none of the convolutions it
    # hands to cuDNN.
    on_cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    structs = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.result_type(leaf), sharding=on_cpu),
        args,
    )
    return float(jax.jit(function).lower(*structs).cost_analysis()["flops"])
