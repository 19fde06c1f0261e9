"""Run an experiment's sweep into a results folder, resumably, and plot it.

A results folder holds four files, each replaced atomically
(:mod:`airinfer.experiments.folder`), so an interrupted run never leaves a
half-written file behind:

- ``config.json``: the experiment's name, the resolved config, the raw
  ``--set`` overrides and the ``--quick`` flag;
- ``results.csv``: one row per finished point, the point's identifying columns
  first, then the measured ones; rewritten after every point;
- ``meta.json``: versions, devices (and how many shared the sweep), seed, git
  revision, timings (:mod:`airinfer.experiments.run_meta`);
- ``NAME.png`` (or ``.pdf``, ``.svg``: ``figure_format``): the experiment's plot,
  drawn from the rows read back from the CSV.

Running again into the same folder with the same resolved config computes only
the points missing from ``results.csv``. A folder holding results of another
config is refused (:class:`OutputConflict`) before any file is touched; the
``devices`` setting does not count, since results do not depend on it
(:mod:`airinfer.experiments.sharding`), so a run may resume on other devices.
Over several hosts the runner first joins the processes
(:func:`~airinfer.experiments.sharding.initialize_distributed`).
An experiment's extra files (its ``artifacts``: a table, a checkpoint) are
written after the sweep.
"""

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax

from airinfer.experiments import progress as progress_mode
from airinfer.experiments import registry, sharding
from airinfer.experiments.config import (
    ConfigError,
    apply_overrides,
    check_config,
    flat_dict,
    from_dict,
    to_json_dict,
)
from airinfer.experiments.folder import (
    RESULTS_FILE,
    ResultsFileError,
    cell,
    csv_text,
    read_raw,
    read_rows,
    scalar,
    write_atomic,
    write_json,
    write_with,
)
from airinfer.experiments.run_meta import META_FILE, git_revision, run_meta

__all__ = [
    "FIGURE_FORMATS",
    "OutputConflict",
    "RunResult",
    "git_revision",
    "read_rows",
    "replot",
    "resolve_config",
    "run",
]

CONFIG_FILE = "config.json"
#: The plot's file types (``airinfer run/plot --format``); the suffix picks the writer.
FIGURE_FORMATS = ("png", "pdf", "svg")

#: Config fields that do not change results: ignored when a run resumes.
RESULT_NEUTRAL = ("devices",)


class OutputConflict(ValueError):
    """The output folder holds results that this run must not mix with or overwrite."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run` did.

    Attributes:
        out_dir: the results folder.
        rows: every row of ``results.csv``, as :func:`read_rows` returns them.
        computed: how many points this call computed.
        resumed: how many points were already in ``results.csv``.
        plot_path: the plot file.
    """

    out_dir: Path
    rows: list
    computed: int
    resumed: int
    plot_path: Path


# --------------------------------------------------------------------------- configs


def resolve_config(experiment: registry.Experiment, config=None, overrides=(), quick=False):
    """The config a run uses: ``config`` (or the default), ``--quick``'s fields, then ``--set``."""
    config = experiment.config() if config is None else config
    # one config built from every item, then checked whole: the order of the items
    # does not matter, and nothing is written or trained before it passes
    config = apply_overrides(config, experiment.quick if quick else {}, list(overrides))
    check_config(config)
    return config


def _config_differences(stored: Mapping, current: Mapping) -> list[str]:
    """``"key: stored -> current"`` for every field that differs (JSON forms compared),
    the :data:`RESULT_NEUTRAL` ones aside."""
    old, new = (
        {key: value for key, value in flat_dict(config).items() if key not in RESULT_NEUTRAL}
        for config in (stored, current)
    )
    missing = "(absent)"
    return [
        f"{key}: {json.dumps(old.get(key, missing))} -> {json.dumps(new.get(key, missing))}"
        for key in [*old, *(key for key in new if key not in old)]
        if json.dumps(old.get(key, missing)) != json.dumps(new.get(key, missing))
    ]


# ---------------------------------------------------------------------- the folder


def _point_columns(points: list[dict]) -> list[str]:
    """The identifying columns of a sweep, in first-seen order."""
    return list(dict.fromkeys(name for point in points for name in point))


def _point_id(point: Mapping, columns: list[str]) -> tuple[str, ...]:
    """What identifies a point in the CSV: its cells as text."""
    return tuple(cell(scalar(name, point.get(name))) for name in columns)


