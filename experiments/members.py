"""Trained ensemble members for the experiments, from the model cache.

An experiment names its members with an :class:`EnsembleSpec` (a nested field
of its config, so ``--set ensemble.epochs=5`` works). The first run trains them
and stores them in the model cache (``$AIRINFER_CACHE``, by default
``~/.cache/airinfer/models``); later runs, and every other experiment asking
for the same members, load them instead.
"""

import contextlib
import dataclasses
import functools
from typing import Literal, NamedTuple

import numpy as np

from airinfer.experiments import progress as progress_mode
from airinfer.models.cache import cached_train_ensemble
from airinfer.models.checkpoint import read_description
from airinfer.models.datasets import load_dataset
from airinfer.models.ensemble import EnsembleConfig
from airinfer.models.inference import ensemble_logits
from airinfer.models.recipe import TrainConfig, converged_recipe
from airinfer.models.train import planned_member_steps
from airinfer.models.zoo import ModelConfig, count_params

__all__ = [
    "RECIPES",
    "EnsembleSpec",
    "MemberOutputs",
    "member_outputs",
    "trained_ensemble",
    "training_record",
]

#: How members can be trained (:attr:`EnsembleSpec.recipe`).
RECIPES = ("short", "converged")


@dataclasses.dataclass(frozen=True)
class EnsembleSpec:
    """Which members to train (or load from the cache).

    Attributes:
        dataset: ``digits`` (embedded), ``fashion_mnist`` or ``cifar10``.
        model: ``cnn``, ``mobilenet_v2`` or ``mlp``.
        width: the members' width multiplier.
        members: how many members K.
        diversity: how they differ (``bagging``, ``init``, ``shards``, …).
        epochs: training epochs per member (the ``short`` recipe).
        seed: seeds the data split and the training.
        recipe: ``short``: ``epochs`` of AdamW with a cosine decay, no
            augmentation, the last weights; ``converged``:
            :func:`airinfer.models.train.converged_recipe` (augmentation, up to
            20 epochs, early stopping on the validation loss; ``epochs`` unused).
    """

    dataset: Literal["digits", "fashion_mnist", "cifar10"] = "digits"
    model: Literal["cnn", "mobilenet_v2", "mlp"] = "cnn"
    width: float = 1.0
    members: int = 16
    diversity: Literal["init", "bagging", "shards", "widths", "distillation", "quantization"] = (
        "bagging"
    )
    epochs: int = 3
    seed: int = 0
    recipe: Literal["short", "converged"] = "short"

    def __post_init__(self):
        if not (isinstance(self.members, int) and self.members >= 1):
            raise ValueError(f"ensemble.members: {self.members!r} is not an int >= 1")
        if not 0 < self.width <= 4:
            raise ValueError(f"ensemble.width: {self.width!r} is not in (0, 4]")
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"ensemble.epochs: {self.epochs!r} is not an int >= 1")
        if self.recipe not in RECIPES:
            raise ValueError(f"ensemble.recipe: {self.recipe!r} is not one of {', '.join(RECIPES)}")

    def train_config(self, image_size: int) -> TrainConfig:
        """How the members are trained, for images of side ``image_size``."""
        if self.recipe == "converged":
            return converged_recipe(self.dataset, image_size, self.seed)
        return TrainConfig(epochs=self.epochs, seed=self.seed)


class MemberOutputs(NamedTuple):
    """What the members say about the held-out images.

    Attributes:
        test_logits: ``[K, N, C]`` float32, the members' logits on the test split.
        test_labels: ``[N]`` int32.
        val_logits: ``[K, N_val, C]`` float32, on the validation split (to pick
            the best single member without looking at the test split).
        val_labels: ``[N_val]`` int32.
        params_per_member: parameter count of each member.
    """

    test_logits: np.ndarray
    test_labels: np.ndarray
    val_logits: np.ndarray
    val_labels: np.ndarray
    params_per_member: tuple


@functools.cache
def _trained(spec: EnsembleSpec, progress: bool = True):
    """``(ensemble, dataset, cache entry)`` of ``spec``, trained or loaded."""
    dataset = load_dataset(spec.dataset, seed=spec.seed)
    model = ModelConfig(spec.model, dataset.image_shape, dataset.num_classes, spec.width)
    config = EnsembleConfig(model, spec.members, spec.diversity)
    train_config = spec.train_config(dataset.image_shape[0])
    total = planned_member_steps(len(dataset.train_labels), config, train_config)
    description = f"members: {spec.members} x {spec.model} w{spec.width:g} on {spec.dataset}"
    # progress=False silences this training whatever the run shows; a cache hit
    # takes no step, so it shows one "loaded from cache" line and no bar
    with progress_mode.enabled(False) if not progress else contextlib.nullcontext():
        with progress_mode.training(description, total) as on_step:
            ensemble, _, path = cached_train_ensemble(
                dataset, spec.seed, config, train_config, on_step=on_step
            )
    return ensemble, dataset, path


def trained_ensemble(spec: EnsembleSpec, progress: bool = True):
    """Train or load the members of ``spec``.

    Returns:
        ``(ensemble, dataset)``: the :class:`airinfer.models.ensemble.Ensemble` and the
        :class:`airinfer.models.datasets.Dataset` it was trained on (split with ``spec.seed``).
    """
    return _trained(spec, progress)[:2]


def training_record(spec: EnsembleSpec) -> dict:
    """How the members of ``spec`` were trained, as their cache entry records it.

    Returns:
        The entry's metadata: ``train_seconds`` (the wall time of the training,
        or of its last part when a cut run was resumed), ``epochs_run`` (per
        member; absent from entries written before it was recorded), ``train``
        (the settings) and the data set.
    """
    return read_description(_trained(spec)[2])["metadata"]


@functools.cache
def member_outputs(spec: EnsembleSpec, progress: bool = True) -> MemberOutputs:
    """Train or load the members of ``spec`` and return their logits on validation and test."""
    ensemble, dataset = trained_ensemble(spec, progress)
    return MemberOutputs(
        test_logits=ensemble_logits(ensemble, dataset.test_images),
        test_labels=dataset.test_labels,
        val_logits=ensemble_logits(ensemble, dataset.val_images),
        val_labels=dataset.val_labels,
        params_per_member=tuple(_parameter_counts(ensemble)),
    )


def _parameter_counts(ensemble):
    return [count_params(ensemble.member(k)) for k in range(ensemble.size)]
