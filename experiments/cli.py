"""The ``airinfer`` command line.

::

    airinfer list                          the experiments, one per line
    airinfer run NAME [--quick] [--out DIR] [--set KEY=VALUE]... [--overwrite] [--no-progress]
                      [--format png|pdf|svg] [--show-config]
    airinfer show NAME                     its fields (--set keys), defaults and quick settings
    airinfer plot DIR [--format FMT]       redraw DIR/NAME.FMT from DIR/results.csv
    airinfer train ...                     the same as 'airinfer run train ...'
    airinfer train-encoder ...             the same as 'airinfer run train_encoder ...'

``run --show-config`` prints the resolved config (each key's type, default,
value after ``--quick`` and ``--set``, and help from the config's docstring,
:mod:`airinfer.experiments.config_help`) and exits without running or writing
anything.

``list`` and ``--help`` import neither JAX nor TensorFlow: experiments are found
without importing them (:mod:`airinfer.experiments.registry`), and the runner
is imported only by the commands that run or plot something. Bad input (an
unknown experiment, a bad ``--set``, an output folder holding other results)
ends with one line ``airinfer: error: ...`` on stderr and exit status 2, as
does a bad file or folder (a garbled or empty ``results.csv``, an ``--out``
that is or lies below a file, a data set that is missing or corrupt, a bad
cache entry with ``--no-retrain``). Any other failure ends with one line and
exit status 1; ``--debug`` shows its traceback instead. Warnings (a bad cache
entry moved aside and retrained, a bad data file skipped) are one line
``airinfer: warning: ...`` each.
"""

import argparse
import contextlib
import importlib.metadata
import json
import logging
import sys
import textwrap
from pathlib import Path

from airinfer.experiments import config, registry
from airinfer.experiments.config import ConfigError
from airinfer.experiments.config_help import COMMON_HELP, field_help, leaf_types, type_text

__all__ = ["COMMON_HELP", "RUN_EXAMPLES", "build_parser", "field_help", "main", "type_text"]

PROG = "airinfer"
USAGE_ERROR = 2
# The figure's file types (the runner's FIGURE_FORMATS; repeated here since the
# runner imports JAX, which --help must not).
FIGURE_FORMATS = ("png", "pdf", "svg")
INTERRUPTED = 130
# Commands that work as they stand (a test runs each with --show-config and --quick):
# shown by 'airinfer run --help'.
RUN_EXAMPLES = (
    ("airinfer run link_ber --quick", "BER/BLER curves in about a minute"),
    (
        "airinfer run ota_snr --quick --set channels=awgn,rayleigh --set num_devices=4,16",
        "over-the-air ensembles on two channels",
    ),
    (
        "airinfer run ota_snr --quick --set precoding=phase --set num_rx_ant=2 --format pdf",
        "another precoder, two receive antennas, a PDF figure",
    ),
    (
        "airinfer run strategies_snr --quick --set strategies=local,edge_ensemble "
        "--set snr_db=[0,10]",
        "two strategies at two SNRs",
    ),
    ("airinfer run ota_snr --quick --show-config", "every key, its type, default and help"),
)
# The older spellings of two experiments: ``airinfer train ...`` is ``airinfer run train ...``.
ALIASES = {"train": "train", "train-encoder": "train_encoder"}


class UsageError(Exception):
    """Bad command-line input; ``main`` prints ``airinfer: error: ...`` and returns 2.

    Our own messages are one line; argparse's syntax errors add the usage line.
    """


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting, so ``main`` returns a status."""

    def error(self, message):
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


def _version() -> str:
    try:
        return importlib.metadata.version("airinfer")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- commands


def _list(args) -> int:
    """Print each experiment's name and summary (found without importing any)."""
    experiments = registry.available()
    width = max((len(name) for name in experiments), default=0)
    for name, listing in sorted(experiments.items()):
        print(f"{name:<{width}}  {listing.summary}")
    return 0


def _known_experiment(name: str) -> str:
    experiments = registry.available()
    if name not in experiments:
        known = ", ".join(sorted(experiments)) or "none"
        raise UsageError(f"unknown experiment {name!r}; known: {known} (see 'airinfer list')")
    return name


def _bad_input() -> tuple[type[Exception], ...]:
    """The errors that mean a bad file or folder: one line and exit status 2."""
    # Deferred: these modules import JAX, which list and --help must not.
    from airinfer.experiments.folder import ResultsFileError
    from airinfer.experiments.runner import OutputConflict
    from airinfer.models.cache import BadCacheEntryError
    from airinfer.models.datasets import DatasetError

    return OutputConflict, ResultsFileError, DatasetError, BadCacheEntryError


