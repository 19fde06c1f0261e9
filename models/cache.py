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

Entries are verified when loaded: each carries a manifest with the SHA-256 of
its files (:func:`airinfer.models.checkpoint.write_manifest`). An entry whose
files differ from it, or that cannot be read, is named in one warning line,
moved aside (``<entry>.bad-<time>``, kept for inspection) and built again;
inside :func:`keep_bad_entries` it stops the run instead
(:class:`BadCacheEntryError`). An entry written before manifests existed is
loaded unverified and gets its manifest then.

Runs that share a cache may ask for the same entry at once: one builds it (a
file lock, ``<entry>.lock``), the others wait and then load it, so nothing is
trained twice into the same ``.partial`` folder.
"""

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import jax

from airinfer.models.checkpoint import (
    CHECKPOINT_FORMAT,
    MANIFEST_FILE,
    load_ensemble,
    save_ensemble,
    verify_manifest,
    write_manifest,
)
from airinfer.models.datasets import Dataset
from airinfer.models.ensemble import Ensemble, EnsembleConfig
from airinfer.models.recipe import TrainConfig
from airinfer.models.train import TrainReport, train_ensemble

try:
    import fcntl
except ImportError:  # not POSIX: runs sharing a cache do not wait for each other
    fcntl = None

__all__ = [
    "BadCacheEntryError",
    "cache_root",
    "description_key",
    "keep_bad_entries",
    "load_or_build",
    "cache_key",
    "cached_train_ensemble",
]

Artefact = TypeVar("Artefact")

_log = logging.getLogger(__name__)
_REBUILD_BAD_ENTRIES = contextvars.ContextVar("rebuild_bad_cache_entries", default=True)


class BadCacheEntryError(RuntimeError):
    """A cache entry is corrupt or unreadable, and rebuilding it was not allowed."""


@contextlib.contextmanager
def keep_bad_entries() -> Iterator[None]:
    """Inside this block a bad cache entry stops the run instead of being rebuilt.

    :func:`load_or_build` then raises :class:`BadCacheEntryError` and leaves
    the entry where it is.
    """
    token = _REBUILD_BAD_ENTRIES.set(False)
    try:
        yield
    finally:
        _REBUILD_BAD_ENTRIES.reset(token)


def _load_verified(path: pathlib.Path, load: Callable[[pathlib.Path], Artefact]) -> Artefact:
    """``load(path)`` after checking the entry's files against its manifest.

    An entry without a manifest (written before manifests existed) is loaded
    unverified and, once it loaded, gets its manifest.
    """
    verified = verify_manifest(path)
    artefact = load(path)
    if not verified:
        with contextlib.suppress(OSError):  # a read-only cache stays unverified
            write_manifest(path)
    return artefact


def _move_aside(path: pathlib.Path) -> pathlib.Path:
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    return aside


def cache_root() -> pathlib.Path:
    """``$AIRINFER_CACHE``, else ``~/.cache/airinfer/models``."""
    return pathlib.Path(os.environ.get("AIRINFER_CACHE") or "~/.cache/airinfer/models").expanduser()


def description_key(description: dict) -> str:
    """Hex SHA-256 of the canonical JSON (sorted keys) of ``description``."""
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _exclusive(path: pathlib.Path) -> Iterator[None]:
    """Held while this process loads or builds the entry at ``path``: another run asking
    for it meanwhile waits, then loads what this one stored."""
    if fcntl is None or jax.process_count() > 1:
        # jax.distributed: each process builds on its own devices, without
        # training checkpoints, and only process 0 stores (see _store)
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "a")  # closed below
    except OSError:  # a read-only cache: nothing will be stored there anyway
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log.warning("cache entry %s is being built by another run; waiting for it", path)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing


def load_or_build(
    path,
    load: Callable[[pathlib.Path], Artefact],
    build: Callable[[pathlib.Path], Artefact],
    save: Callable[[pathlib.Path, Artefact], object],
) -> tuple[Artefact, bool]:
    """The artefact stored at ``path``, or a new one built and stored there.

    One process at a time: a run that asks while another builds the same entry
    waits for it and loads its entry.

    Args:
        path: the entry's checkpoint folder.
        load: reads an existing entry.
        build: ``build(partial)`` makes the artefact (trains it) when there is
            no entry. ``partial`` (``<entry>.partial``) is its folder for
            checkpoints: a build that was cut resumes from them; it is removed
            once the entry is stored. None in a ``jax.distributed`` run (no
            training checkpoints there).
        save: writes a built artefact to ``path`` (orbax: refuses an existing
            folder). In a ``jax.distributed`` run only process 0 calls it.

    Returns:
        ``(artefact, built)``: ``built`` is False when it was loaded.

    Raises:
        BadCacheEntryError: the entry is corrupt or unreadable, inside
            :func:`keep_bad_entries` (elsewhere it is moved aside and rebuilt).
    """
    path = pathlib.Path(path)
    with _exclusive(path):
        return _load_or_build(path, load, build, save)


def _load_or_build(path, load, build, save):
    if path.is_dir():
        try:
            return _load_verified(path, load), False
        except Exception as error:  # any failure to read it makes it bad
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            if not _REBUILD_BAD_ENTRIES.get():
                raise BadCacheEntryError(
                    f"cache entry {path} is corrupt or unreadable ({reason}); "
                    "move it away to retrain it"
                ) from None
            try:
                aside = _move_aside(path).name
            except FileNotFoundError:  # another process moved it aside first
                aside = "a .bad folder beside it, by another process"
            _log.warning(
                "cache entry %s is corrupt or unreadable (%s); moved to %s and built again",
                path, reason, aside,
            )  # fmt: skip
    partial = path.with_name(path.name + ".partial")
    if jax.process_count() > 1:
        # the training loop's checkpoints (models.fit's CheckpointManager)
        # hold device arrays, which orbax refuses in a jax.distributed run,
        # and sync all processes: build without them (a cut build restarts)
        partial = None
    artefact = build(partial)
    _store(path, artefact, save)
    if partial is not None:
        shutil.rmtree(partial, ignore_errors=True)
    return artefact, True


def _store(path: pathlib.Path, artefact, save: Callable[[pathlib.Path, Artefact], object]):
    """``save`` the artefact to ``path`` (orbax writes a temporary folder, then renames it).

    In a ``jax.distributed`` run only process 0 stores: orbax writes NumPy
    arrays on process 0 only (its NumpyHandler takes them for copies of one
    replicated array), so another process's entry would hold no arrays. The
    other processes keep the artefact they built.
    """
    if jax.process_index() != 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save(path, artefact)
    except ValueError:
        # orbax refuses an existing destination: another process stored the
        # same artefact first, and theirs is as good
        if not path.is_dir():
            raise
    if not (path / MANIFEST_FILE).exists():  # a save that wrote none
        write_manifest(path)


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
