"""Edge-ensemble accuracy vs connectivity: the survey's Fig. 5.

An inferring device holds a compact CNN and asks 15 neighbours, each with its
own compact CNN of the same width; each neighbour answers with probability
``p``, drawn per inference. The device averages the softmax outputs that reach
it, either exactly (``ideal``) or summed over the air (``ota``: truncated
channel inversion at ``snr_db``; the device's own output never crosses the
channel). With ``p = 0`` the device is alone. A single CNN of ``full_width``
is the reference (``aggregation = single``), trained to convergence by default
(``reference_recipe``); ``recipe`` says how the members are trained (the
``baseline`` experiment compares both recipes on both sides).

The survey's claim: ensembles of width-1/4 and 1/2 networks approach or beat
the full-width model as connectivity grows.
"""

import dataclasses
import functools
import math
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import aggregation
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, member_outputs
from airinfer.experiments.plotting import channel_name, curve_style, display_name, save_figure
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.experiments.unused import refuse_invalid, refuse_unused
from airinfer.ota.aircomp import AirCompConfig
from airinfer.ota.encoding import NO_DECISION, decide

__all__ = ["OtaConnectivityConfig", "EXPERIMENT"]

Aggregation = Literal["ideal", "ota"]


@dataclasses.dataclass(frozen=True)
class OtaConnectivityConfig:
    """Configuration of ``ota_connectivity``.

    Attributes:
        seed: root of every curve's key (and of the members' training).
        dataset: ``fashion_mnist``, ``cifar10`` (when its files are present) or ``digits``.
        widths: the compact members' width multipliers.
        full_width: the width of the single reference model.
        members: devices K (the inferring one included).
        trained_members: members trained per width (>= ``members``; the first
            ``members`` serve): 20 shares the cached ensemble of ``ota_snr``
            and ``ota_privacy``.
        diversity: how the members differ (see ``airinfer train``).
        epochs: training epochs of every model trained with the ``short`` recipe.
        recipe: how the compact members are trained: ``short`` (``epochs``
            epochs) or ``converged`` (:func:`airinfer.models.train.converged_recipe`).
        reference_recipe: how the full-width reference is trained (the same choices).
        connectivity: the probabilities p that a neighbour joins.
        aggregations: ``ideal`` (exact average) and/or ``ota`` (over the air).
        channel: ``awgn`` or ``rayleigh`` block fading, for ``ota``.
        snr_db: Es/N0 per complex symbol of one device at full power, for ``ota``.
        threshold: truncated inversion's threshold on the channel power gain.
        draws: connectivity (and channel) draws per test sample.
        backend: ``sionna`` or ``jax`` channels.
    """

    seed: int = 0
    dataset: Literal["digits", "fashion_mnist", "cifar10"] = "fashion_mnist"
    widths: tuple[float, ...] = (0.25, 0.33, 0.5)
    full_width: float = 1.0
    members: int = 16
    trained_members: int = 20
    diversity: Literal["init", "bagging", "shards"] = "bagging"
    epochs: int = 2
    recipe: Literal["short", "converged"] = "short"
    reference_recipe: Literal["short", "converged"] = "converged"
    connectivity: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    aggregations: tuple[Aggregation, ...] = ("ideal", "ota")
    channel: Literal["awgn", "rayleigh"] = "rayleigh"
    snr_db: float = 10.0
    threshold: float = 0.1
    draws: int = 5
    backend: Literal["sionna", "jax"] = "sionna"
    #: devices sharing the draws of the ideal curve and, on JAX channels, the ota one (None: all)
    devices: int | None = None

    def __post_init__(self):
        if any(not 0.0 <= p <= 1.0 for p in self.connectivity):
            raise ConfigError(f"connectivity: {self.connectivity} must lie in [0, 1]")
        if not 1 <= self.members <= self.trained_members:
            raise ConfigError(
                f"members: {self.members} must lie in [1, trained_members={self.trained_members}]"
            )
        if self.draws < 1:
            raise ConfigError(f"draws: {self.draws} is not >= 1")
        if not math.isfinite(self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} is not finite")
        if any(not 0 < w <= 4 for w in (*self.widths, self.full_width)):
            raise ConfigError(f"widths: every width must lie in (0, 4], got {self.widths}")
        if "ota" not in self.aggregations:
            refuse_unused(
                self, ("channel", "snr_db", "threshold", "backend"),
                "they only apply to the over-the-air aggregation ('ota' in aggregations)",
            )  # fmt: skip
        elif self.channel == "awgn":
            refuse_unused(self, ("threshold",), "channel='awgn' has no fading to truncate")
        refuse_invalid("over the air", self.air_config)  # what the ota curve builds, built now

    def air_config(self):
        """The :class:`~airinfer.ota.aircomp.AirCompConfig` of the ``ota`` curves."""
        return AirCompConfig(
            channel=self.channel, threshold=self.threshold, local_device=True,
            backend=self.backend,
        )  # fmt: skip

    def spec(self, width, members, diversity=None, recipe=None):
        return EnsembleSpec(
            dataset=self.dataset, model="cnn", width=width, members=members,
            diversity=diversity or self.diversity, epochs=self.epochs, seed=self.seed,
            recipe=recipe or self.recipe,
        )  # fmt: skip


