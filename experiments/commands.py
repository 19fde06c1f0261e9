"""What the training commands (``airinfer train``, ``airinfer train-encoder``) share.

Bad options raise :class:`BadInput`; a command's ``main`` catches it and
returns :func:`fail`'s exit status 2 after one line ``airinfer: error: ...``
naming the option, the value and what is allowed. Only the standard library is
imported at module level: the commands list and help without loading JAX.
"""

import pathlib
import sys

__all__ = ["PROG", "BadInput", "check_choice", "fail", "checkpoint_path", "load_dataset"]

PROG = "airinfer"


class BadInput(ValueError):
    """A bad option; the message names the option, the value and what is allowed."""


def check_choice(name: str, value: str, allowed) -> None:
    """Raise :class:`BadInput` unless ``value`` is one of ``allowed`` (option ``--name``)."""
    if value not in allowed:
        raise BadInput(f"--{name}: unknown {value!r}; allowed: {', '.join(allowed)}")


def fail(error: BadInput) -> int:
    """Print ``error`` as one line ``airinfer: error: ...`` to stderr; returns 2."""
    print(f"{PROG}: error: {error}", file=sys.stderr)
    return 2


def checkpoint_path(out: str, overwrite: bool) -> pathlib.Path:
    """``out/checkpoint``; raises :class:`BadInput` if it exists and ``overwrite`` is False."""
    out = pathlib.Path(out)
    path = out / "checkpoint"
    if path.exists() and not overwrite:
        raise BadInput(f"--out: {out} already holds a checkpoint; pass --overwrite to replace it")
    return path


def load_dataset(name: str, seed: int):
    """:func:`models.datasets.load_dataset`; its ``DatasetError`` as :class:`BadInput`."""
    from airinfer.models.datasets import DatasetError
    from airinfer.models.datasets import load_dataset as load

    try:
        return load(name, seed=seed)
    except DatasetError as error:
        raise BadInput(f"--dataset {name}: {error}") from None
