"""Plotting helpers for experiments' ``plot(rows, config, path)`` functions: one style.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than
``pyplot``: no global figure state, no GUI backend, safe on headless machines.

Every experiment's figure follows the same rules, kept here:

- curves are named in words (:data:`NAMES`, :func:`display_name`), never by
  their code names (``ota_belief`` is "over the air, belief average");
- each curve has its own colour *and* marker (:func:`curve_style`), so that
  it reads in grey print too, and its uncertainty is a thin error bar
  (:func:`draw_curve`), nudged sideways (``dodge``) so that close curves do not
  merge into one smear;
- a figure has one legend, below its panels (:func:`save_figure` gathers the
  panels' entries);
- ``K`` is the number of devices; a Rician channel's factor is spelled out
  (:func:`channel_name`);
- the file type follows the path's suffix: ``.png``, ``.pdf`` or ``.svg``.

>>> fig, ax = new_figure()
>>> rows = [{"snr_db": 0.0, "ber": 0.08, "ber_ci": 0.01, "mod": "qpsk"},
...         {"snr_db": 5.0, "ber": 0.01, "ber_ci": 0.002, "mod": "qpsk"}]
>>> plot_lines(ax, rows, x="snr_db", y="ber", by=("mod",), ci="ber_ci")
>>> ax.set_yscale("log")
>>> display_name("ota_belief")
'over the air, belief average'
"""

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "COLOURS",
    "MARKERS",
    "NAMES",
    "STYLES",
    "channel_name",
    "curve_style",
    "display_name",
    "dodges",
    "draw_curve",
    "group_rows",
    "new_figure",
    "plot_lines",
    "save_figure",
    "single_legend",
    "style",
]

#: What each code name (a scheme, a strategy, a rule, a channel) is called in a figure.
NAMES = {
    # ensembles over a multiple-access channel (ota_snr, ota_privacy, ota_connectivity)
    "noiseless": "ensemble, ideal links",
    "ota_belief": "over the air, belief average",
    "ota_vote": "over the air, majority vote",
    "ota_sign": "over the air, one-bit sign vote",
    "orthogonal": "orthogonal digital slots",
    "orthogonal_belief": "orthogonal digital, belief average",
    "orthogonal_vote": "orthogonal digital, majority vote",
    "best_single": "best single device",
    "ota": "over the air, belief average",
    "ba_oac": "belief average, over the air",
    "mv_oac": "majority vote, over the air",
    "ba_orth": "belief average, orthogonal",
    "mv_orth": "majority vote, orthogonal",
    # collaboration strategies (strategies_snr, strategies_budget, table1, inversion_snr)
    "local": "on-device model alone",
    "cloud_digital": "cloud, digital image upload",
    "cloud_jpeg": "cloud, JPEG upload",
    "split_digital": "split, digital features",
    "split_digital_b2": "split, 2-bit digital features",
    "split_digital_b4": "split, 4-bit digital features",
    "split_digital_b8": "split, 8-bit digital features",
    "split_analog": "split, analog features (deep JSCC)",
    "partition_layer": "partitioned by layers",
    "partition_horizontal": "partitioned by image regions",
    "edge_ensemble": "edge ensemble",
    "edge_ensemble_direct": "edge ensemble, own observations",
    "edge_ensemble_encoder": "edge ensemble, shared encoder",
    "hybrid": "hybrid: edge ensemble + server",
    "ensemble": "edge ensemble alone",
    "server": "server alone",
    "edge_only": "edge only",
    "cloud_only": "cloud only",
    "split": "split",
    # combining rules (train)
    "mean_softmax": "mean of softmax outputs",
    "majority_vote": "majority vote",
    # channels
    "awgn": "AWGN",
    "rayleigh": "Rayleigh fading",
    "rician": "Rician fading",
    "tdl-a": "TDL-A (OFDM)",
    # link_ber
    "qpsk": "QPSK",
    "16qam": "16-QAM",
    "64qam": "64-QAM",
    "uncoded": "uncoded",
    "ldpc": "5G LDPC",
}

#: Colours of the curves, in order: the Okabe-Ito palette (safe for colour-blind
#: readers), then darker extras; black is kept for references.
COLOURS = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
    "#882255", "#117733", "#AA4499", "#44AA99", "#999933", "#661100", "#6699CC",
)  # fmt: skip
#: Markers of the curves, in order (a colour and a marker per curve).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d")


#: ``(colour, marker, linestyle)`` of the curves met in several figures, so that a
#: scheme or a strategy looks the same everywhere; references are black or grey.
STYLES = {
    "noiseless": ("black", "*", ":"),
    "ota_belief": ("#0072B2", "o", "-"),
    "ota_vote": ("#D55E00", "s", "-"),
    "ota_sign": ("#009E73", "^", "-"),
    "orthogonal": ("#CC79A7", "D", "--"),
    "orthogonal_belief": ("#CC79A7", "D", "--"),
    "orthogonal_vote": ("#E69F00", "v", "--"),
    "best_single": ("#666666", "X", "-."),
    "local": ("#666666", "X", ":"),
    "cloud_digital": ("black", "s", "--"),
    "cloud_jpeg": ("#661100", "P", "--"),
    "split_digital": ("#D55E00", "v", "--"),
    "split_digital_b2": ("#D55E00", "v", "--"),
    "split_digital_b4": ("#E69F00", "<", "--"),
    "split_digital_b8": ("#999933", ">", "--"),
    "split_analog": ("#0072B2", "o", "-"),
    "partition_layer": ("#882255", "h", "-."),
    "partition_horizontal": ("#AA4499", "p", "-."),
    "edge_ensemble": ("#009E73", "^", "-"),
    "edge_ensemble_direct": ("#117733", "d", "-"),
    "edge_ensemble_encoder": ("#56B4E9", "D", "-"),
    "hybrid": ("#CC79A7", "*", "--"),
    "ensemble": ("#009E73", "^", ":"),
    "server": ("black", "s", "--"),
    "mean_softmax": ("#009E73", "^", "-"),
    "majority_vote": ("#D55E00", "s", "-"),
}


