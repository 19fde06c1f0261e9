"""A cache of trained artefacts keyed by everything that determines them.

An entry is a checkpoint folder (:mod:`airinfer.models.checkpoint`) named by the
SHA-256 of a canonical JSON description of what was trained and how
(:func:`description_key`); :func:`load_or_build` loads it, or builds the
artefact and stores it there. Trained ensembles use it here
(:func:`cached_train_ensemble`), the analog split link's codecs in
:mod:`airinfer.strategies.jscc`.

An ensemble's key covers the data set (name and split seed), the
:class:`~airinfer.models.ensemble.EnsembleConfig`, the :class:`~airinfer.models.train.TrainConfig`
and the checkpoint format, so an experiment that asks for the same members
again gets the stored ones instead of retraining. The formulation (loop or
vmap) is not part of the key: both give the same members up to float rounding.

The root folder is ``$AIRINFER_CACHE`` if set, else ``~/.cache/airinfer/models``.
"""

import hashlib
import json
import os
import pathlib
import shutil
from collections.abc import Callable
from typing import TypeVar

from airinfer.models.checkpoint import CHECKPOINT_FORMAT, load_ensemble, save_ensemble
from airinfer.models.datasets import Dataset
from airinfer.models.ensemble import Ensemble, EnsembleConfig
from airinfer.models.recipe import TrainConfig
from airinfer.models.train import TrainReport, train_ensemble

__all__ = ["cache_root", "description_key", "load_or_build", "cache_key", "cached_train_ensemble"]

Artefact = TypeVar("Artefact")


def cache_root() -> pathlib.Path:
    """``$AIRINFER_CACHE``, else ``~/.cache/airinfer/models``."""
    return pathlib.Path(os.environ.get("AIRINFER_CACHE") or "~/.cache/airinfer/models").expanduser()


def description_key(description: dict) -> str:
    """Hex SHA-256 of the canonical JSON (sorted keys) of ``description``."""
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def load_or_build(
    path,
    load: Callable[[pathlib.Path], Artefact],
    build: Callable[[pathlib.Path], Artefact],
    save: Callable[[pathlib.Path, Artefact], object],
) -> tuple[Artefact, bool]:
    """The artefact stored at ``path``, or a new one built and stored there.

    Args:
        path: the entry's checkpoint folder.
        load: reads an existing entry.
        build: ``build(partial)`` makes the artefact (trains it) when there is
            no entry. ``partial`` (``<entry>.partial``) is its folder for
            checkpoints: a build that was cut resumes from them; it is removed
            once the entry is stored.
        save: writes a built artefact to ``path`` (orbax: refuses an existing folder).

    Returns:
        ``(artefact, built)``: ``built`` is False when it was loaded.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        return load(path), False
    partial = path.with_name(path.name + ".partial")
    artefact = build(partial)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save(path, artefact)
    except ValueError:
        # orbax refuses an existing destination: another process stored the
        # same artefact first, and theirs is as good
        if not path.is_dir():
            raise
    shutil.rmtree(partial, ignore_errors=True)
    return artefact, True


def cache_key(
    dataset_name: str, split_seed: int, config: EnsembleConfig, train_config: TrainConfig
) -> str:
    """Hex SHA-256 identifying the ensemble that these settings train."""
    return description_key(
        {
            "dataset": dataset_name,
            "split_seed": split_seed,
            "ensemble": config.to_dict(),
            "train": train_config.key_fields(),
            "checkpoint_format": CHECKPOINT_FORMAT,
        }
    )


def cached_train_ensemble(
    dataset: Dataset,
    split_seed: int,
    config: EnsembleConfig,
    train_config: TrainConfig,
    *,
    root=None,
    formulation: str = "auto",
    on_step: Callable[[int], None] | None = None,
) -> tuple[Ensemble, TrainReport | None, pathlib.Path]:
    """Load the ensemble from the cache, or train it and store it there.

    Args:
        dataset: the data (loaded with seed ``split_seed``).
        split_seed: the seed the data set was split with (part of the key).
        config, train_config: what to train.
        root: cache folder (default :func:`cache_root`).
        formulation, on_step: passed to :func:`~airinfer.models.train.train_ensemble`.

    Returns:
        ``(ensemble, report or None when loaded from the cache, checkpoint path)``.
    """
    root = pathlib.Path(root) if root is not None else cache_root()
    path = root / cache_key(dataset.name, split_seed, config, train_config)

    def load(path):
        return load_ensemble(path, config.member_configs())[0], None

    def train(partial):
        # every member's run is saved there after each epoch: a cut training resumes
        return train_ensemble(
            dataset, config, train_config, formulation=formulation, checkpoint=partial,
            on_step=on_step,
        )  # fmt: skip

    def save(path, trained):
        metadata = {
            "dataset": dataset.name,
            "split_seed": split_seed,
            "ensemble": config.to_dict(),
            "train": train_config.key_fields(),
            "train_seconds": trained[1].train_seconds,
            "epochs_run": trained[1].epochs_run,
        }
        save_ensemble(path, trained[0], metadata)

    (ensemble, report), _ = load_or_build(path, load, train, save)
    return ensemble, report, path
