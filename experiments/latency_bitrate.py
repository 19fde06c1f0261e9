"""End-to-end latency vs uplink bitrate: edge-only, cloud-only and split inference (survey Fig. 3).

For one model, every uplink bitrate of the sweep (0.1 to 100 Mbps, log grid,
plus Neurosurgeon's 3G / LTE / Wi-Fi uplinks of 1.1, 5.85 and 18.88 Mbps,
Kang et al., ASPLOS 2017) and every placement — the whole model on the device
(``edge_only``), the raw input sent to the server (``cloud_only``), a split at
each split point of the model (``split``) — gives the latency of one inference
of one sample (:mod:`airinfer.strategies.cost`)::

    latency = device_flops / device_flops_per_s + [rtt_s + payload_bits / bitrate]
              + server_flops / server_flops_per_s

Only the architecture enters (FLOPs by XLA's cost analysis, feature shapes): the
model is built shape-only, without data and without training, since latency
does not depend on the weights; ``dataset`` only sets the input shape
(``digits`` 8×8×1, ``fashion_mnist`` 28×28×1, ``cifar10`` 32×32×3).

Default hardware, a microcontroller-class IoT device and a datacenter GPU:

* ``device_flops_per_s = 5e8``: an Arm Cortex-M7 at 480 MHz (STM32H7 class)
  running int8 CMSIS-NN kernels. Its peaks are 2 FLOP/cycle in FP32 (one
  single-precision FMA per cycle, 0.96 GFLOP/s) and 4 op/cycle in int8 (two
  16-bit MACs per cycle with SMLAD, 1.9 GOP/s); CMSIS-NN (Lai et al., 2018,
  arXiv:1801.06601) ran an int8 CIFAR-10 CNN of ~25 MOP in ~0.1 s on a
  216 MHz Cortex-M7, ~0.25 GOP/s, i.e. ~0.55 GOP/s scaled to 480 MHz.
* ``server_flops_per_s = 1e12``: an NVIDIA A100 peaks at 19.5 TFLOP/s in FP32
  and 312 TFLOP/s in dense FP16 on tensor cores (A100 datasheet; an H100 SXM:
  67 and 989). At batch 1 a network of a few MFLOP is bound by kernel launches
  and memory, far below peak: 1e12 is 5 % of the A100's FP32 peak. Server time
  is then microseconds, so the regimes hardly depend on it; a fixed per-request
  delay belongs in ``rtt_s``.

Regimes found (exact crossings; the survey's Fig. 3 predicts edge, then split,
then cloud as the bitrate grows):

* Defaults (compact CNN, width 1, 28×28×1, 8-bit features): two regimes only,
  edge-only below 0.40 Mbps and cloud-only above. No split ever wins: the
  features after ``conv1`` (14×14×32) and ``conv2`` (7×7×64) hold 8× and 4×
  as many values as the 784-pixel input, so they cost more bits than the raw
  image and more device time than sending it; ``hidden`` sends 128 values
  (1/6 of the input's bits) but after 99.97 % of the FLOPs, so it beats
  cloud-only only below 0.33 Mbps and edge-only only above 199 Mbps.
* ``--set feature_bits=4 --set bottleneck=0.125`` (a bottleneck keeping 4 of
  the 32 channels after ``conv1``, 4 bits each: half the input's bits, after
  6 % of the FLOPs): edge-only below 0.21 Mbps, split at ``conv1`` from 0.21 to
  3.14 Mbps (3G included), cloud-only above.
* ``--set model=mobilenet_v2 --set dataset=cifar10 --set device_flops_per_s=1e10
  --set bottleneck=0.0625`` (MobileNetV2 on 32×32×3 and a phone-class device,
  1e10 FLOP/s as an order of magnitude): edge-only below 0.21 Mbps, split at
  ``stage4`` to 0.76 Mbps, then at ``stage1`` to 44.9 Mbps (3G, LTE and Wi-Fi),
  cloud-only above. With ``feature_bits=2`` and no bottleneck instead, split at
  ``stage4`` wins from 0.85 to 1.95 Mbps. On the default microcontroller
  MobileNetV2 takes 0.37 s on the device and cloud-only wins everywhere from
  0.1 Mbps on.

Regimes (which placement is fastest, and from which bitrate on) are computed
exactly from the rows by :func:`regimes` and written to ``regimes.json``
beside the results, with each split point's window: the bitrates where it beats
both edge-only and cloud-only inference (none when its features cost more bits
than the input, or when it comes after almost all the compute).
"""