def style(name, index: int = 0) -> dict:
    """``color``, ``marker`` and ``linestyle`` of the curve ``name``: its own
    (:data:`STYLES`), else the ``index``-th of :func:`curve_style` with a solid line."""
    if str(name) in STYLES:
        color, marker, linestyle = STYLES[str(name)]
        return {"color": color, "marker": marker, "linestyle": linestyle}
    return {**curve_style(index), "linestyle": "-"}


def display_name(name) -> str:
    """A code name in words (:data:`NAMES`); other names with spaces for underscores."""
    text = str(name)
    return NAMES.get(text, text.replace("_", " "))


def channel_name(channel: str, rician_factor: float | None = None) -> str:
    """A channel in words; a Rician channel's factor spelled out (``K`` counts devices)."""
    text = display_name(channel)
    if rician_factor is not None:
        text += f", Rician factor {rician_factor:g}"
    return text


def curve_style(index: int) -> dict:
    """``color`` and ``marker`` of the ``index``-th curve of a figure (both cycle)."""
    return {"color": COLOURS[index % len(COLOURS)], "marker": MARKERS[index % len(MARKERS)]}


def draw_curve(
    axes,
    x,
    y,
    ci=None,
    *,
    label: str | None,
    color,
    marker: str = "o",
    linestyle: str = "-",
    dodge: float = 0.0,
    markersize: float = 4.0,
):
    """One curve with thin error bars of half-width ``ci``; returns the errorbar container.

    ``dodge`` shifts the curve sideways by that much (in x units), so that the
    error bars of close curves stay apart; pass a few percent of the x spacing,
    a different one per curve (:func:`dodges`).
    """
    x = np.asarray(x, dtype=float) + dodge
    container = axes.errorbar(
        x,
        np.asarray(y, dtype=float),
        yerr=None if ci is None else np.asarray(ci, dtype=float),
        color=color,
        marker=marker,
        markersize=markersize,
        linestyle=linestyle,
        linewidth=1.2,
        elinewidth=0.7,
        capsize=2,
        capthick=0.7,
        label=label,
    )
    # the bars lighter than the line and markers, which carry the comparison
    for part in (*container[1], *container[2]):
        part.set_alpha(0.55)
    return container


def dodges(count: int, x_values: Sequence[float], fraction: float = 0.3) -> list[float]:
    """Sideways shifts of ``count`` curves sharing the grid ``x_values``: spread over
    ``fraction`` of the smallest x spacing, centred on 0."""
    grid = np.unique(np.asarray(x_values, dtype=float))
    if count < 2 or grid.size < 2:
        return [0.0] * count
    width = fraction * float(np.min(np.diff(grid)))
    return list(np.linspace(-width / 2, width / 2, count))


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
    """One line per group of ``by`` columns, points sorted by ``x``, each its own style.

    ``ci`` names a column holding the half-width of a confidence interval,
    drawn as error bars. Rows whose ``y`` is missing (``None``) are skipped.
    Values are named with :func:`display_name`.
    """
    for index, (values, group) in enumerate(group_rows(rows, by).items()):
        group = sorted((row for row in group if row[y] is not None), key=lambda row: row[x])
        label = ", ".join(
            label_format.format(name, display_name(value))
            for name, value in zip(by, values, strict=True)
        )
        draw_curve(
            axes,
            [row[x] for row in group],
            [row[y] for row in group],
            None if ci is None else [row[ci] or 0.0 for row in group],
            label=label or None,
            **curve_style(index),
        )
    axes.set_xlabel(x)
    axes.set_ylabel(y)


def single_legend(figure: Figure, columns: int | None = None, fontsize="small") -> None:
    """Gather the legend entries of every panel into one legend below the figure.

    Entries with the same label are shown once; the panels' own legends are removed.
    ``columns`` caps the legend's columns (default 4); fewer are used where that
    many would be wider than the figure. Does nothing when no panel has a labelled artist.
    """
    handles, labels = [], []
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
        if axes.get_legend() is not None:
            axes.get_legend().remove()
    if not labels:
        return
    for legend in list(figure.legends):
        legend.remove()
    # "outside": constrained layout makes room for it below the panels, but does
    # not shrink it; so as many columns as fit the figure's width, at most 4
    renderer = FigureCanvasAgg(figure).get_renderer()
    for ncols in range(columns or min(len(labels), 4), 0, -1):
        legend = figure.legend(
            handles, labels, loc="outside lower center", ncols=ncols, fontsize=fontsize,
            frameon=False,
        )  # fmt: skip
        if ncols == 1 or legend.get_window_extent(renderer).width <= figure.bbox.width:
            break
        legend.remove()


def save_figure(figure: Figure, path, legend: bool = True) -> None:
    """Write the figure with one legend (:func:`single_legend`); the suffix picks the type.

    ``.png`` (150 dpi), ``.pdf`` or ``.svg``; vector files carry no creation date,
    so that the same results give the same file.
    """
    if legend:
        single_legend(figure)
    FigureCanvasAgg(figure)  # render with Agg whatever pyplot's backend is
    suffix = str(path).rsplit(".", 1)[-1].lower()
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(suffix)
    # a fixed salt: the SVG's element ids do not change from one drawing to the next
    with matplotlib.rc_context({"svg.hashsalt": "airinfer"}):
        figure.savefig(path, dpi=150, metadata=metadata)
