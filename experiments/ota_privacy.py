"""Private edge ensembles: accuracy vs the privacy level ε, over the air vs orthogonal.

As in the over-the-air-ensemble paper (Yilmaz et al., Table I): K devices
release their softmax outputs (belief) or one-hot votes under (ε, δ)
differential privacy with the analytic Gaussian mechanism (sensitivity √2),
over an AWGN channel at ``snr_db``.

* Over the air the receiver only sees the sum: the channel noise on it counts
  towards the required noise, and the devices share the rest.
* Orthogonally each device's output is seen on its own (a digital link, LDPC +
  QAM, which adds no noise to what it delivers): every device carries all the
  required noise itself.

The mechanism is :mod:`airinfer.ota.privacy`'s: values projected onto the
simplex (sensitivity √2 enforced), then the noise, and nothing shrunk after
it; over the air the devices send through a fixed map that holds the noisy
values within the power budget with probability ``1 - power_excess_probability``
per device and block, and above it otherwise.

Rows report the accuracy, the macro-F1 (the paper's metric), each device's DP
noise, the ε of the noise the released sum actually carries (the target, or
below it where the channel's own noise is more than privacy needs) and, over
the air, ``power_excess``: the measured fraction of device transmissions above
the power budget.
"""

import dataclasses
import functools
import math
from typing import ClassVar, Literal

import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import aggregation
from airinfer.experiments.checks import check_orthogonal_link
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, member_outputs
from airinfer.experiments.plotting import display_name, draw_curve, save_figure, style
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.experiments.unused import refuse_unused
from airinfer.ota import privacy
from airinfer.ota.aircomp import AirCompConfig, noise_power
from airinfer.ota.cost import channel_uses
from airinfer.ota.encoding import Normalization
from airinfer.ota.ensemble import encode_payload
from airinfer.ota.orthogonal import OrthogonalConfig
from airinfer.ota.privacy import (
    SOFTMAX_SENSITIVITY,
    analytic_gaussian_epsilon,
    analytic_gaussian_sigma,
)

__all__ = ["OtaPrivacyConfig", "EXPERIMENT"]

Scheme = Literal["ota_belief", "ota_vote", "orthogonal_belief", "orthogonal_vote"]
# The noisy values' quantiser range, in DP standard deviations beyond [0, 1].
QUANTIZER_RANGE_STDS = 4.0


@dataclasses.dataclass(frozen=True)
class OtaPrivacyConfig:
    """Configuration of ``ota_privacy``.

    Attributes:
        seed: root of every curve's key.
        ensemble: the members, one per device.
        epsilon: the privacy levels ε (``inf``: no privacy noise).
        delta: the δ of (ε, δ)-DP.
        snr_db: Es/N0 per complex symbol of one device at full power (AWGN).
        schemes: over the air or orthogonal, belief (softmax) or vote (one-hot).
        draws: noise draws per test sample.
        bits, modulation, code_rate: the orthogonal scheme's quantiser and link.
        backend: ``sionna`` or ``jax`` channels.
        power_excess_probability: over the air, the allowed probability that a
            device's noisy block exceeds its power budget (the noise is never
            clipped; the scale that covers it otherwise is chosen from it).
    """

    seed: int = 0
    ensemble: EnsembleSpec = EnsembleSpec(dataset="fashion_mnist", width=0.5, members=20, epochs=2)
    #: ε = inf: no privacy noise
    INFINITE_FIELDS: ClassVar[tuple[str, ...]] = ("epsilon",)
    epsilon: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf)
    delta: float = 1e-5
    snr_db: float = 0.0
    schemes: tuple[Scheme, ...] = ("ota_belief", "ota_vote", "orthogonal_belief", "orthogonal_vote")
    draws: int = 5
    bits: int = 8
    modulation: Literal["qpsk", "16qam", "64qam"] = "qpsk"
    code_rate: float = 0.5
    backend: Literal["sionna", "jax"] = "sionna"
    power_excess_probability: float = 1e-3
    #: devices sharing the draws on JAX channels (None: all; airinfer.experiments.sharding)
    devices: int | None = None

    def __post_init__(self):
        if not 0 < self.power_excess_probability < 1:
            raise ConfigError(
                f"power_excess_probability: {self.power_excess_probability} is not in (0, 1)"
            )
        if any(not e > 0 for e in self.epsilon):
            raise ConfigError(f"epsilon: {self.epsilon} must all be > 0 (inf allowed)")
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta: {self.delta} is not in (0, 1)")
        if self.draws < 1:
            raise ConfigError(f"draws: {self.draws} is not >= 1")
        if not math.isfinite(self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} is not finite")
        check_orthogonal_link(self.bits, self.modulation, self.code_rate)
        if not any(s.startswith("orthogonal") for s in self.schemes):
            refuse_unused(
                self, ("bits", "modulation", "code_rate"),
                "no orthogonal scheme (orthogonal_belief, orthogonal_vote) in schemes",
            )  # fmt: skip
        if not any(s.startswith("ota") for s in self.schemes):
            refuse_unused(
                self, ("power_excess_probability",),
                "no over-the-air scheme (ota_belief, ota_vote) in schemes",
            )  # fmt: skip


