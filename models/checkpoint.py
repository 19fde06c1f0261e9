"""Orbax checkpoints: a JSON description beside a pytree of arrays; ensembles use them.

A checkpoint is one orbax composite checkpoint (a folder) with two items:

* ``description``: JSON that says what the arrays are (a ``format`` number,
  the configs needed to rebuild the models, free ``metadata``);
* ``state``: the arrays, a pytree of pure dicts.

:func:`save_checkpoint`, :func:`read_description` and :func:`restore_state`
store and read any such artefact (trained ensembles here, the analog split
link's codec in :mod:`airinfer.strategies.jscc`). Orbax writes into a temporary folder
and renames it once complete, so a reader never sees a half-written
checkpoint. Arrays are stored and read as host NumPy arrays, and orbax is
told that a checkpoint is this process's alone (:func:`process_local_options`),
so that each process of a ``jax.distributed`` run reads its own without
waiting for the others; orbax writes NumPy arrays from process 0 only, so
only process 0 saves there. Loading first reads the description, checks it against what the
caller expects and fails with :class:`CheckpointMismatchError` naming the
differing fields, before any array is read.

Every checkpoint carries a manifest (``manifest.json``): the SHA-256 of each
of its files, written last and atomically once orbax has stored them
(:func:`write_manifest`); :func:`verify_manifest` finds a file changed or
missing since. Checkpoints written before manifests existed have none.

An ensemble's checkpoint (:func:`save_ensemble`) describes itself as
``{"format": 1, "groups": [{"config": ModelConfig dict, "size": K_g}, ...],
"metadata": {...}}`` and stores the stacked state of each group
(``{"group0": ..., ...}``).
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import secrets

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from airinfer.models.ensemble import Ensemble, MemberGroup
from airinfer.models.zoo import ModelConfig, abstract_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "MANIFEST_FILE",
    "host_local",
    "process_local_options",
    "write_manifest",
    "verify_manifest",
    "save_checkpoint",
    "read_description",
    "check_format",
    "field_differences",
    "restore_state",
    "state_fingerprint",
    "save_ensemble",
    "load_ensemble",
]

CHECKPOINT_FORMAT = 1
#: The file inside a checkpoint listing the SHA-256 of every other file.
MANIFEST_FILE = "manifest.json"
_MANIFEST_FORMAT = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold the models the caller asked for."""


class CorruptCheckpointError(ValueError):
    """A checkpoint's files differ from its manifest, or its manifest is unreadable."""


