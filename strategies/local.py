"""Local inference: the compact device model alone, no link.

The device classifies its own input; nothing is sent, so the strategy works
with no link at all (any :class:`~airinfer.strategies.base.Link` is accepted and
ignored). Its cost is the device's FLOPs of one full forward pass
(:func:`airinfer.models.zoo.flops`, XLA's count, a multiply-add counting 2).
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from airinfer.models.zoo import SplitClassifier, flops
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Hardware, make_cost

__all__ = ["LocalStrategy", "inference_copy", "check_images", "check_common"]


def inference_copy(model: SplitClassifier) -> SplitClassifier:
    """A copy of ``model`` in inference mode (BatchNorm uses its running statistics).

    The caller's model keeps its mode; under ``jax.jit`` the copy's weights
    are constants of the compiled program.
    """
    graphdef, state = nnx.split(model)
    copy = nnx.merge(graphdef, state)
    copy.eval()
    return copy


def check_images(images):
    """Raise ValueError unless ``images`` is a float ``[B, H, W, C]`` batch with ``B >= 1``."""
    shape = jnp.shape(images)
    if len(shape) != 4 or shape[0] < 1:
        raise ValueError(f"images: shape {tuple(shape)} is not [batch >= 1, H, W, C]")
    if not jnp.issubdtype(jnp.result_type(images), jnp.floating):
        raise ValueError(f"images: dtype {jnp.result_type(images)} is not floating point")


def check_common(model, hardware):
    """Raise ValueError unless ``model`` is a :class:`SplitClassifier` and ``hardware`` a
    :class:`Hardware`."""
    if not isinstance(model, SplitClassifier):
        raise ValueError(f"model: {type(model).__name__} is not a models.zoo.SplitClassifier")
    if not isinstance(hardware, Hardware):
        raise ValueError(f"hardware: {type(hardware).__name__} is not a strategies.cost.Hardware")


@dataclasses.dataclass(frozen=True, eq=False)
class LocalStrategy:
    """The device model alone.

    Parameters:
        model: the compact device model (:class:`airinfer.models.zoo.SplitClassifier`).
        hardware: compute speeds behind the latency.

    Input (``__call__``):
        key: JAX PRNG key (unused: nothing is random).
        images: ``[B, H, W, C]`` float32, normalised as the model was trained.
        link: :class:`~airinfer.strategies.base.Link` (unused: there is no link).

    Output:
        :class:`~airinfer.strategies.base.Outcome`: ``logits`` ``[B, num_classes]``
        float32 of the model in inference mode; ``cost`` with 0 channel uses,
        0 payload bits, the model's FLOPs on the device, 0 on the server and
        ``latency_s = device_flops / device_flops_per_s``.
    """

    model: SplitClassifier
    hardware: Hardware = Hardware()
    _flops: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        check_common(self.model, self.hardware)

    @property
    def name(self) -> str:
        return "local"

    def message(self, images, snr_db=None) -> None:
        """Nothing leaves the device."""
        return None

    def device_flops(self, input_shape: tuple[int, ...]) -> float:
        """FLOPs of one inference of one ``input_shape`` ``(H, W, C)`` sample."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._flops:
            self._flops[input_shape] = flops(self.model, input_shape)
        return self._flops[input_shape]

    def __call__(self, key: jax.Array, images: jax.Array, link: Link) -> Outcome:
        check_images(images)
        logits = inference_copy(self.model)(images)
        cost = make_cost(0.0, 0.0, self.device_flops(images.shape[1:]), 0.0, self.hardware)
        return Outcome(logits, cost)
