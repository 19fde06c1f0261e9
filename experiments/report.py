"""A documentation page from a results folder: what the experiment measures, and what it gave.

``python -m airinfer.experiments.report RESULTS_DIR... --docs docs`` (or
``airinfer docs-page RESULTS_DIR...``) writes, for each folder written by
``airinfer run``, the page ``docs/experiments/NAME.md`` and copies its figure
beside it as ``NAME.png``. The page holds the experiment's summary and module
docstring, the wall time and versions (``meta.json``), the resolved config and
overrides (``config.json``), the Markdown tables the experiment wrote, and
``results.csv`` as a Markdown table. Nothing is imported from the experiment
(its docstring is read from its source), so no JAX or TensorFlow is loaded.

Hand-written commentary on a run (what its numbers say, how they compare with
the papers and with earlier runs) lives in ``docs/experiments/commentary/NAME.md``.
The page does not copy it: it holds an include line (``--8<--``, the
``pymdownx.snippets`` extension of the site), so editing the commentary needs no
new run and regenerating the page keeps it.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

from airinfer.experiments import registry
from airinfer.experiments.folder import RESULTS_FILE, ResultsFileError, read_raw

__all__ = ["COMMENTARY_DIR", "MAX_ROWS", "commentary_file", "page", "write_page", "main"]

# the names the runner gives these files (airinfer.experiments.runner, which imports JAX)
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
# results.csv rows rendered on a page; the rest are counted, not shown
MAX_ROWS = 500
#: The hand-written commentary's folder, under the documentation's experiments/ folder.
COMMENTARY_DIR = "commentary"

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
# "text::" before an indented literal block; the indented block is Markdown's code block
_LITERAL = re.compile(r"(?m)(?<=\S)::$")
# a paragraph of "::" alone only announces the literal block: RST drops it
_BARE_LITERAL = re.compile(r"(?m)^::\n\n")


def _rst_to_markdown(text: str) -> str:
    """Sphinx roles as code spans (``:func:`~a.b` `` → `` `a.b` ``), ``text::`` as ``text:``.

    A ``::`` paragraph alone is dropped, as RST does. ``code`` is Markdown already, and
    so is an indented literal block.
    """
    text = _BARE_LITERAL.sub("", text)
    return _LITERAL.sub(":", _ROLE.sub(lambda match: f"`{match.group(1)}`", text))


def _read_json(path: Path, required: bool) -> dict | None:
    if not path.exists() and not required:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds {type(data).__name__}, not a JSON object")
    return data


def _docstring(name: str) -> tuple[str, str]:
    """The experiment's summary and its module's docstring, read from source."""
    listing = registry.available().get(name)
    if listing is None:
        return "", ""
    try:
        origin = importlib.util.find_spec(listing.module).origin
        docstring = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8")))
    except (ImportError, AttributeError, TypeError, ValueError, OSError, SyntaxError):
        docstring = None
    return listing.summary, docstring or ""


def _cell(text: str) -> str:
    """A CSV cell for a Markdown table: floats to 4 significant digits, pipes escaped."""
    try:
        number = float(text)
    except ValueError:
        return text.replace("|", "\\|")
    if text.lstrip("-").isdigit():
        return text
    return f"{number:.4g}"


def _table(header: list[str], rows: list[dict[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row[name]) for name in header) + " |" for row in rows]
    return lines


def _wall_time(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _revision(git) -> str:
    if isinstance(git, dict) and git.get("commit"):
        return f"`{git['commit'][:12]}`" + (
            " (with uncommitted changes)" if git.get("dirty") else ""
        )
    return "not recorded"


def _run_lines(meta: dict | None) -> list[str]:
    if meta is None:
        return ["No `meta.json`: the run had not finished when this page was made.", ""]
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    cpus = meta.get("platform", {}).get("cpu_count")
    lines = [
        f"- wall time: {_wall_time(meta['wall_time_s'])}"
        + (
            f" (first point {meta['first_point_s']:.0f} s, compilation included)"
            if meta.get("first_point_s") is not None  # None: every point was resumed
            else ""
        ),
        f"- points computed: {meta.get('points_computed')}, resumed: {meta.get('points_resumed')}"
        + (
            " (the wall time is the last session's: resumed points ran before it)"
            if meta.get("points_resumed")
            else ""
        ),
        f"- finished: {meta.get('finished_utc')} on JAX backend `{meta.get('jax_backend')}` "
        f"({', '.join(meta.get('jax_devices', []))}; {cpus} CPU cores)",
        f"- versions: {versions}",
        f"- seed: {meta.get('seed')}, git revision: {_revision(meta.get('git'))}",
    ]
    return [*lines, ""]


def _load(folder: Path) -> tuple[dict, dict | None, list[str], list[dict[str, str]]]:
    """A results folder's config, meta (None before the run finished), header and rows."""
    if not folder.is_dir():
        raise ValueError(f"results_dir {str(folder)!r} is not a folder")
    stored = _read_json(folder / CONFIG_FILE, required=True)
    if not isinstance(stored.get("experiment"), str) or not isinstance(stored.get("config"), dict):
        raise ValueError(f"{folder / CONFIG_FILE}: no 'experiment' name or 'config' object")
    meta = _read_json(folder / META_FILE, required=False)
    if meta is not None and not isinstance(meta.get("wall_time_s"), int | float):
        raise ValueError(f"{folder / META_FILE}: no number 'wall_time_s'")
    try:
        header, rows = read_raw(folder / RESULTS_FILE)
    except FileNotFoundError:
        raise ValueError(f"{folder / RESULTS_FILE}: missing") from None
    except ResultsFileError as error:
        raise ValueError(" ".join(str(error).split())) from None
    if not rows:
        raise ValueError(f"{folder / RESULTS_FILE}: no rows")
    return stored, meta, header, rows


