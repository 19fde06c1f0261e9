"""Accuracy vs channel uses per inference: every strategy spending a budget at a fixed SNR.

At each Es/N0 of ``snr_db`` (per complex symbol, dB; average Es/N0 under
fading) on each channel of ``channels`` (``awgn``, ``rayleigh``: the channels
with BLER curves), every strategy family of ``strategies`` gets each budget of
``budgets`` complex channel uses per inference and spends it through link
adaptation and its own knobs: quantisation bits, codec quality, analog
symbols, partitioning hops and bits, over-the-air repetitions. The setting is
chosen from the channel-use count and the BLER curves alone, never from
accuracy (:mod:`airinfer.experiments.budget_settings`: the grids and the
rule). Where nothing fits the family falls back to the device alone
(``local``) if it can decide offline, else to ``chance``, and the ``fallback``
column says so. The models are those of ``strategies_snr`` (same fields).

Columns: ``setting`` (the chosen knobs; empty on a fallback), ``fallback``
(empty, ``local`` or ``chance``), ``planned_uses`` (what the choice counted),
``channel_uses`` (what the run measured: the mean over the images; a JPEG
stream's length varies), ``mcs`` (the MCS index of the digital links, ``a/b``
when they differ) and ``mcs_fallback`` (a link below its BLER target: no MCS
met it), ``accuracy`` with its 95 % Wilson half-width ``accuracy_ci`` on the
first ``num_test`` test images, ``undecided`` (test images whose logits were
not finite: no decision, counted as wrong) and the other cost columns of
``strategies_snr``. A budget that chooses the same setting as another at the
same (channel, SNR) gives the same measurement: every evaluation at one
(channel, SNR) uses that cell's key (common random numbers across strategies
and settings), so rows do not depend on which points ran before.

Besides ``results.csv`` the run writes ``winners.csv`` and ``winners.md``
(the most accurate strategy per channel, SNR and budget; ``*`` where the
runner-up lies within the winner's interval) and ``settings.csv`` (every
setting's planned channel uses at every (channel, SNR), and any left out).
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import budget_settings, strategies_snr, strategy_batches
from airinfer.experiments.budget_settings import (
    FAMILIES,
    choose,
    plan,
    runnable,
    setting_table,
    settings,
)
from airinfer.experiments.config import ConfigError
from airinfer.experiments.folder import cell, csv_text
from airinfer.experiments.plotting import channel_name, display_name, draw_curve, save_figure, style
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.strategies.adaptation import ADAPTIVE_CHANNELS
from airinfer.strategies.base import Link

__all__ = ["StrategiesBudgetConfig", "EXPERIMENT", "winners", "winners_markdown", "clear_caches"]

#: Fields of ``strategies_snr`` that the grids replace here, and the grid replacing each.
REPLACED = {
    "jpeg_quality": "jpeg_qualities", "hop_bits": "hop_bit_depths",
    "partition_cuts": "partition_chains", "analog_matched_bits": "analog_symbol_counts",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class StrategiesBudgetConfig(strategies_snr.StrategiesSnrConfig):
    """Configuration of ``strategies_budget``: the models and links of ``strategies_snr``
    (its fields, with ``jpeg_quality``, ``hop_bits``, ``partition_cuts`` and
    ``analog_matched_bits`` replaced by the grids below, and no fixed ``mcs``),
    plus the budget axis and the knobs' grids. With ``backend="jax"`` the channels and
    links run on the JAX twins and TensorFlow is never imported: the link adaptation
    reads the 38.214 MCS tables and the shipped BLER curves as data.

    Attributes:
        strategies: families of :data:`~airinfer.experiments.budget_settings.FAMILIES`.
        channels: ``awgn`` and/or ``rayleigh``.
        snr_db: Es/N0 per complex symbol in dB, one panel each, finite.
        budgets: complex channel uses per inference, positive ints, distinct.
        target_bler: in (0, 1), the message error rate every adapted link must meet.
        jpeg_qualities: ``cloud_jpeg``'s qualities, ints in [1, 100].
        split_bits: ``split_digital``'s bits per value: of 2, 4, 8.
        analog_symbol_counts: ``split_analog``'s complex symbols, ints >= 1 (a
            codec is trained per count and channel where chosen, and cached; 512
            is ``strategies_snr``'s matched link).
        partition_chains: ``partition_layer``'s chains, cuts joined by ``+``
            (``conv2+hidden``: two hops).
        hop_bit_depths: the partitionings' bits per value, ints in [1, 16].
        horizontal_devices: ``partition_horizontal``'s devices (2 by default:
            4 slices of the 128 hidden units are 256-bit blocks, without curves).
        ota_repetitions: the edge ensembles' and hybrid's repetitions of the
            return over the air, ints >= 1.
        calibration_images: training images that set ``cloud_jpeg``'s stream length.
    """

    strategies: tuple[str, ...] = FAMILIES
    channels: tuple[str, ...] = ("awgn", "rayleigh")
    snr_db: tuple[float, ...] = (-5.0, 5.0, 15.0)
    budgets: tuple[int, ...] = (16, 64, 256, 1024, 4096, 16384)
    target_bler: float = 0.1
    jpeg_qualities: tuple[int, ...] = (10, 25, 50, 75, 90)
    split_bits: tuple[int, ...] = (2, 4, 8)
    analog_symbol_counts: tuple[int, ...] = (16, 64, 256, 512)
    partition_chains: tuple[str, ...] = ("hidden", "conv2+hidden")
    hop_bit_depths: tuple[int, ...] = (2, 4, 8)
    horizontal_devices: int = 2
    ota_repetitions: tuple[int, ...] = (1, 3, 12, 48, 192)
    calibration_images: int = 500
    num_test: int = 500

    def __post_init__(self):
        self._check_budget_fields()
        # the inherited checks read ``strategies`` as registered names: give them the
        # names the families build, then put the families back
        families = self.strategies
        built = {s.build for family in families for s in settings(self, family)}
        object.__setattr__(self, "strategies", tuple(sorted(built)))
        try:
            super().__post_init__()
        finally:
            object.__setattr__(self, "strategies", families)

    def _check_budget_fields(self):
        _distinct("strategies", self.strategies, lambda s: s in FAMILIES, ", ".join(FAMILIES))
        _distinct("channels", self.channels, lambda c: c in ADAPTIVE_CHANNELS,
                  ", ".join(ADAPTIVE_CHANNELS) + " (the channels with BLER curves)")  # fmt: skip
        _distinct("snr_db", self.snr_db, math.isfinite, "finite numbers")
        _distinct("budgets", self.budgets, _positive_int, "ints >= 1")
        for name, valid, allowed in (
            ("jpeg_qualities", lambda q: _positive_int(q) and q <= 100, "ints in [1, 100]"),
            ("split_bits", lambda b: b in (2, 4, 8), "2, 4 or 8"),
            ("analog_symbol_counts", _positive_int, "ints >= 1"),
            ("partition_chains", lambda c: all(c.split("+")), "cuts joined by '+'"),
            ("hop_bit_depths", lambda b: _positive_int(b) and b <= 16, "ints in [1, 16]"),
            ("ota_repetitions", _positive_int, "ints >= 1"),
        ):
            _distinct(name, getattr(self, name), valid, allowed)
        if not 0 < self.target_bler < 1:
            raise ConfigError(f"target_bler: {self.target_bler} is not in (0, 1)")
        if self.calibration_images < 1:
            raise ConfigError(f"calibration_images: {self.calibration_images} is not >= 1")
        if self.mcs is not None:
            raise ConfigError(
                f"mcs: {self.mcs!r}; strategies_budget adapts every digital link per point, "
                "leave it none"
            )
        defaults = strategies_snr.StrategiesSnrConfig()
        for name, grid in REPLACED.items():
            if getattr(self, name) != getattr(defaults, name):
                raise ConfigError(f"{name}: {getattr(self, name)!r} has no effect here; set {grid}")
        for name, codec in (("direct_source", self.direct_source != "pixels"),
                            ("hybrid_server", self.hybrid_server == "cloud_jpeg")):  # fmt: skip
            if codec:
                raise ConfigError(
                    f"{name}: {getattr(self, name)!r}; a codec stream's length varies per "
                    "image, and only cloud_jpeg plans for it here"
                )


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _distinct(name, values, valid, allowed):
    """Raise a ConfigError naming ``name`` unless ``values`` is non-empty, distinct, valid."""
    if not values:
        raise ConfigError(f"{name}: empty; give at least one of {allowed}")
    for value in values:
        if not valid(value):
            raise ConfigError(f"{name}: {value!r} is not allowed; allowed: {allowed}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name}: {values} repeats a value")


QUICK = {
    "dataset": "digits",
    "epochs": 10,
    "jscc_epochs": 10,
    "num_test": 200,
    "batch_size": 200,
    "strategies": (
        "local",
        "cloud_digital",
        "split_digital",
        "split_analog",
        "edge_ensemble",
        "hybrid",
    ),  # fmt: skip
    "analog_symbol_counts": (16, 512),
    "ota_repetitions": (1, 3, 12),
}


def points(config):
    """One point per (channel, snr_db, strategy, budget)."""
    return [
        {"channel": channel, "snr_db": snr, "strategy": family, "budget": budget}
        for channel in config.channels
        for snr in config.snr_db
        for family in config.strategies
        for budget in config.budgets
    ]


def _cell_key(config, channel, snr_db):
    """The key of every evaluation at (channel, SNR)."""
    index = config.channels.index(channel) * len(config.snr_db) + config.snr_db.index(snr_db)
    return jax.random.fold_in(jax.random.key(config.seed), index)


@functools.cache
def _measured(config, setting, channel: str, snr_db: float):
    """``(correct, cost columns, undecided, mcs cell)`` of ``setting`` at (channel, SNR)."""
    _, _, dataset, images, labels = strategies_snr.setup(config)
    built = runnable(config, setting, channel, plan(config, setting, channel, snr_db))
    link = Link(
        snr_db=jnp.float32(snr_db), channel=channel, backend=config.backend,
        server_connectivity=jnp.float32(config.server_connectivity),
    )  # fmt: skip
    key = _cell_key(config, channel, snr_db)
    correct, cost, undecided = strategy_batches.evaluate_on_devices(
        built, key, images, labels, link, config, return_undecided=True
    )
    return correct, cost, undecided, strategies_snr.mcs_cell(built, dataset.image_shape)


def clear_caches() -> None:
    """Forget what was built, planned and measured (a new model cache, a test)."""
    _measured.cache_clear()
    budget_settings.clear_caches()


def chance_correct(config) -> int:
    """Test images of the training set's most frequent class: what guessing it gets right."""
    _, _, dataset, _, labels = strategies_snr.setup(config)
    return int(np.sum(labels == np.bincount(dataset.train_labels).argmax()))


