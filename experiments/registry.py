"""The experiments the CLI knows, and the interface each one implements.

The table below names each experiment's module without importing it, so that
``airinfer list`` stays fast (no TensorFlow import).
"""

import dataclasses
import importlib
from collections.abc import Callable

__all__ = ["Experiment", "EXPERIMENTS", "load"]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One sweep: a grid of points, a measurement per point and a plot.

    Attributes:
        name: the CLI name, also the stem of the plot file (``NAME.png``).
        summary: one line for ``airinfer list``.
        config: a frozen dataclass type; every field has a default and there is
            an ``int`` field ``seed``. Nested dataclasses are allowed (``--set
            a.b=value``).
        quick: field overrides (dotted keys) applied by ``--quick``.
        points: ``points(config) -> list[dict]``: the sweep, in order; each dict
            maps column names to the values that identify the point (they
            become the leading CSV columns and the key for resuming).
        run_point: ``run_point(key, config, point) -> dict``: the measured
            columns of one point. ``key`` is ``fold_in(jax.random.key(seed), index)``
            so a result does not depend on which points ran before it.
        plot: ``plot(rows, config, path)`` draws the figure from the CSV rows
            (dicts of column values, numbers already parsed) into ``path``.
        artifacts: optional ``artifacts(config, rows) -> {file name: bytes}``:
            extra files written (atomically) beside the results after the sweep
            (``rows`` as for ``plot``).
    """

    name: str
    summary: str
    config: type
    quick: dict
    points: Callable
    run_point: Callable
    plot: Callable
    artifacts: Callable | None = None


# name -> (module defining EXPERIMENT, one-line summary)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "link_ber": (
        "airinfer.experiments.link_ber",
        "BER and BLER vs Es/N0 of QPSK/16QAM, uncoded and 5G LDPC, over AWGN and Rayleigh",
    ),
    "ota_snr": (
        "airinfer.experiments.ota_snr",
        "edge-ensemble accuracy vs SNR: over-the-air belief/vote/sign sums vs orthogonal digital",
    ),
    "ota_connectivity": (
        "airinfer.experiments.ota_connectivity",
        "accuracy vs connectivity p of 16 compact CNNs (ideal and over the air) vs one full CNN",
    ),
    "ota_privacy": (
        "airinfer.experiments.ota_privacy",
        "accuracy vs differential-privacy level: over-the-air vs orthogonal, belief vs vote",
    ),
    "latency_bitrate": (
        "airinfer.experiments.latency_bitrate",
        "latency vs uplink bitrate: edge-only, cloud-only and split at every split point (Fig. 3)",
    ),
    "strategies_snr": (
        "airinfer.experiments.strategies_snr",
        "accuracy vs SNR of every strategy: local, cloud, split digital/analog, partitioning, "
        "edge ensemble",
    ),
    "table1": (
        "airinfer.experiments.table1",
        "the survey's Table I measured: accuracy, channel uses, latency, inversion PSNR, offline",
    ),
}


def load(name: str) -> Experiment:
    """Import and return the experiment called ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    experiment = importlib.import_module(EXPERIMENTS[name][0]).EXPERIMENT
    if experiment.name != name:
        raise RuntimeError(f"{EXPERIMENTS[name][0]} defines {experiment.name!r}, not {name!r}")
    return experiment