QUICK = {"ensemble.dataset": "digits", "ensemble.epochs": 10, "draws": 10}


def points(config):
    return [{"scheme": s, "epsilon": e} for s in config.schemes for e in config.epsilon]


def _required_std(config):
    """The analytic Gaussian mechanism's σ on the released sum, per ε (0 for ε = inf)."""
    return np.asarray([
        0.0 if math.isinf(e) else analytic_gaussian_sigma(e, config.delta, SOFTMAX_SENSITIVITY)
        for e in config.epsilon
    ])  # fmt: skip


def _achieved_epsilon(std, delta):
    return math.inf if std <= 0 else analytic_gaussian_epsilon(std, delta, SOFTMAX_SENSITIVITY)


def over_the_air_plans(config, num_classes, num_devices):
    """The AWGN link, the clean values' normalisation and one
    :class:`~airinfer.ota.privacy.OverTheAirPrivacyPlan` per ε (all K devices transmit)."""
    air = AirCompConfig(channel="awgn", backend=config.backend)
    base = Normalization.simplex(num_classes)
    no = float(noise_power(config.snr_db, air))
    plans = [
        privacy.over_the_air_privacy_plan(
            required**2,
            no,
            math.sqrt(air.power),
            base,
            num_classes,
            num_devices,
            config.power_excess_probability,
        )  # fmt: skip
        for required in _required_std(config)
    ]
    return air, base, plans


@functools.cache
def _curve(config, scheme):
    """{ε: row columns} of one scheme, every ε in one jitted call."""
    outputs = member_outputs(config.ensemble)
    probs = np.moveaxis(aggregation.softmax(outputs.test_logits), 0, 1)  # [N, K, C]
    num_devices, num_classes = probs.shape[1:]
    vote = scheme.endswith("vote")
    values = np.asarray(encode_payload(probs, "vote")[0]) if vote else probs
    key = aggregation.curve_key(config.seed, scheme)

    if scheme.startswith("ota"):
        link, base, plans = over_the_air_plans(config, num_classes, num_devices)
        normalization = dataclasses.replace(base, clip=False)
        device_std = np.sqrt([plan.device_noise_variance for plan in plans])
        ranges = [(0.0, plan.normalization.scale / base.scale) for plan in plans]
        achieved = [
            _achieved_epsilon(math.sqrt(plan.total_noise_variance), config.delta) for plan in plans
        ]
        uses = channel_uses("ota_belief", num_classes, num_devices)
    else:
        link = OrthogonalConfig(
            channel="awgn", bits=config.bits, low=0.0, high=1.0, modulation=config.modulation,
            code_rate=config.code_rate, backend=config.backend,
        )  # fmt: skip
        normalization = None
        device_std = _required_std(config)
        margin = QUANTIZER_RANGE_STDS * device_std
        ranges = np.stack([-margin, 1.0 + margin], axis=-1)
        achieved = [_achieved_epsilon(s, config.delta) for s in device_std]
        uses = channel_uses(
            "orthogonal", num_classes, num_devices, bits=config.bits,
            code_rate=config.code_rate, bits_per_symbol=link.bits_per_symbol,
        )  # fmt: skip
    accuracy, macro_f1, excess, undecided = aggregation.private_accuracy_curve(
        key, values, outputs.test_labels, config.snr_db, device_std, ranges,
        config=link, normalization=normalization, draws=config.draws, devices=config.devices,
        num_devices=num_devices, return_undecided=True,
    )  # fmt: skip
    over_the_air = scheme.startswith("ota")
    return {
        e: {
            "accuracy": float(a),
            "macro_f1": float(f),
            "epsilon_achieved": float(ea),
            "dp_noise_std": float(s),
            "channel_uses": uses,
            "power_excess": float(x) if over_the_air else None,
            "undecided": int(u),
        }  # fmt: skip
        for e, a, f, ea, s, x, u in zip(
            config.epsilon,
            accuracy,
            macro_f1,
            achieved,
            device_std,
            excess,
            undecided,
            strict=True,
        )  # fmt: skip
    }