def _file_digest(path: pathlib.Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _checkpoint_files(path: pathlib.Path) -> list[str]:
    """The files of the checkpoint folder ``path``, relative, sorted (the manifest left out)."""
    return sorted(
        file.relative_to(path).as_posix()
        for file in path.rglob("*")
        if file.is_file() and file.relative_to(path).as_posix() != MANIFEST_FILE
    )


def write_manifest(path) -> pathlib.Path:
    """Write the manifest of the checkpoint folder ``path``: the SHA-256 of each file.

    Written under a temporary name, then renamed: a reader sees no manifest or
    a whole one. Returns the manifest's path.
    """
    path = pathlib.Path(path)
    manifest = {
        "format": _MANIFEST_FORMAT,
        "sha256": {name: _file_digest(path / name) for name in _checkpoint_files(path)},
    }
    target = path / MANIFEST_FILE
    temporary = path / f".{MANIFEST_FILE}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(manifest, file, indent=1, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def verify_manifest(path) -> bool:
    """Check every file of the checkpoint folder ``path`` against its manifest.

    Returns:
        True when the manifest matches; False when there is no manifest (a
        checkpoint written before manifests existed: unverified).

    Raises:
        CorruptCheckpointError: naming the first file that is missing or whose
            SHA-256 differs, or the manifest itself when it is unreadable.
    """
    path = pathlib.Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected = manifest["sha256"]
        if manifest.get("format") != _MANIFEST_FORMAT or not isinstance(expected, dict):
            raise ValueError(f"format {manifest.get('format')!r}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise CorruptCheckpointError(f"{manifest_path} is unreadable ({error})") from None
    for name, digest in sorted(expected.items()):
        file = path / name
        if not file.is_file():
            raise CorruptCheckpointError(f"{file} is missing")
        if _file_digest(file) != digest:
            raise CorruptCheckpointError(f"{file} differs from its SHA-256 in the manifest")
    return True


def process_local_options() -> ocp.options.MultiprocessingOptions:
    """Orbax's multiprocessing options that make a checkpoint this process's alone.

    By default orbax treats a checkpoint as shared by every process of a
    ``jax.distributed`` run: process 0 writes, the others wait at barriers
    for it. airinfer's processes each train or load their members themselves,
    at their own pace, so every process is its own primary host and syncs
    with nobody (on one process these are orbax's defaults).
    """
    if jax.process_count() == 1:
        return ocp.options.MultiprocessingOptions()
    return ocp.options.MultiprocessingOptions(
        primary_host=None, active_processes={jax.process_index()}
    )


def host_local(tree):
    """``tree`` with every array as NumPy on this host.

    Orbax refuses a ``jax.Array`` of one process's devices once several
    processes run (it takes it for a shard of a global array); NumPy arrays are
    stored as they are.
    """
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _checkpointer() -> ocp.Checkpointer:
    options = process_local_options()
    handler = ocp.CompositeCheckpointHandler(
        description=ocp.JsonCheckpointHandler(multiprocessing_options=options),
        state=ocp.StandardCheckpointHandler(multiprocessing_options=options),
        composite_options=ocp.CompositeOptions(multiprocessing_options=options),
    )
    return ocp.Checkpointer(handler, multiprocessing_options=options)


def save_checkpoint(path, description: dict, state) -> pathlib.Path:
    """Write ``description`` and ``state`` to the checkpoint folder ``path`` (which must not exist).

    Args:
        path: the checkpoint folder.
        description: JSON-ready dict, read back by :func:`read_description`.
        state: pytree (nested dicts) of arrays, read back by :func:`restore_state`.

    Returns:
        ``path`` as an absolute ``pathlib.Path``.

    Raises:
        ValueError: ``path`` exists (orbax refuses to overwrite).
        RuntimeError: called on a process other than 0 of a ``jax.distributed``
            run (orbax's NumPy handler writes on process 0 only: the
            checkpoint would hold no arrays).
    """
    if jax.process_index() != 0:
        raise RuntimeError(
            f"save_checkpoint: process {jax.process_index()} of a jax.distributed run "
            "cannot write a checkpoint (orbax stores NumPy arrays on process 0 only)"
        )
    path = pathlib.Path(path).absolute()
    _checkpointer().save(
        path,
        ocp.args.Composite(
            description=ocp.args.JsonSave(description),
            state=ocp.args.StandardSave(host_local(state)),
        ),
    )
    write_manifest(path)
    return path


def read_description(path) -> dict:
    """The JSON description of the checkpoint at ``path`` (no arrays read)."""
    path = pathlib.Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}")
    restored = _checkpointer().restore(path, ocp.args.Composite(description=ocp.args.JsonRestore()))
    return restored["description"]


def check_format(path, description: dict, expected: int):
    """Raise :class:`CheckpointMismatchError` unless ``description["format"]`` is ``expected``."""
    if description.get("format") != expected:
        raise CheckpointMismatchError(
            f"{path}: checkpoint format {description.get('format')!r}, "
            f"this version reads {expected}"
        )


def field_differences(found, expected) -> str:
    """The fields in which two dataclasses of one type differ, for an error message.

    Returns:
        ``"name: checkpoint has <found>, expected <expected>, ..."``; empty when equal.
    """
    return ", ".join(
        f"{field.name}: checkpoint has {getattr(found, field.name)!r}, "
        f"expected {getattr(expected, field.name)!r}"
        for field in dataclasses.fields(expected)
        if getattr(found, field.name) != getattr(expected, field.name)
    )


def restore_state(path, abstract, what: str = "state"):
    """Read the arrays of the checkpoint at ``path``.

    Args:
        path: the checkpoint folder.
        abstract: pytree of the expected arrays (arrays or ``jax.ShapeDtypeStruct``;
            only their structure, shapes and dtypes matter).
        what: names the arrays in the error message (e.g. ``"classifier or codec"``).

    Returns:
        The stored pytree, of the structure of ``abstract``.

    Raises:
        CheckpointMismatchError: the stored arrays have another structure or shape.
    """
    path = pathlib.Path(path).absolute()
    # NumPy leaves make orbax read host-local NumPy arrays (no sharding to
    # agree on with other processes); they go to this process's device after
    abstract = jax.tree.map(lambda leaf: np.empty(leaf.shape, leaf.dtype), abstract)
    try:
        restored = _checkpointer().restore(
            path, ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
    except (ValueError, KeyError) as error:
        raise CheckpointMismatchError(
            f"{path}: the stored {what} has another architecture ({error})"
        ) from None
    return jax.tree.map(jnp.asarray, restored["state"])


def state_fingerprint(module: nnx.Module) -> str:
    """Hex SHA-256 of a module's state: every array's path, dtype, shape and bytes.

    Identifies trained weights in cache keys and checkpoint descriptions.
    """
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(module)))[0]
    for path, leaf in leaves:
        array = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save_ensemble(path, ensemble: Ensemble, metadata: dict | None = None) -> pathlib.Path:
    """Write ``ensemble`` to the checkpoint folder ``path`` (which must not exist).

    Args:
        path: the checkpoint folder.
        ensemble: the members.
        metadata: JSON-ready extras stored in the description (e.g. the
            training config).

    Returns:
        ``path`` as an absolute ``pathlib.Path``.
    """
    description = {
        "format": CHECKPOINT_FORMAT,
        "groups": [
            {"config": group.config.to_dict(), "size": group.size} for group in ensemble.groups
        ],
        "metadata": metadata or {},
    }
    state = {f"group{i}": nnx.to_pure_dict(group.state) for i, group in enumerate(ensemble.groups)}
    return save_checkpoint(path, description, state)