def _check_folder(
    out_dir: Path, name: str, config_json: dict, points: list[dict]
) -> dict[int, dict]:
    """Refuse a folder of other results; return the rows already done, by point index.

    Reads only, so that a refused run leaves every file as it was.
    """
    _check_out_path(out_dir)
    config_path, results_path = out_dir / CONFIG_FILE, out_dir / RESULTS_FILE
    if not config_path.exists():
        if results_path.exists():
            raise OutputConflict(
                f"{out_dir} holds {RESULTS_FILE} but no {CONFIG_FILE}; "
                "choose another --out or pass --overwrite"
            )
        return {}
    try:
        stored = json.loads(config_path.read_text(encoding="utf-8"))
        stored_name, stored_config = stored["experiment"], stored["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise OutputConflict(
            f"{config_path} is not a results config ({error}); "
            "choose another --out or pass --overwrite"
        ) from None
    if stored_name != name:
        raise OutputConflict(
            f"{out_dir} holds results of experiment {stored_name!r}, not {name!r}; "
            "choose another --out or pass --overwrite"
        )
    rows = read_raw(results_path)[1] if results_path.exists() else []
    if not rows:
        # a run that stopped before its first point (or was refused): nothing to keep
        return {}
    differences = _config_differences(stored_config, config_json)
    if differences:
        raise OutputConflict(
            f"{out_dir} holds results of a different config ({'; '.join(differences)}); "
            "choose another --out or pass --overwrite"
        )
    columns = _point_columns(points)
    index_of = {_point_id(point, columns): index for index, point in enumerate(points)}
    done = {}
    for row in rows:
        row_id = tuple(row.get(name) or "" for name in columns)
        if row_id not in index_of:
            shown = ", ".join(f"{name}={cell}" for name, cell in zip(columns, row_id, strict=True))
            raise OutputConflict(
                f"{results_path} has a row that is no point of this sweep "
                f"({shown}); choose another --out or pass --overwrite"
            )
        done[index_of[row_id]] = row
    return done


def _check_out_path(out_dir: Path) -> None:
    """Refuse an output folder that is a file or lies below one (reads only)."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                where = "is" if folder == out_dir else f"lies below {folder}, which is"
                raise OutputConflict(
                    f"{out_dir} {where} a file, not a folder; choose another --out"
                )
            return


def _clear_folder(out_dir: Path, name: str) -> None:
    """Remove the files of an earlier run (``--overwrite``): only files this module writes."""
    names = {RESULTS_FILE, META_FILE, CONFIG_FILE}
    stems = [name]
    try:
        stems.append(json.loads((out_dir / CONFIG_FILE).read_text(encoding="utf-8"))["experiment"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    names.update(f"{stem}.{suffix}" for stem in stems for suffix in FIGURE_FORMATS)
    for file_name in names:
        (out_dir / file_name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- runs


def _progress_bar(name: str, total: int, done: int):
    # smoothing=0: the ETA is the plain average over the points timed so far,
    # which _after_first_point restarts once compilation is behind us.
    return progress_mode.bar(total=total, initial=done, desc=name, unit="pt", smoothing=0)


def _after_first_point(bar, seconds: float) -> None:
    """Show the first point's time (JIT compilation included) apart, and keep it out of the ETA."""
    bar.set_postfix_str(f"compile+first: {seconds:.1f}s", refresh=False)
    if not bar.disable:
        # The rate (and so the ETA) counts only points finished from now on.
        bar.initial = bar.n
        bar.start_t = bar.last_print_t = bar._time()
    bar.refresh()


#: Measured columns shown first in a point's status line, when a row has them.
HEADLINES = ("accuracy", "macro_f1", "ber", "bler", "latency_s", "psnr_db", "mse")


def _headline(row: Mapping[str, str], point: Mapping) -> str:
    """A row's headline result, ``name=value`` (with ``+/- ci`` when it has one)."""
    measured = [name for name in row if name not in point and row[name] != ""]
    named = [name for name in HEADLINES if name in measured]
    if not named:
        named = [name for name in measured if not name.endswith("_ci")][:1]
    if not named:
        return "no result"
    name = named[0]
    ci = row.get(f"{name}_ci") or ""
    # ASCII only: a log on a stream without UTF-8 must not fail a run
    headline = f"{name}={_short(row[name])}" + (f" +/- {_short(ci)}" if ci else "")
    undecided = row.get("undecided") or "0"
    return headline + (f", undecided={undecided}" if undecided != "0" else "")