import dataclasses
import functools
import json
import math
from typing import Literal

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from airinfer.experiments.config import ConfigError
from airinfer.experiments.plotting import display_name, save_figure
from airinfer.experiments.registry import Experiment, register
from airinfer.models.zoo import ModelConfig, abstract_model
from airinfer.strategies.cost import (
    Hardware,
    faster_interval,
    fastest_regimes,
    line,
    lower_envelope,
    placement_latency,
    placements,
    profile_model,
    split_window,
)

__all__ = ["LatencyBitrateConfig", "EXPERIMENT", "NEUROSURGEON_UPLINKS_MBPS", "regimes"]

Dataset = Literal["digits", "fashion_mnist", "cifar10"]
ModelKind = Literal["cnn", "mobilenet_v2", "mlp"]
INPUT_SHAPES = {"digits": (8, 8, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
# Average uplink throughputs measured by Neurosurgeon (Kang et al., ASPLOS 2017).
NEUROSURGEON_UPLINKS_MBPS = {"3G": 1.1, "LTE": 5.85, "Wi-Fi": 18.88}


def log_grid(low_mbps: float, high_mbps: float, per_decade: int) -> tuple[float, ...]:
    """``per_decade`` log-spaced bitrates from ``low_mbps`` to ``high_mbps``, 4 significant digits,
    with Neurosurgeon's uplinks added where they lie in the range."""
    decades = math.log10(high_mbps / low_mbps)
    count = round(decades * per_decade) + 1
    grid = {float(f"{low_mbps * 10 ** (decades * i / (count - 1)):.4g}") for i in range(count)}
    grid |= {r for r in NEUROSURGEON_UPLINKS_MBPS.values() if low_mbps <= r <= high_mbps}
    return tuple(sorted(grid))


@dataclasses.dataclass(frozen=True)
class LatencyBitrateConfig:
    """Configuration of ``latency_bitrate``.

    Attributes:
        seed: unused by the measurement (latency does not depend on weights);
            kept as every experiment's root key.
        dataset: sets the input shape only; no data is loaded.
        model, width, num_classes: the architecture (:mod:`airinfer.models.zoo`).
        bitrates_mbps: uplink info bitrates in Mbit/s, the x axis.
        device_flops_per_s, server_flops_per_s: sustained compute speeds
            (defaults: a Cortex-M7 MCU and a datacenter GPU at batch 1, see the
            module docstring).
        rtt_s: fixed delay in seconds whenever something is sent (propagation,
            protocol, server dispatch); 0 ignores it, as the survey's figure does.
        input_bits: bits per input value sent by ``cloud_only`` (8: raw pixels;
            a codec's bits per pixel models compressed input, encoding time not
            counted).
        feature_bits: bits per feature value sent by a split (8: uniform 8-bit
            quantiser; 32: float32).
        bottleneck: fraction in (0, 1] of the feature values a split sends (a
            learned bottleneck; its own FLOPs are not counted).
    """

    seed: int = 0
    dataset: Dataset = "fashion_mnist"
    model: ModelKind = "cnn"
    width: float = 1.0
    num_classes: int = 10
    bitrates_mbps: tuple[float, ...] = log_grid(0.1, 100.0, 10)
    device_flops_per_s: float = Hardware.device_flops_per_s
    server_flops_per_s: float = Hardware.server_flops_per_s
    rtt_s: float = 0.0
    input_bits: float = 8.0
    feature_bits: int = 8
    bottleneck: float = 1.0
    #: accepted by every experiment (airinfer.experiments.sharding); a closed form, no draws
    devices: int | None = None

    def __post_init__(self):
        if self.dataset not in INPUT_SHAPES:
            raise ConfigError(
                f"dataset: unknown {self.dataset!r}; allowed: {', '.join(INPUT_SHAPES)}"
            )
        if self.model not in ("cnn", "mobilenet_v2", "mlp"):
            raise ConfigError(f"model: unknown {self.model!r}; allowed: cnn, mobilenet_v2, mlp")
        if not 0 < self.width <= 4:
            raise ConfigError(f"width: {self.width!r} is not in (0, 4]")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes: {self.num_classes!r} is not >= 2")
        if not self.bitrates_mbps:
            raise ConfigError("bitrates_mbps: empty; give at least one bitrate")
        if not all(math.isfinite(r) and r > 0 for r in self.bitrates_mbps):
            raise ConfigError(f"bitrates_mbps: {self.bitrates_mbps!r} must be finite and > 0")
        if len(set(self.bitrates_mbps)) != len(self.bitrates_mbps):
            raise ConfigError(f"bitrates_mbps: {self.bitrates_mbps!r} has repeated values")
        for name in ("device_flops_per_s", "server_flops_per_s", "input_bits"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}: {value!r} is not a finite number > 0")
        if not (math.isfinite(self.rtt_s) and self.rtt_s >= 0):
            raise ConfigError(f"rtt_s: {self.rtt_s!r} is not a finite number >= 0")
        if self.feature_bits < 1:
            raise ConfigError(f"feature_bits: {self.feature_bits!r} is not >= 1")
        if not 0 < self.bottleneck <= 1:
            raise ConfigError(f"bottleneck: {self.bottleneck!r} is not in (0, 1]")


QUICK = {
    "dataset": "digits",
    "bitrates_mbps": log_grid(0.1, 100.0, 4),
}


def _hardware(config):
    return Hardware(
        device_flops_per_s=config.device_flops_per_s, server_flops_per_s=config.server_flops_per_s
    )


@functools.cache
def _profile(model, dataset, width, num_classes):
    """FLOPs and feature sizes of one architecture, built shape-only (no data, no weights)."""
    model_config = ModelConfig(model, INPUT_SHAPES[dataset], num_classes, width)
    return profile_model(abstract_model(model_config), model_config.input_shape)


@functools.cache
def config_placements(config):
    """The placements of the config's model; the profile is shared by configs of one model."""
    return placements(
        _profile(config.model, config.dataset, config.width, config.num_classes),
        input_bits=config.input_bits,
        feature_bits=config.feature_bits,
        bottleneck=config.bottleneck,
    )


@functools.cache
def _at(config, bitrate_mbps):
    """Breakdowns of every placement at one bitrate, and the indices of the fastest ones."""
    options = config_placements(config)
    hardware = _hardware(config)
    breakdowns = [placement_latency(o, bitrate_mbps * 1e6, hardware, config.rtt_s) for o in options]
    latency = [b.latency_s for b in breakdowns]
    fastest = min(range(len(options)), key=lambda i: latency[i])  # ties: the first
    splits = [i for i, o in enumerate(options) if o.strategy == "split"]
    best_split = min(splits, key=lambda i: latency[i]) if splits else None
    return breakdowns, fastest, best_split


def points(config):
    """One point per (placement, bitrate): ``strategy``, ``split_point`` (None unless split),
    ``bitrate_mbps``."""
    return [
        {"strategy": o.strategy, "split_point": o.split_point, "bitrate_mbps": float(rate)}
        for o in config_placements(config)
        for rate in config.bitrates_mbps
    ]


def run_point(key, config, point):
    """Latency of one placement at one bitrate (deterministic: ``key`` is unused).

    Columns: ``latency_s``, ``device_s``, ``uplink_s``, ``server_s`` (seconds),
    ``payload_bits``, ``device_flops``, ``server_flops``, ``fastest`` (this
    placement is the fastest of all at this bitrate) and ``best_split`` (this
    split is the fastest split at this bitrate; empty for edge/cloud rows).
    """
    del key
    options = config_placements(config)
    index = next(
        i
        for i, o in enumerate(options)
        if (o.strategy, o.split_point) == (point["strategy"], point["split_point"])
    )
    breakdowns, fastest, best_split = _at(config, point["bitrate_mbps"])
    option, breakdown = options[index], breakdowns[index]
    return {
        "latency_s": breakdown.latency_s,
        "device_s": breakdown.device_s,
        "uplink_s": breakdown.uplink_s,
        "server_s": breakdown.server_s,
        "payload_bits": option.payload_bits,
        "device_flops": option.device_flops,
        "server_flops": option.server_flops,
        "fastest": index == fastest,
        "best_split": (index == best_split) if option.strategy == "split" else None,
    }


def _label(strategy, split_point):
    return strategy if split_point is None else f"split@{split_point}"


def regimes(rows):
    """The fastest placement over the bitrates of ``rows``, exactly, in increasing bitrate.

    Each placement's latency is ``a + payload_bits / R``; ``a`` is read from its
    row at the highest bitrate (least cancellation) and the winners follow from
    the lower envelope of these lines (:func:`airinfer.strategies.cost.lower_envelope`),
    so a regime narrower than the grid's spacing is found too.

    Args:
        rows: result rows with ``strategy``, ``split_point``, ``bitrate_mbps``,
            ``latency_s`` and ``payload_bits``.

    Returns:
        A list of dicts ``{"strategy", "split_point", "low_mbps", "high_mbps"}``,
        contiguous from the lowest to the highest bitrate of ``rows``.
    """
    if not rows:
        raise ValueError("rows: empty; need the rows of at least one placement")
    top = {}
    for row in rows:
        key = (row["strategy"], row["split_point"])
        if key not in top or row["bitrate_mbps"] > top[key]["bitrate_mbps"]:
            top[key] = row
    keys = list(top)
    lines = [
        (
            top[k]["latency_s"] - top[k]["payload_bits"] / (top[k]["bitrate_mbps"] * 1e6),
            top[k]["payload_bits"],
        )
        for k in keys
    ]
    rates = [row["bitrate_mbps"] for row in rows]
    envelope = lower_envelope(lines, min(rates) * 1e6, max(rates) * 1e6)
    return [
        {
            "strategy": keys[i][0],
            "split_point": keys[i][1],
            "low_mbps": low / 1e6,
            "high_mbps": high / 1e6,
        }
        for i, low, high in envelope
    ]


def analysis(config):
    """Regimes and, per split point, why it wins or not: a JSON-ready dict.

    Per split point: the feature values and payload, the payload relative to
    cloud-only's, the share of the model's FLOPs run on the device, the bitrates
    above which it beats edge-only and below which it beats cloud-only, and the
    window where it beats both (None: never).
    """
    options, hardware = config_placements(config), _hardware(config)
    edge, cloud = options[0], options[1]
    low, high = min(config.bitrates_mbps) * 1e6, max(config.bitrates_mbps) * 1e6

    def mbps(interval, side):
        if interval is None:
            return None
        value = interval[side] / 1e6
        return None if math.isinf(value) or value == 0 else value

    splits = []
    for o in options[2:]:
        beats_edge = faster_interval(
            line(o, hardware, config.rtt_s), line(edge, hardware, config.rtt_s)
        )
        beats_cloud = faster_interval(
            line(o, hardware, config.rtt_s), line(cloud, hardware, config.rtt_s)
        )
        window = split_window(o, edge, cloud, hardware, config.rtt_s)
        splits.append(
            {
                "split_point": o.split_point,
                "payload_bits": o.payload_bits,
                "payload_vs_cloud": o.payload_bits / cloud.payload_bits,
                "device_flops_share": o.device_flops / edge.device_flops,
                "beats_edge": beats_edge is not None,
                "beats_edge_above_mbps": mbps(beats_edge, 0),
                "beats_cloud": beats_cloud is not None,
                "beats_cloud_below_mbps": mbps(beats_cloud, 1),
                "window_mbps": None if window is None else [w / 1e6 for w in window],
            }
        )
    return {
        "regimes": [
            {
                "strategy": r.strategy,
                "split_point": r.split_point,
                "low_mbps": r.low_bps / 1e6,
                "high_mbps": r.high_bps / 1e6,
            }
            for r in fastest_regimes(options, low, high, hardware, config.rtt_s)
        ],
        "edge_only_s": edge.device_flops / hardware.device_flops_per_s,
        "cloud_payload_bits": cloud.payload_bits,
        "full_flops": edge.device_flops,
        "splits": splits,
    }


def analysis_file(config, rows=None):
    """``regimes.json``: :func:`analysis` of the config."""
    return {"regimes.json": (json.dumps(analysis(config), indent=2) + "\n").encode()}


_REGIME_COLOURS = {"edge_only": "tab:gray", "split": "tab:blue", "cloud_only": "tab:red"}


def plot(rows, config, path):
    """Two panels over a log bitrate axis: latency of every placement, and the best split point.

    Top: edge-only (black), cloud-only (red), one thin line per split point and
    the best split at each bitrate (dashed blue); the background is shaded by
    the fastest kind of placement. Bottom: the best split point per bitrate
    (filled where a split is the fastest overall). Dotted lines mark
    Neurosurgeon's 3G / LTE / Wi-Fi uplinks.
    """
    figure = Figure(figsize=(7.0, 8.0), layout="constrained")
    top, bottom = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]}, squeeze=True
    )
    curves = {}
    for row in rows:
        curves.setdefault((row["strategy"], row["split_point"]), []).append(row)
    curves = {k: sorted(v, key=lambda r: r["bitrate_mbps"]) for k, v in curves.items()}
    split_points = [p for s, p in curves if s == "split"]
    colours = colormaps["viridis"](np.linspace(0.0, 0.9, max(len(split_points), 1)))

    for (strategy, point), curve in curves.items():
        x = [r["bitrate_mbps"] for r in curve]
        y = [r["latency_s"] for r in curve]
        if strategy == "edge_only":
            top.plot(x, y, color="black", linewidth=2, label="edge only")
        elif strategy == "cloud_only":
            top.plot(x, y, color="tab:red", linewidth=2, label="cloud only")
        else:
            colour = colours[split_points.index(point)]
            top.plot(x, y, color=colour, linewidth=0.9, alpha=0.8, label=f"split after {point}")
    best = sorted(
        (r for r in rows if r["strategy"] == "split" and r["best_split"]),
        key=lambda r: r["bitrate_mbps"],
    )
    if best:
        top.plot(
            [r["bitrate_mbps"] for r in best], [r["latency_s"] for r in best],
            color="tab:blue", linestyle="--", linewidth=2.2, label="best split",
        )  # fmt: skip
        index = {p: i for i, p in enumerate(split_points)}
        for filled in (True, False):
            shown = [r for r in best if bool(r["fastest"]) == filled]
            bottom.scatter(
                [r["bitrate_mbps"] for r in shown],
                [index[r["split_point"]] for r in shown],
                s=22,
                color="tab:blue" if filled else "none",
                edgecolors="tab:blue",
                label="split is fastest" if filled else "edge or cloud is faster",
            )
        bottom.set_yticks(range(len(split_points)), split_points)
        bottom.set_ylim(-0.5, len(split_points) - 0.5)

    if rows:
        for regime in regimes(rows):
            for axes in (top, bottom):
                axes.axvspan(
                    regime["low_mbps"], regime["high_mbps"],
                    color=_REGIME_COLOURS[regime["strategy"]], alpha=0.08, linewidth=0,
                    label=f"fastest: {display_name(regime['strategy'])}" if axes is top else None,
                )  # fmt: skip
    for name, rate in NEUROSURGEON_UPLINKS_MBPS.items():
        for axes in (top, bottom):
            axes.axvline(rate, color="dimgray", linestyle=":", linewidth=1)
        top.annotate(
            f"{name}\n{rate:g}", (rate, 1.0), xycoords=("data", "axes fraction"),
            xytext=(2, -2), textcoords="offset points", fontsize=7, va="top",
        )  # fmt: skip

    top.set_xscale("log")
    top.set_yscale("log")
    top.set_ylabel("end-to-end latency [s]")
    top.grid(True, which="both", alpha=0.3)
    top.set_title(
        f"{config.model} (width {config.width:g}) on {config.dataset} "
        f"{'×'.join(map(str, INPUT_SHAPES[config.dataset]))}; device "
        f"{config.device_flops_per_s:.3g} FLOP/s, server {config.server_flops_per_s:.3g} FLOP/s;\n"
        f"features {config.feature_bits} bit × bottleneck {config.bottleneck:g}, "
        f"input {config.input_bits:g} bit/value, RTT {config.rtt_s:g} s",
        fontsize=8,
    )
    bottom.set_xscale("log")
    bottom.set_xlabel("uplink bitrate [Mbit/s]")
    bottom.set_ylabel("best split point")
    bottom.grid(True, which="both", alpha=0.3)
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="latency_bitrate",
        summary=(
            "latency vs uplink bitrate: edge-only, cloud-only and split at every split point "
            "(Fig. 3)"
        ),
        config=LatencyBitrateConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=analysis_file,
    )
)