def commentary_file(docs_dir: str | Path, name: str) -> Path:
    """The commentary on experiment ``name``: ``docs_dir/experiments/commentary/NAME.md``."""
    return Path(docs_dir) / "experiments" / COMMENTARY_DIR / f"{name}.md"


def page(results_dir: str | Path, figure: str | None = None, commentary: str | None = None) -> str:
    """The Markdown page of one results folder.

    Input:
        results_dir: a folder written by ``airinfer run`` (``config.json`` and
            ``results.csv`` required; ``meta.json``, the figure and the
            experiment's own ``*.md`` tables used when present).
        figure: the link to the figure on the page; None for no figure.
        commentary: the path of a commentary file relative to the documentation
            folder, included under "Discussion" when the site is built; None
            for none.

    Output:
        str: the page, Markdown.

    Raises:
        ValueError: the folder, its ``config.json`` or its ``results.csv`` is
            missing or unreadable; one line naming the file.
    """
    folder = Path(results_dir)
    stored, meta, header, rows = _load(folder)
    name = stored["experiment"]
    summary, docstring = _docstring(name)
    kind = "quick" if stored.get("quick") else "full"
    lines = [f"# `{name}`", ""]
    if summary:
        lines += [f"*{_rst_to_markdown(summary)}*", ""]
    lines += [
        f"Generated from the {kind} run in `{folder.name}/` by "
        f"`python -m airinfer.experiments.report` (`make docs-pages`); edit the run, "
        "not this page.",
        "",
    ]
    if docstring:
        lines += ["## What it measures", "", _rst_to_markdown(docstring), ""]
    lines += ["## The run", "", *_run_lines(meta)]
    overrides = stored.get("overrides") or []
    command = f"airinfer run {name}" + (" --quick" if stored.get("quick") else "")
    command += "".join(f" --set {item}" for item in overrides)
    lines += ["Command:", "", "```bash", command, "```", ""]
    if figure is not None:
        lines += ["## Figure", "", f"![{name}]({figure})", ""]
    for table in sorted(folder.glob("*.md")):
        lines += [f"## Table: `{table.name}`", "", table.read_text(encoding="utf-8").strip(), ""]
    if commentary is not None:
        # included at build time, so that the commentary is edited in one place
        lines += ["## Discussion", "", f'--8<-- "{commentary}"', ""]

    # columns with one value in every row go above the table, so that it stays narrow
    constant = [h for h in header if len(rows) > 1 and len({row[h] for row in rows}) == 1]
    varying = [h for h in header if h not in constant] or header
    lines += [f"## Results (`{RESULTS_FILE}`, {len(rows)} rows)", ""]
    if constant and varying is not header:
        same = ", ".join(f"`{h}` = {_cell(rows[0][h])}" for h in constant)
        lines += [f"In every row: {same}.", ""]
    lines += _table(varying, rows[:MAX_ROWS])
    if len(rows) > MAX_ROWS:
        lines += ["", f"({len(rows) - MAX_ROWS} more rows in `{RESULTS_FILE}`.)"]
    lines += [
        "",
        "## Config (`config.json`)",
        "",
        "```json",
        json.dumps(stored["config"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_page(results_dir: str | Path, docs_dir: str | Path = "docs") -> Path:
    """Write ``docs_dir/experiments/NAME.md`` and copy the figure beside it.

    The page includes the commentary file :func:`commentary_file` when there is one.

    Input:
        results_dir: a folder written by ``airinfer run``.
        docs_dir: the documentation's source folder.

    Output:
        Path: the page written.

    Raises:
        ValueError: as :func:`page`.
    """
    folder = Path(results_dir)
    name = _load(folder)[0]["experiment"]
    figure = folder / f"{name}.png"
    has_figure = figure.is_file()
    notes = commentary_file(docs_dir, name)
    text = page(
        folder,
        figure=f"{name}.png" if has_figure else None,
        commentary=notes.relative_to(Path(docs_dir)).as_posix() if notes.is_file() else None,
    )
    target = Path(docs_dir) / "experiments"
    target.mkdir(parents=True, exist_ok=True)
    if has_figure:
        shutil.copyfile(figure, target / f"{name}.png")
    path = target / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m airinfer.experiments.report RESULTS_DIR... [--docs DIR]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m airinfer.experiments.report",
        description="documentation pages from results folders",
    )
    parser.add_argument("dirs", nargs="+", metavar="RESULTS_DIR")
    parser.add_argument("--docs", default="docs", help="documentation folder (default: docs)")
    args = parser.parse_args(argv)
    for folder in args.dirs:
        try:
            path = write_page(folder, args.docs)
        except ValueError as error:
            print(f"report: error: {error}", file=sys.stderr)
            return 2
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