QUICK = {"dataset": "digits", "epochs": 10, "draws": 10}


def points(config):
    """The compact ensembles at every p and aggregation, then the single full-width model."""
    rows = [
        {"width": w, "p": p, "aggregation": a}
        for w in config.widths
        for a in config.aggregations
        for p in config.connectivity
    ]
    return rows + [
        {"width": config.full_width, "p": p, "aggregation": "single"} for p in config.connectivity
    ]


@functools.cache
def _curve(config, width, aggregation_kind):
    """({p: (accuracy, undecided)}, test images) of one curve, all p in one jitted call."""
    p = np.asarray(config.connectivity, np.float32)
    if aggregation_kind == "single":
        outputs = member_outputs(config.spec(width, 1, "init", config.reference_recipe))
        decisions = np.asarray(decide(outputs.test_logits[0]))  # a NaN never decides
        accuracy = float(np.mean(decisions == outputs.test_labels))
        undecided = int(np.sum(decisions == NO_DECISION))
        return dict.fromkeys(config.connectivity, (accuracy, undecided)), len(decisions)
    outputs = member_outputs(config.spec(width, config.trained_members))
    logits = outputs.test_logits[: config.members]
    probs = np.moveaxis(aggregation.softmax(logits), 0, 1)  # [N, K, C]
    key = aggregation.curve_key(config.seed, width, aggregation_kind)
    if aggregation_kind == "ideal":
        curve = aggregation.ideal_accuracy_curve(
            key, probs, outputs.test_labels, p, draws=config.draws, devices=config.devices,
            num_devices=config.members, return_undecided=True,
        )  # fmt: skip
    else:
        curve = aggregation.ota_accuracy_curve(
            key, probs, outputs.test_labels, np.full_like(p, config.snr_db),
            scheme="ota_belief", config=config.air_config(), draws=config.draws,
            connectivity=p, devices=config.devices, num_devices=config.members,
            return_undecided=True,
        )  # fmt: skip
    return {
        q: (float(a), int(u))
        for q, a, u in zip(config.connectivity, curve.accuracy, curve.undecided, strict=True)
    }, len(outputs.test_labels)


def run_point(key, config, point):
    """Accuracy with its 95 % Wilson interval over the test images, and ``undecided``:
    inferences (test image x draw) whose estimate was not finite (counted as wrong)."""
    curve, num_images = _curve(config, point["width"], point["aggregation"])
    accuracy, undecided = curve[point["p"]]
    low, high = wilson_interval(round(accuracy * num_images), num_images)
    return {"accuracy": accuracy, "accuracy_ci": (high - low) / 2, "undecided": undecided}


def plot(rows, config, path):
    """Accuracy vs p: one colour and marker per width, solid ideal, dashed over the air,
    grey references for the single CNNs."""
    figure = Figure(figsize=(6.0, 4.6), layout="constrained")
    ax = figure.subplots()
    widths = sorted({width for width, _ in _curves(rows)})
    for (width, kind), curve in sorted(_curves(rows).items()):
        p, accuracy = zip(*sorted(curve), strict=True)
        look = curve_style(widths.index(width))
        if kind == "single":
            ax.plot(p, accuracy, color="gray", linestyle="-.", marker=look["marker"],
                    markerfacecolor="none", label=f"single CNN, width {width:g}")  # fmt: skip
        else:
            where = "ideal links" if kind == "ideal" else display_name(kind)
            ax.plot(p, accuracy, linestyle="-" if kind == "ideal" else "--",
                    label=f"K = {config.members} devices × width {width:g}, {where}",
                    **look)  # fmt: skip
    ax.set_xlabel("connectivity probability p")
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"{config.dataset}; over the air: {channel_name(config.channel)}, {config.snr_db:g} dB",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    save_figure(figure, path)


def _curves(rows):
    curves = {}
    for r in rows:
        curves.setdefault((r["width"], r["aggregation"]), []).append((r["p"], r["accuracy"]))
    return curves


EXPERIMENT = register(
    Experiment(
        name="ota_connectivity",
        summary=(
            "accuracy vs connectivity p of 16 compact CNNs (ideal and over the air) vs one full CNN"
        ),
        config=OtaConnectivityConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
