"""The over-the-air-ensemble paper's Table I: 20 devices on disjoint shards, ε = ∞ and ε = 1.

Yilmaz, Hasırcıoğlu and Gündüz, "Over-the-air ensemble inference with model
privacy": each of K = 20 devices trains its own classifier on a disjoint 1/K
shard of the training set (``diversity=shards``), then answers a query over an
AWGN channel at ``snr_db``; the receiver decides by belief sum (BA: the sum of
the softmax outputs) or majority vote (MV: the sum of one-hot votes), sent
over the air (OAC: one analog sum) or in orthogonal slots (Orth: each device's
values digitally, LDPC + QAM). Rows: every ``scheme`` at every ``epsilon``
(``inf``: no privacy noise; finite: (ε, δ)-DP with the analytic Gaussian
mechanism, accounted as in :mod:`airinfer.experiments.ota_privacy`, whose
curves these rows are).

``best_single`` is the device with the best validation macro-F1 answering
alone, read without channel errors: its own decisions at ε = ∞; under DP its
one-hot vote carries the whole noise σ of a lone release.

Besides ``results.csv`` the run writes ``oac_table1.md``: the measured
macro-F1 and accuracy beside the published macro-F1.
"""

import dataclasses
import functools
import math
from typing import ClassVar, Literal

import jax
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import aggregation, ota_privacy
from airinfer.experiments.checks import check_orthogonal_link
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, member_outputs
from airinfer.experiments.plotting import COLOURS, save_figure
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.ota.encoding import decide
from airinfer.ota.privacy import (
    SOFTMAX_SENSITIVITY,
    add_gaussian_noise,
    analytic_gaussian_epsilon,
    analytic_gaussian_sigma,
    project_to_simplex,
)

__all__ = [
    "SCHEMES",
    "PUBLISHED_MACRO_F1",
    "OacTable1Config",
    "best_device",
    "markdown",
    "EXPERIMENT",
]

#: The table's rows per ε, in order.
SCHEMES = ("best_single", "ba_oac", "mv_oac", "ba_orth", "mv_orth")
#: The :mod:`~airinfer.experiments.ota_privacy` scheme behind each ensemble row.
PRIVACY_SCHEMES = {
    "ba_oac": "ota_belief",
    "mv_oac": "ota_vote",
    "ba_orth": "orthogonal_belief",
    "mv_orth": "orthogonal_vote",
}
TITLES = {
    "best_single": "best single device",
    "ba_oac": "belief sum, over the air (BA-OAC)",
    "mv_oac": "majority vote, over the air (MV-OAC)",
    "ba_orth": "belief sum, orthogonal (BA-Orth)",
    "mv_orth": "majority vote, orthogonal (MV-Orth)",
}
#: PUBLISHED, for comparison only (never used in a computation): macro-F1 in % on
#: Fashion-MNIST of Yilmaz, Hasırcıoğlu and Gündüz, Table I (journal version),
#: keyed by (ε, scheme); the entries the paper's text quotes.
PUBLISHED_MACRO_F1 = {
    (math.inf, "best_single"): 84.24,
    (math.inf, "ba_oac"): 91.99,
    (math.inf, "ba_orth"): 91.87,
    (1.0, "mv_oac"): 83.73,
    (1.0, "mv_orth"): 19.44,
}
PUBLISHED_DATASET = "fashion_mnist"