def _short(text: str) -> str:
    """A number as 4 significant digits; other text as it is."""
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


def _point_status(name: str, index: int, total: int, point: Mapping, row, seconds: float) -> str:
    """``NAME [i/n] key=value ...: headline (time)``: a finished point, in a log."""
    fields = " ".join(f"{key}={_short(cell(scalar(key, value)))}" for key, value in point.items())
    return (
        f"{name} [{index + 1}/{total}] {fields}: {_headline(row, point)} "
        f"({progress_mode.duration(seconds)})"
    )


def _as_experiment(experiment) -> registry.Experiment:
    return registry.load(experiment) if isinstance(experiment, str) else experiment


def _measure(experiment: registry.Experiment, key, config, point: dict) -> dict[str, str]:
    """One point's CSV row (cells as text): its identifying columns, then the measured ones."""
    measured = experiment.run_point(key, config, point)
    clashes = sorted(set(point) & set(measured))
    if clashes:
        raise ValueError(f"{experiment.name}: run_point returned point columns {clashes}")
    return {name: cell(scalar(name, value)) for name, value in {**point, **measured}.items()}


def _sweep(
    experiment, config, points: list[dict], done: dict[int, dict], out_dir: Path
) -> tuple[int, float | None]:
    """Compute the points not in ``done``, saving the CSV after each one.

    Returns how many points were computed and the first one's time in seconds
    (None if none was computed). Progress follows
    :func:`~airinfer.experiments.progress.mode`: a bar, a line per point, or nothing.
    """
    results_path = out_dir / RESULTS_FILE
    header = read_raw(results_path)[0] if done else []
    root = jax.random.key(config.seed)
    computed, first_point_s = 0, None
    lines = progress_mode.mode() == "lines"
    if lines:
        resumed = f", {len(done)} already done" if done else ""
        progress_mode.status(f"{experiment.name}: {len(points)} points{resumed}")
    with _progress_bar(experiment.name, len(points), len(done)) as bar:
        for index, point in enumerate(points):
            if index in done:
                continue
            started = time.perf_counter()
            # The key depends on the point's index only, not on what ran before.
            row = _measure(experiment, jax.random.fold_in(root, index), config, point)
            header += [name for name in row if name not in header]
            done[index] = row
            write_atomic(results_path, csv_text(header, [done[i] for i in sorted(done)]))
            computed += 1
            seconds = time.perf_counter() - started
            if lines:
                # one whole line per point: a log gets no carriage returns
                progress_mode.status(
                    _point_status(experiment.name, index, len(points), point, row, seconds)
                )
            bar.update(1)
            if first_point_s is None:
                first_point_s = seconds
                _after_first_point(bar, first_point_s)
    return computed, first_point_s


def _write_artifacts(artifacts: Mapping, out_dir: Path, computed: int) -> None:
    """Write an experiment's extra files; a writer function runs only when needed.

    A run that computed nothing keeps the files its writers made before: a
    checkpoint is not rebuilt (nor its model retrained) to resume a finished run.
    """
    for name, content in artifacts.items():
        if not callable(content):
            write_atomic(out_dir / name, content)
        elif computed or not (out_dir / name).exists():
            write_with(out_dir / name, content)


def run(
    experiment: registry.Experiment | str,
    config=None,
    out_dir: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    quick: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    figure_format: str = "png",
) -> RunResult:
    """Run a sweep into ``out_dir``, skipping points already saved there.

    Args:
        experiment: an :class:`~airinfer.experiments.registry.Experiment` or its name.
        config: the base config (default: the experiment's defaults).
        out_dir: the results folder (default ``results/NAME``); created if needed.
        overrides: ``"dotted.key=value"`` items, applied after ``--quick``'s.
        quick: apply the experiment's quick overrides first.
        progress: show progress on stderr (:mod:`~airinfer.experiments.progress`): a
            bar with an ETA on a terminal, a status line per point and per training
            phase otherwise; False silences both, training included.
        overwrite: delete an earlier run's files in ``out_dir`` and start afresh.
        figure_format: the plot's file type, one of :data:`FIGURE_FORMATS`.

    Returns:
        A :class:`RunResult`.

    Raises:
        ConfigError: a bad override, or ``devices`` more than this process sees.
        OutputConflict: ``out_dir`` holds results of another experiment or config
            (and ``overwrite`` is false); no file was touched.
    """
    _check_format(figure_format)
    with progress_mode.enabled(progress):
        return _run(experiment, config, out_dir, overrides, quick, overwrite, figure_format)