def run_point(key, config, point):
    """The chosen setting (or fallback) of one family at one budget, and its accuracy.

    ``key`` is not used: evaluations take their (channel, SNR) cell's key.
    """
    channel, snr, family = point["channel"], point["snr_db"], point["strategy"]
    choice = choose(config, family, channel, snr, point["budget"])
    labels = strategies_snr.setup(config).labels
    mcs, undecided = None, 0
    if choice.fallback == "chance":
        correct, cost = chance_correct(config), dict.fromkeys(strategy_batches.COST_COLUMNS, 0.0)
    else:
        setting = choice.setting or settings(config, "local")[0]
        correct, cost, undecided, mcs = _measured(config, setting, channel, snr)
    low, high = wilson_interval(correct, len(labels))
    return {
        "setting": None if choice.setting is None else choice.setting.label,
        "fallback": choice.fallback,
        "planned_uses": 0.0 if choice.plan is None else choice.plan.uses,
        **cost,
        "mcs": mcs,
        "mcs_fallback": choice.plan is not None and choice.plan.mcs_fallback,
        "accuracy": correct / len(labels),
        "accuracy_ci": (high - low) / 2,
        "undecided": undecided,
    }


def plot(rows, config, path):
    """One panel per (channel, SNR): accuracy vs channel uses (symlog), one line per
    strategy through its budgets; fallbacks marked ``x`` at the uses they spent (0),
    ``local`` a dotted level."""
    figure = Figure(
        figsize=(3.6 * len(config.snr_db), 3.2 * len(config.channels) + 1.0), layout="constrained"
    )
    axes = figure.subplots(len(config.channels), len(config.snr_db), squeeze=False, sharey=True)
    for row_axes, channel in zip(axes, config.channels, strict=True):
        for ax, snr in zip(row_axes, config.snr_db, strict=True):
            for index, family in enumerate(config.strategies):
                curve = sorted(
                    (r for r in rows
                     if (r["channel"], r["snr_db"], r["strategy"]) == (channel, snr, family)),
                    key=lambda r: r["budget"],
                )  # fmt: skip
                if not curve:
                    continue
                look = style(family, index)
                if family == "local":
                    ax.axhline(curve[0]["accuracy"], color=look["color"],
                               linestyle=look["linestyle"], label=display_name(family))  # fmt: skip
                    continue
                spent = [r for r in curve if r["fallback"] is None]
                draw_curve(
                    ax, [r["channel_uses"] for r in spent], [r["accuracy"] for r in spent],
                    [r.get("accuracy_ci") or 0.0 for r in spent], label=display_name(family),
                    **look,
                )  # fmt: skip
                fell = [r for r in curve if r["fallback"] is not None]
                ax.plot([r["channel_uses"] for r in fell], [r["accuracy"] for r in fell],
                        "x", color=look["color"])  # fmt: skip
            ax.set_xscale("symlog", linthresh=10)
            ax.set_title(f"{channel_name(channel)}, Es/N0 {snr:g} dB", fontsize=9)
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("accuracy")
    for ax in axes[-1]:
        ax.set_xlabel("channel uses per inference (the budget spent)")
    axes[0][-1].plot([], [], "x", color="gray", label="fell back to the device alone or chance")
    figure.suptitle("accuracy against the channel-use budget; bars: 95 % intervals", fontsize=9)
    save_figure(figure, path)


