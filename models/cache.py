"""A cache of trained ensembles keyed by everything that determines them.

The key is the SHA-256 of a canonical JSON of the data set (name and split
seed), the :class:`~models.ensemble.EnsembleConfig`, the
:class:`~models.train.TrainConfig` and the checkpoint format, so an experiment
that asks for the same members again gets the stored ones instead of
retraining. The formulation (loop or vmap) is not part of the key: both give
the same members up to float rounding.

The root folder is ``$AIRINFER_CACHE`` if set, else ``~/.cache/airinfer/models``.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
from collections.abc import Callable

from airinfer.models.checkpoint import CHECKPOINT_FORMAT, load_ensemble, save_ensemble
from airinfer.models.datasets import Dataset
from airinfer.models.ensemble import Ensemble, EnsembleConfig
from airinfer.models.train import TrainConfig, TrainReport, train_ensemble

__all__ = ["cache_root", "cache_key", "cached_train_ensemble"]


def cache_root() -> pathlib.Path:
    """``$AIRINFER_CACHE``, else ``~/.cache/airinfer/models``."""
    return pathlib.Path(os.environ.get("AIRINFER_CACHE") or "~/.cache/airinfer/models").expanduser()


def cache_key(
    dataset_name: str, split_seed: int, config: EnsembleConfig, train_config: TrainConfig
) -> str:
    """Hex SHA-256 identifying the ensemble that these settings train."""
    description = {
        "dataset": dataset_name,
        "split_seed": split_seed,
        "ensemble": config.to_dict(),
        "train": dataclasses.asdict(train_config),
        "checkpoint_format": CHECKPOINT_FORMAT,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


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
        formulation, on_step: passed to :func:`~models.train.train_ensemble`.

    Returns:
        ``(ensemble, report or None when loaded from the cache, checkpoint path)``.
    """
    root = pathlib.Path(root) if root is not None else cache_root()
    path = root / cache_key(dataset.name, split_seed, config, train_config)
    if path.is_dir():
        ensemble, _ = load_ensemble(path, config.member_configs())
        return ensemble, None, path
    ensemble, report = train_ensemble(
        dataset, config, train_config, formulation=formulation, on_step=on_step
    )
    root.mkdir(parents=True, exist_ok=True)
    metadata = {
        "dataset": dataset.name,
        "split_seed": split_seed,
        "ensemble": config.to_dict(),
        "train": dataclasses.asdict(train_config),
        "train_seconds": report.train_seconds,
    }
    try:
        save_ensemble(path, ensemble, metadata)
    except ValueError:
        # orbax refuses an existing destination: another process stored the
        # same members first, and theirs are as good
        if not path.is_dir():
            raise
    return ensemble, report, path