def run_point(key, config, point):
    """Accuracy (95 % Wilson interval over test images, not image x draw pairs: the draws
    of one image share it), macro-F1, DP noise, achieved ε, the power excess and
    ``undecided``: inferences (test image x draw) whose estimate was not finite
    and got no decision (counted as wrong)."""
    columns = dict(_curve(config, point["scheme"])[point["epsilon"]])
    num_images = len(member_outputs(config.ensemble).test_labels)
    low, high = wilson_interval(round(columns["accuracy"] * num_images), num_images)
    return {"accuracy": columns.pop("accuracy"), "accuracy_ci": (high - low) / 2, **columns}


def plot(rows, config, path):
    """Accuracy vs ε (log axis) with 95 % error bars; the no-privacy level as a mark
    at the right edge."""
    figure = Figure(figsize=(6.0, 4.6), layout="constrained")
    ax = figure.subplots()
    finite = [e for e in config.epsilon if math.isfinite(e)]
    no_privacy_x = max(finite) * 3 if finite else 1.0
    uses = set()
    for index, scheme in enumerate(config.schemes):
        curve = sorted(
            (r["epsilon"], r["accuracy"], r.get("accuracy_ci") or 0.0, r.get("channel_uses") or 0)
            for r in rows
            if r["scheme"] == scheme
        )
        if not curve:
            continue
        x = [no_privacy_x if math.isinf(e) else e for e, *_ in curve]
        uses.update(int(u) for *_, u in curve if u)
        # on a log axis a sideways nudge is a factor
        nudge = 1.0 + 0.04 * (index - (len(config.schemes) - 1) / 2)
        draw_curve(ax, [v * nudge for v in x], [a for _, a, _, _ in curve],
                   [c for _, _, c, _ in curve], label=display_name(scheme),
                   **style(scheme, index))  # fmt: skip
    ax.set_xscale("log")
    if any(math.isinf(e) for e in config.epsilon):
        ax.axvline(no_privacy_x, color="gray", linewidth=0.5)
        ax.annotate("no DP", (no_privacy_x, 0.02), fontsize=7, ha="center",
                    xycoords=("data", "axes fraction"))  # fmt: skip
    ax.set_xlabel(f"privacy level ε (δ = {config.delta:g})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    spec = config.ensemble
    budget = f"; {' / '.join(map(str, sorted(uses)))} channel uses" if uses else ""
    ax.set_title(
        f"K = {spec.members} devices, AWGN at {config.snr_db:g} dB, {spec.dataset}{budget}",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="ota_privacy",
        summary=(
            "accuracy vs differential-privacy level: over-the-air vs orthogonal, belief vs vote"
        ),
        config=OtaPrivacyConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
