"""Small plotting helpers for experiments' ``plot(rows, config, path)`` functions.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than
``pyplot``: no global figure state, no GUI backend, safe on headless machines.

>>> fig, ax = new_figure()
>>> rows = [{"snr_db": 0.0, "ber": 0.08, "ber_ci": 0.01, "mod": "qpsk"},
...         {"snr_db": 5.0, "ber": 0.01, "ber_ci": 0.002, "mod": "qpsk"}]
>>> plot_lines(ax, rows, x="snr_db", y="ber", by=("mod",), ci="ber_ci")
>>> ax.set_yscale("log")
"""

from collections.abc import Sequence

from matplotlib.figure import Figure

__all__ = ["group_rows", "new_figure", "plot_lines", "save_figure"]


def new_figure(width: float = 5.0, height: float = 3.6) -> tuple[Figure, object]:
    """A figure (inches) with one axes and a light grid."""
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, which="both", alpha=0.3)
    return figure, axes


def group_rows(rows: Sequence[dict], by: Sequence[str]) -> dict[tuple, list[dict]]:
    """Rows grouped by the values of the columns ``by``, groups in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[name] for name in by), []).append(row)
    return groups


def plot_lines(
    axes,
    rows: Sequence[dict],
    x: str,
    y: str,
    by: Sequence[str] = (),
    ci: str | None = None,
    label_format: str = "{}={}",
) -> None:
    """One line per group of ``by`` columns, points sorted by ``x``.

    ``ci`` names a column holding the half-width of a confidence interval,
    drawn as error bars. Rows whose ``y`` is missing (``None``) are skipped.
    """
    for values, group in group_rows(rows, by).items():
        group = sorted((row for row in group if row[y] is not None), key=lambda row: row[x])
        label = ", ".join(
            label_format.format(name, value) for name, value in zip(by, values, strict=True)
        )
        axes.errorbar(
            [row[x] for row in group],
            [row[y] for row in group],
            yerr=None if ci is None else [row[ci] or 0.0 for row in group],
            marker="o",
            markersize=3,
            capsize=2,
            label=label or None,
        )
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    if by:
        axes.legend(fontsize="small")


def save_figure(figure: Figure, path) -> None:
    """Write the figure; the format follows the file's suffix."""
    figure.savefig(path, dpi=150)
