"""Results folders as an older version of an experiment left them, for resume tests."""

import csv


def read_rows(results):
    """``(header, rows)`` of a ``results.csv``, every cell a string."""
    with open(results, encoding="utf-8", newline="") as file:
        header, *rows = list(csv.reader(file))
    return header, rows


def without_column(results, name):
    """Rewrite ``results`` as a run from before column ``name`` existed would have left it,
    cut before its last point: ``(old_header, old_rows, rows before the cut)``."""
    header, rows = read_rows(results)
    column = header.index(name)
    old_header = header[:column] + header[column + 1 :]
    old_rows = [row[:column] + row[column + 1 :] for row in rows[:-1]]  # the last one unfinished
    with open(results, "w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows([old_header, *old_rows])
    return old_header, old_rows, len(rows)
