"""How a classifier is trained: the settings of a run, and recipes built from them.

:class:`TrainConfig` holds one training run's settings (epochs, batch size,
AdamW, seed, augmentation, early stopping); :func:`converged_recipe` is the
run to convergence that the survey's claims are measured against.
:class:`Augmentation` crops and flips training images with ``dm_pix``;
:class:`Distillation` sets the soft-target loss of a distilled ensemble.
"""

import dataclasses
from typing import NamedTuple

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainConfig", "Augmentation", "converged_recipe", "Distillation"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How members are trained.

    Attributes:
        epochs: passes over each member's index set.
        batch_size: samples per member per step.
        learning_rate: peak learning rate of AdamW, cosine-decayed to 0.
        weight_decay: AdamW's decoupled weight decay.
        seed: root of every key: initialisation, bagging/shards, batch order,
            quantisation, augmentation.
        shift: augmentation: random translations of up to ±``shift`` pixels (0: none).
        flip: augmentation: random left-right flips.
        patience: early stopping: validate after every epoch on the data set's
            validation split, keep the weights of the lowest validation loss,
            stop after ``patience`` epochs without improvement (0: train every
            epoch and keep the last weights). Members trained together
            (``vmap``) stop together, on their mean validation loss.
    """

    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    shift: int = 0
    flip: bool = False
    patience: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not an int >= 1")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: {self.learning_rate} is not > 0")
        for name in ("shift", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: {value!r} is not an int >= 0")
        if not isinstance(self.flip, bool | np.bool_):
            raise ValueError(f"flip: {self.flip!r} is not a bool")
        object.__setattr__(self, "flip", bool(self.flip))

    @property
    def augmentation(self) -> "Augmentation | None":
        """The random crops and flips of every training batch, or None."""
        return Augmentation(self.shift, self.flip) if self.shift or self.flip else None

    def key_fields(self) -> dict:
        """The fields that identify what these settings train (the model cache's key).

        ``shift``, ``flip`` and ``patience`` came later: at their defaults they
        are left out, so entries trained before they existed keep their keys.
        """
        fields = dataclasses.asdict(self)
        return {
            name: value
            for name, value in fields.items()
            if name not in _LATER_FIELDS or value != _LATER_FIELDS[name]
        }


_LATER_FIELDS = {"shift": 0, "flip": False, "patience": 0}


def converged_recipe(dataset: str, image_size: int, seed: int = 0) -> TrainConfig:
    """Training run to convergence: the reference the survey's claims are measured against.

    AdamW with a cosine decay over at most 20 epochs, random translations of up
    to 1/14 of the image side (2 pixels on 28×28, 1 on 8×8), horizontal flips
    where the classes are mirror-symmetric (clothes, CIFAR objects; not
    digits), and early stopping on the validation loss with a patience of 5
    epochs, keeping the best epoch's weights.
    """
    return TrainConfig(
        epochs=20, seed=seed, shift=max(1, round(image_size / 14)),
        flip=dataset != "digits", patience=5,
    )  # fmt: skip


class Augmentation(NamedTuple):
    """Random crops and flips of training images (``dm_pix``), drawn per image.

    Attributes:
        shift: each image is padded by this many pixels (edge values) and a crop
            of its size taken at random: translations of up to ±shift.
        flip: mirror each image left-right with probability 1/2.
    """

    shift: int
    flip: bool

    def __call__(self, key, images):
        """``images [B, H, W, C]`` augmented with ``key``."""

        def one(key, image):
            crop_key, flip_key = jax.random.split(key)
            if self.shift:
                padded = jnp.pad(image, ((self.shift,) * 2, (self.shift,) * 2, (0, 0)), "edge")
                image = pix.random_crop(crop_key, padded, image.shape)
            if self.flip:
                image = pix.random_flip_left_right(flip_key, image)
            return image

        return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)


@dataclasses.dataclass(frozen=True)
class Distillation:
    """Soft targets from a teacher: ``loss = (1-w)·CE(labels) + w·T²·KL(teacher_T ‖ student_T)``."""

    temperature: float = 4.0
    weight: float = 0.7