WINNER_COLUMNS = ("channel", "snr_db", "budget", "winner", "setting", "accuracy", "accuracy_ci",
                  "channel_uses", "runner_up", "runner_up_accuracy", "clear")  # fmt: skip


def winners(rows, order=FAMILIES) -> list[dict]:
    """The most accurate strategy per (channel, SNR, budget).

    Ties go to fewer channel uses, then to the order of ``order``. ``clear`` is
    False where the runner-up lies within the winner's 95 % half-width.
    """
    cells: dict = {}
    for row in rows:
        cells.setdefault((row["channel"], row["snr_db"], row["budget"]), []).append(row)
    found = []
    for (channel, snr, budget), group in cells.items():
        ranked = sorted(group, key=lambda r: (-r["accuracy"], r["channel_uses"],
                                              order.index(r["strategy"]) if r["strategy"] in order
                                              else len(order)))  # fmt: skip
        best, second = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        found.append({
            "channel": channel, "snr_db": snr, "budget": budget, "winner": best["strategy"],
            "setting": best["setting"] or best["fallback"], "accuracy": best["accuracy"],
            "accuracy_ci": best["accuracy_ci"], "channel_uses": best["channel_uses"],
            "runner_up": second and second["strategy"],
            "runner_up_accuracy": second and second["accuracy"],
            "clear": second is None or best["accuracy"] - second["accuracy"] > best["accuracy_ci"],
        })  # fmt: skip
    return found