@dataclasses.dataclass(frozen=True)
class OacTable1Config:
    """Configuration of ``oac_table1``.

    Attributes:
        seed: root of every noise draw.
        ensemble: the devices' models, one per device (default: 20 CNNs of
            width 1/2, each on its own disjoint 1/20 shard of Fashion-MNIST).
        epsilon: the privacy levels ε (``inf``: no privacy noise).
        delta: the δ of (ε, δ)-DP.
        snr_db: Es/N0 per complex symbol of one device at full power (AWGN).
        draws: noise draws per test image.
        bits, modulation, code_rate: the orthogonal scheme's quantiser and link;
            rate 1/3 QPSK loses about 4 % of its 80-bit blocks at 0 dB (rate 1/2
            about 87 %).
        backend: ``sionna`` or ``jax`` channels.
        power_excess_probability: over the air, the allowed probability that a
            device's noisy block exceeds its power budget (see
            :mod:`airinfer.experiments.ota_privacy`; the noise is never clipped).
    """

    seed: int = 0
    ensemble: EnsembleSpec = EnsembleSpec(
        dataset="fashion_mnist", model="cnn", width=0.5, members=20, diversity="shards", epochs=20
    )
    #: ε = inf: no privacy noise
    INFINITE_FIELDS: ClassVar[tuple[str, ...]] = ("epsilon",)
    epsilon: tuple[float, ...] = (math.inf, 1.0)
    delta: float = 1e-5
    snr_db: float = 0.0
    draws: int = 5
    bits: int = 8
    modulation: Literal["qpsk", "16qam", "64qam"] = "qpsk"
    code_rate: float = 1 / 3
    backend: Literal["sionna", "jax"] = "sionna"
    power_excess_probability: float = 1e-3
    #: accepted by every experiment (airinfer.experiments.sharding); not sharded yet: one device
    devices: int | None = None

    def __post_init__(self):
        if not 0 < self.power_excess_probability < 1:
            raise ConfigError(
                f"power_excess_probability: {self.power_excess_probability} is not in (0, 1)"
            )
        if not self.epsilon:
            raise ConfigError("epsilon: empty; give at least one privacy level (inf allowed)")
        if any(not e > 0 for e in self.epsilon):
            raise ConfigError(f"epsilon: {self.epsilon} must all be > 0 (inf allowed)")
        if len(set(self.epsilon)) != len(self.epsilon):
            raise ConfigError(f"epsilon: {self.epsilon} lists a level twice")
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta: {self.delta} is not in (0, 1)")
        if not math.isfinite(self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} is not finite")
        if self.draws < 1:
            raise ConfigError(f"draws: {self.draws} is not >= 1")
        if not 1 <= self.bits <= 16:
            raise ConfigError(f"bits: {self.bits} is not in [1, 16]")
        if not 0 < self.code_rate < 1:
            raise ConfigError(f"code_rate: {self.code_rate} is not in (0, 1)")
        check_orthogonal_link(self.bits, self.modulation, self.code_rate)


QUICK = {"ensemble.dataset": "digits", "ensemble.epochs": 60, "draws": 10}


def points(config):
    return [{"epsilon": e, "scheme": s} for e in config.epsilon for s in SCHEMES]


def privacy_config(config) -> ota_privacy.OtaPrivacyConfig:
    """The :mod:`~airinfer.experiments.ota_privacy` sweep whose curves give the ensemble rows."""
    return ota_privacy.OtaPrivacyConfig(
        seed=config.seed, ensemble=config.ensemble, epsilon=config.epsilon, delta=config.delta,
        snr_db=config.snr_db, schemes=tuple(PRIVACY_SCHEMES.values()), draws=config.draws,
        bits=config.bits, modulation=config.modulation, code_rate=config.code_rate,
        backend=config.backend, power_excess_probability=config.power_excess_probability,
    )  # fmt: skip


def best_device(val_logits, val_labels) -> int:
    """The member with the best validation macro-F1 (the lowest index on a tie)."""
    num_classes = val_logits.shape[-1]
    scores = [
        aggregation.macro_f1(np.argmax(logits, -1), val_labels, num_classes)
        for logits in val_logits
    ]
    return int(np.argmax(scores))


@functools.cache
def _best_single(config):
    """{ε: row columns} of the best device answering alone."""
    outputs = member_outputs(config.ensemble)
    best = best_device(outputs.val_logits, outputs.val_labels)
    labels = np.asarray(outputs.test_labels)
    num_classes = outputs.test_logits.shape[-1]
    own = np.argmax(outputs.test_logits[best], -1)
    votes = project_to_simplex(np.eye(num_classes, dtype=np.float32)[own])  # a no-op
    key = aggregation.curve_key(config.seed, "best_single")
    columns = {}
    for index, epsilon in enumerate(config.epsilon):
        if math.isinf(epsilon):
            decisions, sigma, achieved = own[None], 0.0, math.inf
        else:
            sigma = analytic_gaussian_sigma(epsilon, config.delta, SOFTMAX_SENSITIVITY)
            achieved = analytic_gaussian_epsilon(sigma, config.delta, SOFTMAX_SENSITIVITY)
            shape = (config.draws, *votes.shape)
            noisy = add_gaussian_noise(
                jax.random.fold_in(key, index), np.broadcast_to(votes, shape), sigma**2
            )
            decisions = np.asarray(decide(noisy))  # NaN never decides
        columns[epsilon] = {
            "accuracy": float(np.mean(decisions == labels)),
            "macro_f1": aggregation.macro_f1(
                decisions, np.broadcast_to(labels, decisions.shape), num_classes
            ),
            "epsilon_achieved": float(achieved),
            "dp_noise_std": float(sigma),
            "channel_uses": None,
            "best_device": best,
        }
    return columns


