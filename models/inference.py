"""Members evaluated together or one by one: the formulation rule, and inference.

Members of one architecture (a :class:`~airinfer.models.ensemble.MemberGroup`) can be
trained (and evaluated) two ways that give the same result for the same seeds:

* ``"loop"``: one jitted single-member step, called for each member in turn.
* ``"vmap"``: one jitted step vmapped over the member axis, all members at once.

Which is faster depends on the backend and the model (:func:`choose_formulation`):

* On an accelerator one small model leaves the device mostly idle, so the
  vmapped step, which fills it with K models' work in one launch, wins by
  several times: ``vmap``. Measured with ``python -m airinfer.benchmarks.train`` on
  one H200 (K = 8, batch 128): CNN width 0.25 on 28×28 3.6–4.0× the loop
  (about 440 k against 120 k samples/s), MLP 5.2–5.9×, MobileNetV2 width 0.5
  on 32×32 4.9× (13.6 k against 2.8 k samples/s).
* On a CPU one small model's step already keeps every core busy. For
  convolutional models vmap loses: XLA lowers vmapped convolutions to grouped
  convolutions, which its CPU backend runs poorly (on 2 cores a vmapped step
  of 8 small CNNs took 379 ms against 118 ms for 8 single-member steps; the
  benchmark measured the vmapped CNN at 0.4–0.6× the loop): ``loop``. For
  dense models (MLP) both run batched GEMMs, and vmap measured 1.0–1.25× the
  loop: ``vmap``.
* With one member there is nothing to vmap: ``loop``.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.models.ensemble import Ensemble, MemberGroup

__all__ = ["FORMULATIONS", "choose_formulation", "jitted_logits", "group_logits", "ensemble_logits"]

FORMULATIONS = ("auto", "loop", "vmap")


def choose_formulation(kind: str, num_members: int, backend: str | None = None) -> str:
    """The faster way to train ``num_members`` members of model kind ``kind``.

    Rule: ``"loop"`` for a single member, and on CPU for convolutional models
    (``cnn``, ``mobilenet_v2``), whose vmapped convolutions XLA's CPU backend
    runs as slow grouped convolutions; ``"vmap"`` otherwise (any accelerator,
    and dense models on CPU). See the module docstring for the measurements.

    Args:
        kind: the model kind (``ModelConfig.kind``).
        num_members: members trained together.
        backend: ``"cpu"``, ``"gpu"``, ``"tpu"``…; default ``jax.default_backend()``.
    """
    backend = backend or jax.default_backend()
    if num_members == 1:
        return "loop"
    if backend == "cpu" and kind != "mlp":
        return "loop"
    return "vmap"


@functools.lru_cache(maxsize=32)
def jitted_logits(graphdef: nnx.GraphDef, members: bool) -> Callable:
    """Jitted inference-mode ``logits(state, images)``, vmapped over a member axis with ``members``.

    Cached per architecture: evaluating again (every epoch's validation, every
    chunk of images) reuses the compiled program.
    """

    def apply(state, images):
        model = nnx.merge(graphdef, state)
        model.eval()
        return model(images)

    return jax.jit(jax.vmap(apply, in_axes=(0, None)) if members else apply)


def group_logits(
    group: MemberGroup, images, *, formulation: str = "auto", chunk_size: int = 1000
) -> np.ndarray:
    """Inference-mode logits of every member of ``group``.

    Args:
        group: the members.
        images: ``[N, H, W, C]`` float32.
        formulation: as in :func:`train_group` (same rule for ``"auto"``).
        chunk_size: images per jitted call; the last chunk is padded to this
            size so that one compilation serves every chunk.

    Returns:
        ``[K, N, num_classes]`` float32.
    """
    if formulation == "auto":
        formulation = choose_formulation(group.config.kind, group.size)
    images = np.asarray(images, np.float32)
    n = images.shape[0]
    chunk_size = min(chunk_size, n)

    if formulation == "vmap":
        apply_members = jitted_logits(group.graphdef, members=True)

        def run(x):
            return apply_members(group.state, x)
    else:
        apply_one = jitted_logits(group.graphdef, members=False)
        member_states = [group.member_state(k) for k in range(group.size)]

        def run(x):
            return jnp.stack([apply_one(state, x) for state in member_states])

    outputs = []
    for start in range(0, n, chunk_size):
        chunk = images[start : start + chunk_size]
        padded = np.concatenate(
            [chunk, np.zeros((chunk_size - len(chunk), *chunk.shape[1:]), np.float32)]
        )
        outputs.append(np.asarray(run(padded))[:, : len(chunk)])
    return np.concatenate(outputs, axis=1)


def ensemble_logits(
    ensemble: Ensemble, images, *, formulation: str = "auto", chunk_size: int = 1000
) -> np.ndarray:
    """Inference-mode logits ``[K, N, C]`` of every member, in member order.

    Member-first: the over-the-air functions of ``airinfer.ota`` take the
    devices second to last, ``[N, K, C]`` (``np.moveaxis(logits, 0, 1)``), and
    check that axis when given ``num_devices=K``.
    """
    return np.concatenate(
        [
            group_logits(g, images, formulation=formulation, chunk_size=chunk_size)
            for g in ensemble.groups
        ]
    )