def load_ensemble(path, expected_configs=None) -> tuple[Ensemble, dict]:
    """Read an ensemble checkpoint.

    Args:
        path: the checkpoint folder.
        expected_configs: the architecture of each member, in member order
            (a sequence of :class:`ModelConfig`), or None to accept what is stored.

    Returns:
        ``(ensemble, metadata)``.

    Raises:
        CheckpointMismatchError: the stored format, number of members or any
            member's architecture differs from what was expected.
    """
    description = read_description(path)
    check_format(path, description, CHECKPOINT_FORMAT)
    stored = [
        (ModelConfig(**group["config"]), int(group["size"])) for group in description["groups"]
    ]
    stored_members = [config for config, size in stored for _ in range(size)]
    if expected_configs is not None:
        expected_configs = list(expected_configs)
        if len(expected_configs) != len(stored_members):
            raise CheckpointMismatchError(
                f"{path}: checkpoint has {len(stored_members)} members, "
                f"expected {len(expected_configs)}"
            )
        for k, (expected, found) in enumerate(zip(expected_configs, stored_members, strict=True)):
            if expected != found:
                raise CheckpointMismatchError(
                    f"{path}: member {k} differs: {field_differences(found, expected)}"
                )

    # shapes of the stored arrays: one member's abstract state with the member axis in front
    skeletons, abstract = [], {}
    for i, (config, size) in enumerate(stored):
        graphdef, one_state = nnx.split(abstract_model(config))
        skeletons.append((graphdef, one_state))
        abstract[f"group{i}"] = jax.tree.map(
            lambda leaf, size=size: jax.ShapeDtypeStruct((size, *leaf.shape), leaf.dtype),
            nnx.to_pure_dict(one_state),
        )
    restored = restore_state(path, abstract, "ensemble")
    groups = []
    for i, ((config, _), (graphdef, state)) in enumerate(zip(stored, skeletons, strict=True)):
        # fills the abstract state's variables with the restored stacked arrays
        nnx.replace_by_pure_dict(state, restored[f"group{i}"])
        groups.append(MemberGroup(config, graphdef, state))
    return Ensemble(tuple(groups)), description["metadata"]
