"""The files of a results folder: atomic writes and the tidy CSV.

Every file is replaced atomically (a temporary name in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file behind;
a folder (a checkpoint) is swapped in the same way, the old one removed after.

CSV cells are written with ``repr`` for floats (exact round trip) and read back
by :func:`read_rows`: integers as ``int``, other numbers (``inf``/``nan``
included) as ``float``, ``True``/``False`` as ``bool``, empty cells as ``None``,
anything else as ``str``.
"""

import csv
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "RESULTS_FILE",
    "ResultsFileError",
    "cell",
    "csv_text",
    "parse_cell",
    "read_raw",
    "read_rows",
    "scalar",
    "write_atomic",
    "write_json",
    "write_with",
]

RESULTS_FILE = "results.csv"


# ---------------------------------------------------------------------- atomic files


def _temporary_name(path: Path) -> Path:
    """A fresh hidden name beside ``path``, keeping its suffix (matplotlib reads it)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    """Remove the file or folder ``path`` if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace ``path`` by ``content`` all at once; readers see the old or the new file."""
    temporary = _temporary_name(path)
    text_mode = {"mode": "w", "encoding": "utf-8", "newline": ""}
    try:
        # os.open with 0o666 honours the umask, unlike tempfile's private 0o600.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(
            descriptor, **(text_mode if isinstance(content, str) else {"mode": "wb"})
        ) as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, data) -> None:
    """``data`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def write_with(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write(temporary_path)`` create a file or folder, then move it onto ``path``.

    A folder already at ``path`` is moved aside first (``os.replace`` cannot
    replace a non-empty folder) and removed once the new one is in place.
    """
    temporary = _temporary_name(path)
    aside = _temporary_name(path)
    try:
        write(temporary)
        if not temporary.exists():
            raise RuntimeError(f"the function writing {path.name} wrote nothing at its path")
        if path.is_dir() or temporary.is_dir():
            if path.exists():
                os.replace(path, aside)
        os.replace(temporary, path)
    finally:
        _remove(temporary)
        _remove(aside)


# ------------------------------------------------------------------------------- CSV


def cell(value) -> str:
    """One CSV cell; floats via ``repr`` so that they read back bit for bit."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(float(value))  # float(): NumPy's repr would add "np.float64(...)"
    return str(value)


def parse_cell(text: str):
    """The inverse of :func:`cell` for numbers, booleans and empty cells."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def scalar(name: str, value):
    """A measured value as a plain Python scalar (JAX/NumPy 0-d arrays included)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if item is None or shape not in ((), None):
        raise TypeError(
            f"column {name!r}: expected a scalar, got {type(value).__name__} of shape {shape}"
        )
    return item()


class ResultsFileError(ValueError):
    """A results file that cannot be read as what it should be (garbled, truncated, empty)."""


def read_raw(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file, cells as text.

    Raises:
        ResultsFileError: the file is not UTF-8 CSV, has no header, or a row
            whose cells do not match the header (a truncated or garbled file);
            the message names the file and the line.
    """
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise ResultsFileError(f"{path} is not a readable CSV file ({error})") from None
    if not header or not all(header):
        raise ResultsFileError(f"{path} has no header line (an empty or garbled CSV file)")
    if len(set(header)) != len(header):
        raise ResultsFileError(f"{path}: its header names a column twice ({','.join(header)})")
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            if None in row:
                cells = len(header) + len(row[None])
            else:
                cells = sum(value is not None for value in row.values())
            raise ResultsFileError(
                f"{path}: line {line} has {cells} cells where the header has {len(header)} "
                "(a truncated or garbled file)"
            )
    return header, rows


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``results.csv`` (or the folder holding one), cells parsed.

    Integers come back as ``int``, other numbers as ``float``, ``True``/``False``
    as ``bool``, empty cells as ``None`` and everything else as ``str``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    _, rows = read_raw(path)
    return [{name: parse_cell(text) for name, text in row.items()} for row in rows]


def csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    """The CSV of ``rows`` (cells as text) under ``header``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
