"""Progress on stderr: a bar with an ETA on a terminal, status lines in a log, or nothing.

A run shows its progress in one of three modes (:func:`mode`):

- ``bar`` (stderr is a terminal): tqdm bars, redrawn in place with ``\\r``;
- ``lines`` (stderr is a file or a pipe, e.g. a log): whole lines only, never a
  ``\\r``: one status line per finished sweep point (written by the runner) and
  one line when a training phase starts and one when it ends, with its time;
- ``off`` (``--no-progress``): nothing, training included.

The runner sets the mode for the length of a run (:func:`enabled`); whatever
trains on the way (ensemble members, a codec, a bottleneck) reports through
:func:`training`, a drop-in ``progress(description)`` for
:class:`airinfer.strategies.registry.BuildContext`. A training phase that takes
no step (its model came from the cache) shows no bar: one line says
``loaded from cache`` instead.
"""

import contextlib
import contextvars
import sys
import time
from collections.abc import Callable, Iterator

from tqdm import tqdm

__all__ = ["MODES", "bar", "duration", "enabled", "mode", "status", "training"]

#: The modes a run's progress can be shown in.
MODES = ("bar", "lines", "off")

# None: follow stderr (a bar on a terminal, lines elsewhere).
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "airinfer_progress", default=None
)


def mode() -> str:
    """``bar``, ``lines`` or ``off``: how progress is shown now."""
    forced = _forced.get()
    if forced is not None:
        return forced
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


@contextlib.contextmanager
def enabled(on: bool = True, force: str | None = None) -> Iterator[None]:
    """Within the block, progress follows stderr (``on``) or is silent (not ``on``).

    ``force`` picks a mode of :data:`MODES` whatever stderr is.
    """
    if force is not None and force not in MODES:
        raise ValueError(f"force: {force!r} is not one of {', '.join(MODES)}")
    token = _forced.set(force if force is not None else (None if on else "off"))
    try:
        yield
    finally:
        _forced.reset(token)


def status(text: str) -> None:
    """Write one whole line on stderr, unless progress is off."""
    if mode() != "off":
        print(text, file=sys.stderr, flush=True)


def bar(**kwargs) -> tqdm:
    """A tqdm bar on stderr, drawn only in ``bar`` mode (disabled otherwise)."""
    return tqdm(file=sys.stderr, disable=mode() != "bar", dynamic_ncols=True, **kwargs)


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


@contextlib.contextmanager
def training(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A training phase: yields ``on_step(steps)``, to be called as steps are taken.

    The bar (``bar`` mode) or the start line (``lines`` mode) appears at the
    first step, so that a model loaded from the cache shows neither; the phase
    ends with ``DESCRIPTION: trained in T`` or ``DESCRIPTION: loaded from cache``.

    Args:
        description: what is trained, e.g. ``"members: 16 x cnn w1 on digits"``.
        total: the steps planned (the bar's length and ETA), if known.
    """
    shown = mode()
    started = time.perf_counter()
    state = {"bar": None, "steps": 0}

    def on_step(steps: int = 1) -> None:
        if steps <= 0:
            return
        if state["steps"] == 0:
            if shown == "bar":
                state["bar"] = bar(total=total, desc=description, unit="step")
            elif shown == "lines":
                planned = f" ({total} steps)" if total else ""
                status(f"{description}: training{planned}")
        state["steps"] += steps
        if state["bar"] is not None:
            state["bar"].update(steps)

    try:
        yield on_step
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    # reached only when the phase finished (an error or Ctrl-C says nothing more)
    if state["steps"]:
        status(f"{description}: trained in {duration(time.perf_counter() - started)}")
    else:
        status(f"{description}: loaded from cache")