def winners_markdown(found) -> str:
    """A Markdown table of :func:`winners`: one row per budget, one column per (channel, SNR)."""
    columns = list(dict.fromkeys((w["channel"], w["snr_db"]) for w in found))
    budgets = sorted({w["budget"] for w in found})
    at = {(w["channel"], w["snr_db"], w["budget"]): w for w in found}
    lines = [
        "| budget | " + " | ".join(f"{c} {s:g} dB" for c, s in columns) + " |",
        "| ---: |" + " --- |" * len(columns),
    ]
    for budget in budgets:
        cells = []
        for channel, snr in columns:
            w = at.get((channel, snr, budget))
            mark = "" if w is None or w["clear"] else "*"
            cells.append("" if w is None else f"{w['winner']} {w['accuracy']:.3f}{mark}")
        lines.append(f"| {budget:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(header, rows) -> str:
    return csv_text(list(header), [{name: cell(row[name]) for name in header} for row in rows])


def artifacts(config, rows):
    """``winners.csv``, ``winners.md`` and ``settings.csv`` (planned again when written)."""
    found = winners(rows, config.strategies)

    def write_settings(path):
        planned = setting_table(config)
        path.write_text(_csv(planned[0].keys(), planned), encoding="utf-8")

    return {
        "winners.csv": _csv(WINNER_COLUMNS, found),
        "winners.md": winners_markdown(found),
        "settings.csv": write_settings,
    }


EXPERIMENT = register(
    Experiment(
        name="strategies_budget",
        summary=(
            "accuracy vs channel uses per inference at fixed SNRs: every strategy spends a "
            "budget through link adaptation and its own knobs, or falls back"
        ),
        config=StrategiesBudgetConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=artifacts,
    )
)
