"""Orbax checkpoints of ensembles, each with a JSON description of its models.

A checkpoint is one orbax composite checkpoint (a folder) with two items:

* ``description``: JSON ``{"format": 1, "groups": [{"config": ModelConfig
  dict, "size": K_g}, ...], "metadata": {...}}``;
* ``state``: the stacked state of each group (``{"group0": ..., ...}``).

Orbax writes into a temporary folder and renames it once complete, so a
reader never sees a half-written checkpoint. Loading first reads the
description, checks it against the architecture the caller expects and fails
with :class:`CheckpointMismatchError` naming the differing fields, before any
array is read.
"""

import dataclasses
import pathlib

import jax
import orbax.checkpoint as ocp
from flax import nnx

from airinfer.models.ensemble import Ensemble, MemberGroup
from airinfer.models.zoo import ModelConfig, abstract_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointMismatchError",
    "save_ensemble",
    "load_ensemble",
    "read_description",
]

CHECKPOINT_FORMAT = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold the models the caller asked for."""


def _checkpointer() -> ocp.Checkpointer:
    return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


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
    path = pathlib.Path(path).absolute()
    description = {
        "format": CHECKPOINT_FORMAT,
        "groups": [
            {"config": group.config.to_dict(), "size": group.size} for group in ensemble.groups
        ],
        "metadata": metadata or {},
    }
    state = {f"group{i}": nnx.to_pure_dict(group.state) for i, group in enumerate(ensemble.groups)}
    _checkpointer().save(
        path,
        ocp.args.Composite(
            description=ocp.args.JsonSave(description), state=ocp.args.StandardSave(state)
        ),
    )
    return path


def read_description(path) -> dict:
    """The JSON description of the checkpoint at ``path`` (no arrays read)."""
    path = pathlib.Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}")
    restored = _checkpointer().restore(path, ocp.args.Composite(description=ocp.args.JsonRestore()))
    return restored["description"]


def _differences(expected: ModelConfig, found: ModelConfig) -> str:
    return ", ".join(
        f"{field.name}: checkpoint has {getattr(found, field.name)!r}, "
        f"expected {getattr(expected, field.name)!r}"
        for field in dataclasses.fields(ModelConfig)
        if getattr(found, field.name) != getattr(expected, field.name)
    )


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
    if description.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(
            f"{path}: checkpoint format {description.get('format')!r}, "
            f"this version reads {CHECKPOINT_FORMAT}"
        )
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
                    f"{path}: member {k} differs: {_differences(expected, found)}"
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
    restored = _checkpointer().restore(
        pathlib.Path(path).absolute(), ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )["state"]
    groups = []
    for i, ((config, _), (graphdef, state)) in enumerate(zip(stored, skeletons, strict=True)):
        # fills the abstract state's variables with the restored stacked arrays
        nnx.replace_by_pure_dict(state, restored[f"group{i}"])
        groups.append(MemberGroup(config, graphdef, state))
    return Ensemble(tuple(groups)), description["metadata"]