def _escape_breaks(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"data: {text}" if type(error).__name__ == "DatasetError" else text


def _run(args) -> int:
    """Run (or resume) a sweep and print where the results went."""
    # Deferred: the runner and the data loaders import JAX, which list and --help must not.
    from airinfer.experiments import runner
    from airinfer.models.cache import keep_bad_entries

    name = _known_experiment(args.name)
    out_dir = args.out or f"results/{name}"
    overrides = args.set + (["save_logits=true"] if args.save_logits else [])
    if args.show_config:
        return _show_config(name, overrides, args.quick)
    try:
        with keep_bad_entries() if not args.retrain else contextlib.nullcontext():
            result = runner.run(
                name,
                out_dir=out_dir,
                overrides=overrides,
                quick=args.quick,
                progress=args.progress,
                overwrite=args.overwrite,
                figure_format=args.format,
            )
    except _bad_input() as error:
        raise UsageError(_one_line(error)) from None
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; finished points are saved in {out_dir}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return INTERRUPTED
    print(
        f"{PROG}: {result.computed} points computed, {result.resumed} resumed; "
        f"results in {result.out_dir}/ (config.json, results.csv, meta.json, "
        f"{result.plot_path.name})"
    )
    return 0


def _show(args) -> int:
    """Print an experiment's settable fields with their defaults, and its quick settings."""
    experiment = registry.load(_known_experiment(args.name))
    defaults = config.to_json_dict(experiment.config())
    print(f"{experiment.name}: {experiment.summary}")
    print("fields (--set KEY=VALUE), with defaults and, after '#', what --quick sets:")
    keys = config.leaf_keys(experiment.config)
    width = max(map(len, keys), default=0)
    for key in keys:
        value = defaults
        for part in key.split("."):
            value = value[part]
        quick = f"  # {json.dumps(experiment.quick[key])}" if key in experiment.quick else ""
        print(f"  {key:<{width}} = {json.dumps(value)}{quick}")
    return 0


def _show_config(name: str, overrides: list[str], quick: bool) -> int:
    """Print the config a run would use, key by key, and write nothing."""
    from airinfer.experiments import runner  # deferred: it imports JAX

    experiment = registry.load(name)
    resolved = runner.resolve_config(experiment, None, overrides, quick)
    values = config.flat_dict(config.to_json_dict(resolved))
    defaults = config.flat_dict(config.to_json_dict(experiment.config()))
    quick_keys = set(experiment.quick) if quick else set()
    set_keys = {item.partition("=")[0].strip() for item in overrides}
    helps = field_help(experiment.config)
    types_ = leaf_types(experiment.config)
    how = ", ".join(
        part
        for part in ("--quick" if quick else "", f"{len(overrides)} --set" if overrides else "")
        if part
    )
    print(f"{name}: the resolved config{f' ({how})' if how else ''}; nothing was run")
    for key in config.leaf_keys(experiment.config):
        value, default = json.dumps(values[key]), json.dumps(defaults[key])
        source = "--set" if key in set_keys else "--quick" if key in quick_keys else ""
        note = f"  [default {default}; from {source}]" if source else ""
        print(f"  {key} ({type_text(types_[key])}) = {value}{note}")
        print(textwrap.fill(helps.get(key) or "(undocumented)", width=96, initial_indent=" " * 6,
                            subsequent_indent=" " * 6))  # fmt: skip
    return 0


def _plot(args) -> int:
    """Redraw a results folder's plot from its CSV."""
    from airinfer.experiments import runner  # deferred: it imports JAX

    config_path = Path(args.dir) / runner.CONFIG_FILE
    try:
        stored = json.loads(config_path.read_text(encoding="utf-8"))
        name = stored["experiment"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(
            f"{args.dir} holds no results config ({config_path.name}: "
            f"{type(error).__name__}: {error})"
        ) from None
    _known_experiment(name)
    try:
        path = runner.replot(args.dir, figure_format=args.format)
    except _bad_input() as error:
        raise UsageError(_one_line(error)) from None
    print(f"{PROG}: plot redrawn in {path}")
    return 0


def _docs_page(args) -> int:
    """Write each results folder's page with :mod:`airinfer.experiments.report`."""
    from airinfer.experiments import report

    for folder in args.dirs:
        try:
            path = report.write_page(folder, args.docs)
        except ValueError as error:
            raise UsageError(str(error)) from None
        print(f"{PROG}: page written to {path}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``airinfer`` parser."""
    parser = _Parser(
        prog=PROG,
        description="Collaborative inference for IoT devices, "
        "simulated at the physical layer: run and plot experiments.",
        epilog="'airinfer train ...' and 'airinfer train-encoder ...' are "
        "'airinfer run train ...' and 'airinfer run train_encoder ...'.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an unexpected error (also accepted after the command)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="list the experiments")
    listing.set_defaults(handler=_list)

    examples = "\n".join(f"  {command}\n      {what}" for command, what in RUN_EXAMPLES)
    running = commands.add_parser(
        "run",
        help="run or resume an experiment's sweep",
        description="Run an experiment's sweep; re-running into the same folder resumes it.",
        epilog=f"examples:\n{examples}\n\nan experiment's keys: airinfer run NAME --show-config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    running.add_argument("name", metavar="NAME", help="an experiment (see 'airinfer list')")
    running.add_argument(
        "--quick",
        action="store_true",
        help="a small, fast version of the sweep (the experiment's quick settings)",
    )
    running.add_argument("--out", metavar="DIR", help="results folder (default: results/NAME)")
    running.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config field, e.g. --set snr_db=[0,5,10] --set channels=awgn,rayleigh "
        "--set ensemble.members=8 (repeatable; applied after --quick; --show-config lists "
        "the keys)",
    )
    running.add_argument(
        "--show-config",
        action="store_true",
        help="print the resolved config (each key's type, default, value after --quick "
        "and --set, and help) and exit without running or writing anything",
    )
    running.add_argument(
        "--format",
        choices=FIGURE_FORMATS,
        default="png",
        help="the figure's file type (default: png)",
    )
    running.add_argument(
        "--overwrite",
        action="store_true",
        help="discard results already in the folder and start afresh",
    )
    running.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="show no progress at all, training included (default: a bar with an ETA on a "
        "terminal, one status line per point and per training phase in a log)",
    )
    running.add_argument(
        "--no-retrain",
        dest="retrain",
        action="store_false",
        help="stop (exit status 2) at a corrupt or unreadable cache entry instead of "
        "moving it aside and training it again",
    )
    running.add_argument(
        "--save-logits",
        action="store_true",
        help="keep the members' test logits beside the results (the same as "
        "--set save_logits=true; for experiments that have members)",
    )
    running.set_defaults(handler=_run)

    showing = commands.add_parser(
        "show", help="an experiment's fields, their defaults and its --quick settings"
    )
    showing.add_argument("name", metavar="NAME", help="an experiment (see 'airinfer list')")
    showing.set_defaults(handler=_show)

    plotting = commands.add_parser("plot", help="redraw a results folder's plot from its CSV")
    plotting.add_argument("dir", metavar="DIR", help="a results folder written by 'airinfer run'")
    plotting.add_argument(
        "--format",
        choices=FIGURE_FORMATS,
        default="png",
        help="the figure's file type (default: png)",
    )
    plotting.set_defaults(handler=_plot)

    documenting = commands.add_parser(
        "docs-page", help="write a results folder's documentation page (docs/experiments/NAME.md)"
    )
    documenting.add_argument("dirs", nargs="+", metavar="DIR", help="results folders")
    documenting.add_argument("--docs", default="docs", help="documentation folder (default: docs)")
    documenting.set_defaults(handler=_docs_page)

    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _warnings_as_lines() -> None:
    """The project's warnings (logged under ``airinfer``) as ``airinfer: warning: ...``."""
    logger = logging.getLogger("airinfer")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"{PROG}: warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the ``airinfer`` command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [item for item in argv if item != "--debug"]
    if argv[:1] and argv[0] in ALIASES:
        argv = ["run", ALIASES[argv[0]], *argv[1:]]
    _warnings_as_lines()
    try:
        args, unknown = build_parser().parse_known_args(argv)
        if unknown:
            raise UsageError(
                f"unrecognized arguments: {' '.join(unknown)}; "
                "an experiment's fields are set with --set KEY=VALUE"
            )
        return args.handler(args)
    except SystemExit as exit_:  # --help, --version, or a command's own sys.exit
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except ConfigError as error:  # one line, even when a value holds a line break
        print(f"{PROG}: error: {_escape_breaks(str(error))}", file=sys.stderr)
        return USAGE_ERROR
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as error:
        if debug:
            raise
        text = " ".join(str(error).split())[:500] or "(no message)"
        print(
            f"{PROG}: error: {type(error).__name__}: {text} (run again with --debug for "
            "the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
