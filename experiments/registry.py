"""The experiments the CLI knows, and the interface each one implements.

An experiment registers itself where it is defined, with literal strings for
its name and summary::

    EXPERIMENT = register(Experiment(name="link_ber", summary="BER and BLER vs Es/N0 ...", ...))

``airinfer list`` must not pay for JAX or TensorFlow, so experiments are found
without importing them (:func:`available`):

- the built-in ones by reading the source of this package's modules for that
  ``register(Experiment(name=..., summary=...))`` call;
- a user's ones through the entry-point group ``airinfer.experiments``: the
  entry point's name is the experiment's name, its value the module that
  registers it (``mypackage.sweep``) or the attribute holding it
  (``mypackage.sweep:EXPERIMENT``); the summary is read from that module's
  source the same way (or is its docstring's first line).

A module is imported only when its experiment is run or plotted (:func:`load`).
Built-in names take precedence over entry points of the same name.
"""

import ast
import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "ENTRY_POINT_GROUP",
    "Experiment",
    "Listing",
    "REGISTERED",
    "available",
    "builtin",
    "load",
    "plugins",
    "register",
]

ENTRY_POINT_GROUP = "airinfer.experiments"
PACKAGE = __name__.rpartition(".")[0]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One sweep: a grid of points, a measurement per point and a plot.

    Attributes:
        name: the CLI name, also the stem of the plot file (``NAME.png``).
        summary: one line for ``airinfer list``.
        config: a frozen dataclass type; every field has a default and there is
            an ``int`` field ``seed``. Nested dataclasses are allowed (``--set
            a.b=value``).
        quick: field overrides (dotted keys) applied by ``--quick``.
        points: ``points(config) -> list[dict]``: the sweep, in order; each dict
            maps column names to the values that identify the point (they
            become the leading CSV columns and the key for resuming).
        run_point: ``run_point(key, config, point) -> dict``: the measured
            columns of one point. ``key`` is ``fold_in(jax.random.key(seed), index)``
            so a result does not depend on which points ran before it.
        plot: ``plot(rows, config, path)`` draws the figure from the CSV rows
            (dicts of column values, numbers already parsed) into ``path``.
        artifacts: optional ``artifacts(config, rows) -> {name: content}``:
            extra files written (atomically) beside the results after the sweep
            (``rows`` as for ``plot``). A content is bytes, or a function
            ``write(path)`` that creates the file or folder ``path`` (a
            checkpoint); such a function is called only when the run computed
            points or ``name`` is missing, so a finished run resumes for free.
    """

    name: str
    summary: str
    config: type
    quick: dict
    points: Callable
    run_point: Callable
    plot: Callable
    artifacts: Callable | None = None


class Listing(NamedTuple):
    """Where an experiment lives, found without importing it.

    Attributes:
        module: the module that registers it.
        summary: its line in ``airinfer list``.
        attribute: for entry points ``module:attribute``, the attribute holding
            the :class:`Experiment`; None when importing the module registers it.
    """

    module: str
    summary: str
    attribute: str | None = None


# name -> Experiment, filled by register() as modules are imported
REGISTERED: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Make ``experiment`` known by its name in this process; returns it unchanged.

    Raises:
        ValueError: another experiment already holds the name.
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"register: expected an Experiment, got {type(experiment).__name__}")
    held = REGISTERED.get(experiment.name)
    if held is not None and held is not experiment:
        raise ValueError(
            f"experiment {experiment.name!r} is already registered "
            f"(config {held.config.__module__}.{held.config.__qualname__})"
        )
    REGISTERED[experiment.name] = experiment
    return experiment


# ----------------------------------------------------------------- found, not imported


def _literal(call: ast.Call, keyword: str) -> str | None:
    """The value of ``keyword=`` in ``call`` when it is a literal string."""
    for item in call.keywords:
        if item.arg == keyword and isinstance(item.value, ast.Constant):
            if isinstance(item.value.value, str):
                return item.value.value
    return None


def _called(node: ast.AST, name: str) -> bool:
    """Whether ``node`` calls ``name`` or ``something.name``."""
    if not isinstance(node, ast.Call):
        return False
    function = node.func
    return getattr(function, "id", None) == name or getattr(function, "attr", None) == name


def registrations(source: str) -> tuple[dict[str, str], str]:
    """``({name: summary}, docstring's first line)`` of a module's source.

    Finds every module-level ``register(Experiment(name="...", summary="..."))``
    (a statement or an assignment's value) whose name is a literal string; a
    summary that is not literal becomes the module docstring's first line.
    """
    tree = ast.parse(source)
    docstring = (ast.get_docstring(tree) or "").strip().partition("\n")[0]
    found = {}
    for statement in tree.body:
        node = getattr(statement, "value", None)
        if _called(node, "register") and node.args and _called(node.args[0], "Experiment"):
            name = _literal(node.args[0], "name")
            if name is not None:
                found[name] = _literal(node.args[0], "summary") or docstring
    return found, docstring


@functools.cache
def builtin() -> dict[str, Listing]:
    """The experiments of this package, from their modules' source (nothing imported)."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "register(" not in source or path.stem == "registry":
            continue
        names, _ = registrations(source)
        for name, summary in names.items():
            found[name] = Listing(f"{PACKAGE}.{path.stem}", summary)
    return found


def _module_summary(module: str, name: str) -> str:
    """The summary of experiment ``name`` in ``module``'s source; "" when unreadable.

    Finding the source imports the module's parent packages, not the module.
    """
    try:
        spec = importlib.util.find_spec(module)
        source = Path(spec.origin).read_text(encoding="utf-8")
        names, docstring = registrations(source)
    except (ImportError, AttributeError, TypeError, ValueError, OSError, SyntaxError):
        return ""
    return names.get(name, docstring)


def plugins() -> dict[str, Listing]:
    """The experiments of the entry-point group ``airinfer.experiments`` (nothing imported)."""
    found = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        summary = _module_summary(entry.module, entry.name)
        found.setdefault(entry.name, Listing(entry.module, summary, entry.attr))
    return found


def available() -> dict[str, Listing]:
    """Every experiment known without importing one: built-in, entry points, registered.

    An entry point named like a built-in experiment is left out with a warning.
    """
    found = dict(builtin())
    for name, listing in plugins().items():
        if name in found:
            warnings.warn(
                f"entry point {name!r} ({listing.module}) of group {ENTRY_POINT_GROUP!r} "
                "is named like a built-in experiment; it is ignored",
                stacklevel=2,
            )
            continue
        found[name] = listing
    for name, experiment in REGISTERED.items():
        found.setdefault(name, Listing(experiment.config.__module__, experiment.summary))
    return found


def load(name: str) -> Experiment:
    """Import (if needed) and return the experiment called ``name``.

    Raises:
        ValueError: no experiment has that name.
        RuntimeError: its module does not register it.
    """
    if name in REGISTERED:
        return REGISTERED[name]
    known = available()
    if name not in known:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(known))}")
    module, _, attribute = known[name]
    imported = importlib.import_module(module)
    if attribute is not None:
        held = imported
        for part in attribute.split("."):
            held = getattr(held, part)
        if isinstance(held, Experiment) and held.name == name and name not in REGISTERED:
            register(held)
    if name not in REGISTERED:
        raise RuntimeError(f"{module} does not register an experiment named {name!r}")
    return REGISTERED[name]
