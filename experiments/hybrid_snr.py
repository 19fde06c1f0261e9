"""The hybrid against its parents: accuracy vs SNR at several server connectivities.

The ``hybrid`` of ``strategies_snr`` (same models, same fields: ``hybrid_ensemble``,
``hybrid_server``, ``hybrid_trust``) is run once per point, and the three
decisions come from the same draws (common random numbers):

* ``hybrid``: the fused decision, the ensemble alone where the server's
  answer does not count;
* ``ensemble``: the edge ensemble alone;
* ``server``: the server alone, which decides only where it is reachable
  (probability ``server_connectivity``) and its uplink decodes (an ideal CRC):
  elsewhere the device has no answer and the sample counts as a miss.

One point per ``channel``, ``server_connectivity`` (of
``server_connectivities``) and ``snr_db`` (Es/N0 per complex symbol of every
link, average Es/N0 under fading). Accuracy is measured on the first
``num_test`` test images with 95 % Wilson intervals; ``server_reached`` is the
fraction of inferences where the server's answer counted; ``undecided`` counts
the test images whose fused scores were not finite (no decision, counted as
wrong). The plot has one panel per channel and server connectivity, the three
curves in each.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import strategies_snr
from airinfer.experiments.config import ConfigError
from airinfer.experiments.plotting import (
    channel_name,
    display_name,
    dodges,
    draw_curve,
    save_figure,
    style,
)
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.ota.encoding import NO_DECISION
from airinfer.ota.encoding import decide as ota_decide
from airinfer.strategies.base import Link

__all__ = ["HybridSnrConfig", "SCHEMES", "EXPERIMENT"]

SCHEMES = ("hybrid", "ensemble", "server")


@dataclasses.dataclass(frozen=True)
class HybridSnrConfig(strategies_snr.StrategiesSnrConfig):
    """Configuration of ``hybrid_snr``: that of ``strategies_snr`` plus the connectivity axis.

    Attributes:
        server_connectivities: probabilities that the hybrid's server is
            reachable, one panel each. ``strategies`` (only ``hybrid``) and
            ``server_connectivity`` (replaced by this axis) keep their defaults.
    """

    strategies: tuple[str, ...] = ("hybrid",)
    server_connectivities: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)

    def __post_init__(self):
        super().__post_init__()
        if self.strategies != ("hybrid",):
            raise ConfigError(
                f"strategies: {self.strategies}; hybrid_snr runs the hybrid and its parents "
                "only: leave it ('hybrid',)"
            )
        if self.server_connectivity != 1.0:
            raise ConfigError(
                f"server_connectivity: {self.server_connectivity} has no effect here; "
                "set server_connectivities"
            )
        if not self.server_connectivities or any(
            not 0.0 <= p <= 1.0 for p in self.server_connectivities
        ):
            raise ConfigError(
                f"server_connectivities: {self.server_connectivities} must be non-empty, in [0, 1]"
            )


QUICK = strategies_snr.QUICK | {"server_connectivities": (0.5, 1.0)}


def points(config):
    """One point per (channel, server_connectivity, snr_db)."""
    return [
        {"channel": channel, "server_connectivity": p, "snr_db": snr}
        for channel in config.channels
        for p in config.server_connectivities
        for snr in config.snr_db
    ]


@functools.cache
def _decide(hybrid):
    """Jitted ``(key, images, link) -> (hybrid, ensemble, server) decisions [B], server_ok [B]``."""

    def decide(key, images, link):
        branches = hybrid.branches(key, images, link)
        decisions = (
            ota_decide(hybrid.fuse(branches)),  # NaN never decides
            ota_decide(branches.ensemble.logits),
            ota_decide(branches.server.logits),
        )
        return decisions, branches.server_ok

    return jax.jit(decide)


def evaluate(hybrid, key, images, labels, link, batch_size):
    """Correct decisions of each scheme (:data:`SCHEMES`) and how often the server counted.

    Batches as in :func:`airinfer.experiments.strategy_batches.evaluate` (the last one
    padded, the padding not counted). Returns ``({scheme: correct}, reached,
    undecided)``, the last the images the fused decision left undecided.
    """
    run = _decide(hybrid)
    correct, reached, undecided = dict.fromkeys(SCHEMES, 0), 0, 0
    for i, start in enumerate(range(0, len(labels), batch_size)):
        batch = images[start : start + batch_size]
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - size, axis=0)])
        decisions, server_ok = run(jax.random.fold_in(key, i), batch, link)
        truth = labels[start : start + size]
        ok = np.asarray(server_ok)[:size]
        for scheme, decided in zip(SCHEMES, decisions, strict=True):
            right = np.asarray(decided)[:size] == truth
            # the server alone has no answer where it did not count
            correct[scheme] += int(np.sum(right & ok if scheme == "server" else right))
        reached += int(np.sum(ok))
        undecided += int(np.sum(np.asarray(decisions[0])[:size] == NO_DECISION))
    return correct, reached, undecided


def run_point(key, config, point):
    """The three schemes' accuracies (95 % Wilson half-widths) at one point."""
    _, _, _, images, labels = strategies_snr.setup(config)
    hybrid = strategies_snr.strategy(config, "hybrid", point["channel"])
    link = Link(
        snr_db=jnp.float32(point["snr_db"]), channel=point["channel"], backend=config.backend,
        server_connectivity=jnp.float32(point["server_connectivity"]),
    )  # fmt: skip
    correct, reached, undecided = evaluate(hybrid, key, images, labels, link, config.batch_size)
    n = len(labels)
    row = {}  # the hybrid's accuracy first: a point's status line shows it
    for scheme in SCHEMES:
        low, high = wilson_interval(correct[scheme], n)
        row[scheme] = correct[scheme] / n
        row[f"{scheme}_ci"] = (high - low) / 2
    return {**row, "server_reached": reached / n, "undecided": undecided}


def plot(rows, config, path):
    """One panel per channel (rows) and server connectivity (columns): accuracy vs Es/N0."""
    columns = config.server_connectivities
    figure = Figure(
        figsize=(3.6 * len(columns), 3.2 * len(config.channels) + 0.8), layout="constrained"
    )
    axes = figure.subplots(len(config.channels), len(columns), squeeze=False, sharey=True)
    for row_axes, channel in zip(axes, config.channels, strict=True):
        for ax, p in zip(row_axes, columns, strict=True):
            points = sorted(
                (r for r in rows if r["channel"] == channel and r["server_connectivity"] == p),
                key=lambda r: r["snr_db"],
            )
            x = np.asarray([r["snr_db"] for r in points])
            shifts = dodges(len(SCHEMES), x)
            for index, scheme in enumerate(SCHEMES):
                y = np.asarray([r[scheme] for r in points])
                ci = np.asarray([r[f"{scheme}_ci"] for r in points])
                draw_curve(ax, x, y, ci, label=display_name(scheme), dodge=shifts[index],
                           **style(scheme, index))  # fmt: skip
            ax.set_title(f"{channel_name(channel)}, server reachable w.p. {p:g}", fontsize=9)
            ax.set_xlabel("Es/N0 per complex symbol [dB]")
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("accuracy")
    figure.suptitle(
        f"{config.dataset}: {display_name(config.hybrid_ensemble)} + "
        f"{display_name(config.hybrid_server)}, trust {config.hybrid_trust:g}",
        fontsize=10,
    )
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="hybrid_snr",
        summary="the hybrid vs its edge ensemble and its server: accuracy vs SNR and server reach",
        config=HybridSnrConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