def run_point(key, config, point):
    """Macro-F1, accuracy (95 % Wilson interval over test images), DP noise, achieved ε."""
    scheme, epsilon = point["scheme"], point["epsilon"]
    if scheme == "best_single":
        columns = dict(_best_single(config)[epsilon])
        num_images = len(member_outputs(config.ensemble).test_labels)
        low, high = wilson_interval(round(columns["accuracy"] * num_images), num_images)
        columns["accuracy_ci"] = (high - low) / 2
    else:
        columns = ota_privacy.run_point(
            key, privacy_config(config), {"scheme": PRIVACY_SCHEMES[scheme], "epsilon": epsilon}
        )
    order = ("macro_f1", "accuracy", "accuracy_ci", "epsilon_achieved", "dp_noise_std")
    return {name: columns[name] for name in order} | {
        name: value for name, value in columns.items() if name not in order
    }


def _epsilon_text(epsilon):
    return "∞" if math.isinf(epsilon) else f"{epsilon:.3g}"


def _published(epsilon, scheme):
    return PUBLISHED_MACRO_F1.get((epsilon, scheme))


def markdown(rows, config) -> str:
    """The rows as a Markdown table, the published macro-F1 beside the measured one."""
    spec = config.ensemble
    caption = (
        f"{spec.members} devices ({spec.model} width {spec.width:g}, {spec.epochs} epochs, "
        f"{spec.diversity}) on {spec.dataset}; AWGN at {config.snr_db:g} dB Es/N0; "
        f"δ = {config.delta:g}; {config.draws} noise draws per test image; in %."
    )
    source = (
        "Published: Yilmaz, Hasırcıoğlu, Gündüz, Over-the-air ensemble inference with model "
        "privacy, Table I, Fashion-MNIST (— where the paper's text gives no figure)."
    )
    if spec.dataset != PUBLISHED_DATASET:
        source += f" This run is on {spec.dataset}: the published column is not its reference."
    lines = [
        caption,
        source,
        "",
        "| ε | scheme | macro-F1 | macro-F1, published | accuracy (95 % CI) | "
        "DP noise σ per device | ε achieved | channel uses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        published = _published(row["epsilon"], row["scheme"])
        uses = row.get("channel_uses")
        lines.append(
            "| "
            + " | ".join(
                [
                    _epsilon_text(row["epsilon"]),
                    TITLES[row["scheme"]],
                    f"{100 * row['macro_f1']:.2f}",
                    "—" if published is None else f"{published:.2f}",
                    f"{100 * row['accuracy']:.2f} ± {100 * row['accuracy_ci']:.2f}",
                    f"{row['dp_noise_std']:.3g}",
                    _epsilon_text(row["epsilon_achieved"]),
                    "—" if uses is None else f"{uses:g}",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def table_file(config, rows):
    """``oac_table1.md``: :func:`markdown` of the results."""
    return {"oac_table1.md": markdown(rows, config).encode()}


def plot(rows, config, path):
    """Macro-F1 per scheme, one panel per ε: measured bars, published ones beside them."""
    levels = [e for e in config.epsilon if any(r["epsilon"] == e for r in rows)]
    figure = Figure(figsize=(4.2 * max(1, len(levels)), 3.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, max(1, len(levels)), sharey=True))
    width = 0.4
    for ax, epsilon in zip(axes, levels, strict=False):
        by_scheme = {r["scheme"]: r for r in rows if r["epsilon"] == epsilon}
        x = np.arange(len(SCHEMES))
        measured = [100 * by_scheme[s]["macro_f1"] if s in by_scheme else 0.0 for s in SCHEMES]
        published = [_published(epsilon, s) for s in SCHEMES]
        ax.bar(x - width / 2, measured, width, color=COLOURS[0], label="measured")
        ax.bar(
            x[[p is not None for p in published]] + width / 2,
            [p for p in published if p is not None],
            width, color="tab:gray", hatch="//", label="published (Fashion-MNIST)",
        )  # fmt: skip
        for xi, value in zip(x, measured, strict=True):
            ax.annotate(f"{value:.1f}", (xi - width / 2, value), ha="center", va="bottom",
                        fontsize=7)  # fmt: skip
        ax.set_xticks(x, [s.replace("_", "-") for s in SCHEMES], rotation=30, fontsize=8)
        ax.set_title(f"ε = {_epsilon_text(epsilon)}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("macro-F1 [%]")
    spec = config.ensemble
    figure.suptitle(
        f"K = {spec.members} devices ({spec.diversity}) on {spec.dataset}, AWGN at "
        f"{config.snr_db:g} dB Es/N0", fontsize=9,
    )  # fmt: skip
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="oac_table1",
        summary=(
            "the over-the-air-ensemble paper's Table I: 20 devices on disjoint shards, "
            "macro-F1 at ε = ∞ and ε = 1"
        ),
        config=OacTable1Config,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=table_file,
    )
)
