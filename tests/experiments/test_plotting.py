"""Figures: one legend each, curves named in words, one style per curve."""

import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from airinfer.experiments import hybrid_snr, plotting, registry, runner
from airinfer.strategies import registry as strategy_registry

# Code names that must not reach a legend: every name the figures translate, and
# the lower-case channel and link names.
CODE_NAMES = {name for name, words in plotting.NAMES.items() if name != words}
CODE_TOKENS = re.compile(r"\b(awgn|qpsk|16qam|64qam|ldpc|tdl-a|rayleigh|rician)\b")
# The figures named in the issue run in the default suite; the others are import-bound
# (TensorFlow, Sionna) and run with the slow ones.
QUICK = ("ota_snr", "strategies_snr", "link_ber", "latency_bitrate")


class _Row(dict):
    """A results row whose measured columns all read 0.5 (enough to draw any plot)."""

    def __missing__(self, key):
        return 0.5


def _drawn(name, tmp_path, monkeypatch) -> Figure:
    """The Figure an experiment's plot draws from rows of its --quick points."""
    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self),
                        savefig(self, *a, **k))[1])  # fmt: skip
    experiment = registry.load(name)
    config = runner.resolve_config(experiment, quick=True)
    rows = [_Row(point) for point in experiment.points(config)]
    experiment.plot(rows, config, tmp_path / f"{name}.png")
    assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    return drawn[-1]


@pytest.mark.parametrize(
    "name",
    [
        name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
        for name in sorted(registry.builtin())
    ],
)
def test_one_legend_in_words(name, tmp_path, monkeypatch):
    figure = _drawn(name, tmp_path, monkeypatch)
    assert [axes.get_legend() for axes in figure.axes if axes.get_legend()] == []
    assert len(figure.legends) == 1
    texts = [text.get_text() for text in figure.legends[0].get_texts()]
    assert texts and len(texts) == len(set(texts))
    for text in texts:
        assert "_" not in text and text not in CODE_NAMES, (name, text)
        assert not CODE_TOKENS.search(text), (name, text)


def test_single_legend_gathers_panels_once_and_keeps_figures_without_labels():
    figure = Figure(layout="constrained")
    left, right = figure.subplots(1, 2)
    for axes in (left, right):
        axes.plot([0, 1], [0, 1], label="shared")
        axes.legend()
    right.plot([0, 1], [1, 0], label="right only")
    plotting.single_legend(figure)
    assert left.get_legend() is None and right.get_legend() is None
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["shared", "right only"]
    bare = Figure()
    bare.add_subplot().plot([0, 1], [0, 1])
    plotting.single_legend(bare)
    assert bare.legends == []


@pytest.mark.parametrize(("width", "curves"), [(6.0, 7), (15.0, 13)])
def test_the_legend_fits_the_figure_and_fills_its_width(width, curves):
    # ota_connectivity's single panel drew 3 columns of 57-character labels, wider than itself
    figure = Figure(figsize=(width, 4.6), layout="constrained")
    axes = figure.add_subplot()
    for k in range(curves):
        label = f"K = 16 devices × width 0.{k}, over the air, belief average"
        axes.plot([0, 1], [k, k], label=label)
    plotting.single_legend(figure)
    renderer = FigureCanvasAgg(figure).get_renderer()
    legend = figure.legends[0]
    assert legend.get_window_extent(renderer).width <= figure.bbox.width
    figure.draw_without_rendering()  # places the legend's texts
    columns = len({round(t.get_window_extent(renderer).x0) for t in legend.get_texts()})
    # no column too few: one more would not have fitted (or there are 4 already)
    wider = figure.legend(*axes.get_legend_handles_labels(), ncols=columns + 1, fontsize="small")
    assert columns == 4 or wider.get_window_extent(renderer).width > figure.bbox.width
    assert columns == (1 if width < 10 else 3)


def test_styles_names_and_dodges():
    styles = [plotting.curve_style(i) for i in range(len(plotting.MARKERS))]
    assert len({(s["color"], s["marker"]) for s in styles}) == len(styles)
    assert len({s["marker"] for s in styles}) == len(styles)
    # the curves met in several figures: each a distinct colour-marker pair
    looks = {
        (c, m)
        for name, (c, m, _) in plotting.STYLES.items()
        if name in ("noiseless", "ota_belief", "ota_vote", "ota_sign", "orthogonal", "best_single")
    }
    assert len(looks) == 6
    # curves drawn in one figure each have a colour of their own
    train_rules = ("mean_softmax", "majority_vote")
    for together in (strategy_registry.names(), hybrid_snr.SCHEMES, train_rules):
        colours = [plotting.style(name)["color"] for name in together]
        assert len(set(colours)) == len(colours), together
    assert plotting.style("ota_belief")["marker"] == "o"
    assert plotting.style("a_user_curve", 2) == {**plotting.curve_style(2), "linestyle": "-"}
    assert plotting.display_name("best_single") == "best single device"
    assert plotting.display_name("my_scheme") == "my scheme"
    assert plotting.channel_name("rician", 3.0) == "Rician fading, Rician factor 3"
    shifts = plotting.dodges(3, [0.0, 5.0, 10.0])
    assert np.allclose(shifts, [-0.75, 0.0, 0.75])  # 30 % of the 5 dB spacing, centred
    assert plotting.dodges(1, [0.0, 5.0]) == [0.0] and plotting.dodges(2, [3.0]) == [0.0, 0.0]


@pytest.mark.parametrize(("suffix", "magic"), [("pdf", b"%PDF-"), ("svg", b"<svg")])
def test_vector_figures_are_the_same_file_for_the_same_figure(tmp_path, suffix, magic):
    paths = []
    for index in range(2):
        figure, axes = plotting.new_figure()
        axes.plot([0, 1], [0, 1], label="a curve")
        paths.append(tmp_path / f"{index}.{suffix}")
        plotting.save_figure(figure, paths[-1])
    assert magic in paths[0].read_bytes()[:400]
    assert paths[0].read_bytes() == paths[1].read_bytes()  # no creation date inside