def _check_format(figure_format: str) -> None:
    if figure_format not in FIGURE_FORMATS:
        raise ConfigError(f"format: {figure_format!r} is not one of {', '.join(FIGURE_FORMATS)}")


def _run(experiment, config, out_dir, overrides, quick, overwrite, figure_format) -> RunResult:
    """:func:`run`, within its progress mode."""
    started = time.time()
    sharding.initialize_distributed()  # before anything starts JAX's backends
    experiment = _as_experiment(experiment)
    overrides = list(overrides)
    config = resolve_config(experiment, config, overrides, quick)
    if not hasattr(config, "seed"):
        raise TypeError(f"{experiment.name}: its config has no 'seed' field")
    sharded_devices = sharding.check_devices(getattr(config, "devices", None))
    out_dir = Path("results", experiment.name) if out_dir is None else Path(out_dir)
    config_json = to_json_dict(config)
    points = [dict(point) for point in experiment.points(config)]
    if not points:
        empty = [key for key, value in flat_dict(config_json).items() if value == []]
        hint = f" (empty: {', '.join(empty)})" if empty else ""
        raise ConfigError(f"{experiment.name}: this config gives no points to run{hint}")

    _check_out_path(out_dir)
    if overwrite:
        _clear_folder(out_dir, experiment.name)
    done = _check_folder(out_dir, experiment.name, config_json, points)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        out_dir / CONFIG_FILE,
        {
            "experiment": experiment.name,
            "config": config_json,
            "overrides": overrides,
            "quick": quick,
        },
    )

    resumed = len(done)
    computed, first_point_s = _sweep(experiment, config, points, done, out_dir)
    plot_path = replot(out_dir, experiment, figure_format)
    rows = read_rows(out_dir / RESULTS_FILE)
    if experiment.artifacts is not None:
        _write_artifacts(experiment.artifacts(config, rows), out_dir, computed)
    finished = time.time()
    write_json(
        out_dir / META_FILE,
        run_meta(config.seed, started, finished, first_point_s, computed, resumed, sharded_devices),
    )
    return RunResult(out_dir, rows, computed, resumed, plot_path)


def replot(
    out_dir: str | os.PathLike,
    experiment: registry.Experiment | str | None = None,
    figure_format: str = "png",
) -> Path:
    """Redraw ``NAME.FORMAT`` from ``results.csv`` and ``config.json``, without running anything.

    ``experiment`` defaults to the one named in ``config.json``; ``figure_format`` is
    one of :data:`FIGURE_FORMATS`. Returns the plot's path.
    """
    _check_format(figure_format)
    out_dir = Path(out_dir)
    config_path = out_dir / CONFIG_FILE
    if not config_path.exists() or not (out_dir / RESULTS_FILE).exists():
        raise OutputConflict(
            f"{out_dir} holds no results ({CONFIG_FILE} and {RESULTS_FILE} needed)"
        )
    try:
        stored = json.loads(config_path.read_text(encoding="utf-8"))
        name, stored_config = stored["experiment"], stored["config"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise OutputConflict(f"{config_path} is not a results config ({error})") from None
    experiment = _as_experiment(name if experiment is None else experiment)
    config = from_dict(experiment.config, stored_config)
    results_path = out_dir / RESULTS_FILE
    rows = read_rows(results_path)
    if not rows:
        raise ResultsFileError(
            f"{results_path} holds no finished point; the plot is left as it was"
        )
    path = out_dir / f"{experiment.name}.{figure_format}"
    try:
        # drawn into a temporary file: a plot that fails leaves the old one in place
        write_with(path, lambda temporary: experiment.plot(rows, config, temporary))
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise ResultsFileError(
            f"{results_path} cannot be plotted ({type(error).__name__}: {error}); "
            "is the file garbled?"
        ) from None
    return path
