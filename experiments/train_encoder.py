"""Train an analog split link (deep JSCC of features): accuracy vs SNR.

::

    airinfer run train_encoder --set channel=rayleigh --set snr_range=-10,20

takes the classifier ``model`` of width ``width`` trained on ``dataset`` (from
the model cache, trained there first if missing), cuts it at ``split_point``
and trains an encoder/decoder pair (:mod:`airinfer.strategies.jscc`) end to
end through ``channel``, with SNRs drawn uniformly from ``snr_range`` dB.
Trained codecs are cached too (keyed by the data, the classifier's weights and
the settings), so asking again loads them (``cache=false`` trains afresh).

``results.csv`` has one row per test SNR (``snr_db``, Es/N0 per complex symbol
in dB; noise CN(0, no), ``no = 10**(-snr_db/10)``): ``accuracy`` on the test
split over the training channel (95 % Wilson half-width ``accuracy_ci``),
``classifier_accuracy`` (the classifier alone, no link) and the cost of one
inference (``channel_uses``, ``payload_bits``, ``device_flops``,
``server_flops``). The whole curve is measured with one key,
``key(seed + 1)``, point ``i`` folding in ``i`` (as
:func:`~airinfer.strategies.jscc.accuracy_vs_snr` does). Beside it:
``checkpoint/`` (the codec and its classifier, orbax, with the settings) and
``training.json`` (training and compile time, final loss, whether the codec
came from the cache). ``train_encoder.png`` draws accuracy vs SNR.
"""

import dataclasses
import functools
import json
import math
import time
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import progress
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, trained_ensemble
from airinfer.experiments.plotting import channel_name, display_name, draw_curve, save_figure, style
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.models.datasets import DATASETS, Dataset, load_dataset
from airinfer.models.inference import ensemble_logits
from airinfer.models.zoo import MODEL_KINDS, ModelConfig, SplitClassifier, abstract_model
from airinfer.strategies.jscc import (
    JSCCCodec,
    JSCCConfig,
    JSCCSplitStrategy,
    JSCCTrainReport,
    accuracy_vs_snr,
    cached_train_jscc,
    save_jscc,
    train_jscc,
)

__all__ = [
    "TrainEncoderConfig",
    "EXPERIMENT",
    "DEFAULT_SPLIT_POINTS",
    "Trained",
    "trained",
    "accuracy_curve",
]

# A cut in the middle of each model family: features smaller than the input.
DEFAULT_SPLIT_POINTS = {"cnn": "conv2", "mlp": "hidden1", "mobilenet_v2": "stage4"}
COST_COLUMNS = ("channel_uses", "payload_bits", "device_flops", "server_flops")


@dataclasses.dataclass(frozen=True)
class TrainEncoderConfig:
    """Configuration of ``train_encoder``.

    Attributes:
        seed: seeds the data split, the classifier and the codec.
        dataset: ``digits`` (embedded), ``fashion_mnist`` or ``cifar10``.
        model, width: the classifier (``cnn``, ``mobilenet_v2`` or ``mlp``; width in (0, 4]).
        classifier_epochs: its training epochs, if the model cache lacks it.
        split_point: where the classifier is cut (``none``: conv2 for cnn,
            hidden1 for mlp, stage4 for mobilenet_v2).
        symbols: complex channel uses per sample k.
        channel: ``awgn``, ``rayleigh`` or ``tdl-a`` (OFDM).
        snr_range: training SNRs, ``LOW,HIGH`` in dB (Es/N0 per complex symbol), uniform.
        side_info: give the SNR to the encoder and decoder.
        fine_tune_back: train the classifier's back end with the codec (the
            front stays frozen).
        hidden: hidden units of the encoder and decoder.
        epochs, batch_size, learning_rate: the codec's training (peak Adam rate).
        backend: ``sionna`` (Sionna's channels through the bridge) or ``jax`` (the twins).
        ofdm_subcarriers: subcarriers of the tdl-a resource grid.
        snr_db: the test SNRs in dB, one point each.
        cache: load the codec from the model cache, or store it there.
    """

    seed: int = 0
    dataset: Literal[DATASETS] = "digits"
    model: Literal[MODEL_KINDS] = "cnn"
    width: float = 0.5
    classifier_epochs: int = 10
    split_point: str | None = None
    symbols: int = 16
    channel: Literal["awgn", "rayleigh", "tdl-a"] = "awgn"
    snr_range: tuple[float, float] = (-10.0, 20.0)
    side_info: bool = True
    fine_tune_back: bool = False
    hidden: int = 128
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    backend: Literal["sionna", "jax"] = "sionna"
    ofdm_subcarriers: int = 64
    snr_db: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
    cache: bool = True
    #: accepted by every experiment (airinfer.experiments.sharding); training: one device
    devices: int | None = None

    def __post_init__(self):
        if not 0 < self.width <= 4:
            raise ConfigError(f"width: {self.width} is not in (0, 4]")
        for name in (
            "classifier_epochs", "symbols", "hidden", "epochs", "batch_size", "ofdm_subcarriers",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} is not an integer >= 1")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: {self.learning_rate} is not > 0")
        low, high = self.snr_range
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ConfigError(f"snr_range: {low:g},{high:g} is not LOW,HIGH with LOW <= HIGH")
        if any(not math.isfinite(s) for s in self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} has a non-finite value")
        if len(set(self.snr_db)) != len(self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} has a repeated value")

    @property
    def cut(self) -> str:
        """The split point used: ``split_point``, or the model's default."""
        return self.split_point or DEFAULT_SPLIT_POINTS[self.model]


QUICK = {"classifier_epochs": 5, "epochs": 5, "snr_db": (-10.0, 0.0, 10.0, 20.0)}


@functools.cache
def _dataset(name: str, seed: int) -> Dataset:
    return load_dataset(name, seed=seed)


def points(config):
    """One point per test SNR; the split point is checked against the model first."""
    dataset = _dataset(config.dataset, config.seed)
    model = ModelConfig(config.model, dataset.image_shape, dataset.num_classes, config.width)
    allowed = abstract_model(model).split_points
    if config.cut not in allowed:
        raise ConfigError(
            f"split_point: unknown {config.cut!r} for {config.model}; allowed: {', '.join(allowed)}"
        )
    return [{"snr_db": snr} for snr in config.snr_db]


class Trained(NamedTuple):
    """What training gave.

    Attributes:
        strategy: the analog split strategy (classifier, codec, settings).
        codec: the trained encoder and decoder.
        classifier: the classifier they serve (its back end fine-tuned or not).
        classifier_config: its architecture.
        jscc: the codec's settings.
        dataset: the data (split with ``seed``).
        report: the codec's training report; None when it came from the cache.
        cached_at: the model-cache folder of the codec, when ``cache`` is on.
        train_seconds: the codec's training (or loading) time.
        classifier_accuracy: the classifier alone on the test split.
    """

    strategy: JSCCSplitStrategy
    codec: JSCCCodec
    classifier: SplitClassifier
    classifier_config: ModelConfig
    jscc: JSCCConfig
    dataset: Dataset
    report: JSCCTrainReport | None
    cached_at: Path | None
    train_seconds: float
    classifier_accuracy: float


@functools.cache
def trained(config: TrainEncoderConfig) -> Trained:
    """Train (or load) the classifier and the codec of ``config``, once per process."""
    ensemble, dataset = trained_ensemble(
        EnsembleSpec(config.dataset, config.model, config.width, members=1, diversity="init",
                     epochs=config.classifier_epochs, seed=config.seed)
    )  # fmt: skip
    classifier = ensemble.member(0)
    classifier.eval()
    jscc = JSCCConfig(
        split_point=config.cut, symbols=config.symbols, channel=config.channel,
        snr_range_db=config.snr_range, side_info=config.side_info, hidden=config.hidden,
        fine_tune_back=config.fine_tune_back, epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
        backend=config.backend, ofdm_subcarriers=config.ofdm_subcarriers,
    )  # fmt: skip
    num_train = len(dataset.train_labels)
    steps = config.epochs * (num_train // min(config.batch_size, num_train))
    description = f"codec over {config.channel} ({config.backend})"
    start = time.perf_counter()
    with progress.training(description, steps) as on_step:
        if config.cache:
            codec, classifier_after, report, cached_at = cached_train_jscc(
                classifier, dataset, config.seed, jscc, on_step=on_step
            )
        else:
            codec, classifier_after, report = train_jscc(classifier, dataset, jscc, on_step=on_step)
            cached_at = None
    train_seconds = report.train_seconds if report is not None else time.perf_counter() - start
    clean = ensemble_logits(ensemble, dataset.test_images)[0]
    return Trained(
        JSCCSplitStrategy(classifier_after, codec, jscc), codec, classifier_after,
        ensemble.groups[0].config, jscc, dataset, report, cached_at, train_seconds,
        float((clean.argmax(-1) == dataset.test_labels).mean()),
    )  # fmt: skip


@functools.cache
def accuracy_curve(config) -> dict[float, float]:
    """{snr_db: accuracy} over the training channel, every point in one pass."""
    done = trained(config)
    accuracies = accuracy_vs_snr(
        done.strategy, jax.random.key(config.seed + 1), done.dataset.test_images,
        done.dataset.test_labels, config.snr_db, channel=config.channel, backend=config.backend,
    )  # fmt: skip
    return dict(zip(config.snr_db, (float(a) for a in accuracies), strict=True))


def run_point(key, config, point):
    """Accuracy at one test SNR, with the cost of one inference.

    The curve's key, not ``key``, drives the channel: the curve is measured in one pass.
    """
    done = trained(config)
    accuracy = accuracy_curve(config)[point["snr_db"]]
    n = len(done.dataset.test_labels)
    low, high = wilson_interval(round(accuracy * n), n)
    cost = done.strategy.cost(done.dataset.image_shape)
    return {
        "accuracy": accuracy,
        "accuracy_ci": (high - low) / 2,
        "classifier_accuracy": done.classifier_accuracy,
        **{name: getattr(cost, name) for name in COST_COLUMNS},
    }


def plot(rows, config, path):
    """Accuracy vs Es/N0 with its 95 % band; the classifier alone as a dashed line."""
    figure = Figure(figsize=(5.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    curve = sorted((r["snr_db"], r["accuracy"], r["accuracy_ci"]) for r in rows)
    x, y, ci = (np.asarray(c) for c in zip(*curve, strict=True))
    label = f"{display_name('split_analog')}, {channel_name(config.channel)}"
    draw_curve(axes, x, y, ci, label=label, **style("split_analog"))
    axes.axhline(rows[0]["classifier_accuracy"], color="black", linestyle="--",
                 label="classifier alone, no link")  # fmt: skip
    axes.set_xlabel("Es/N0 per complex symbol [dB]")
    axes.set_ylabel("accuracy")
    axes.set_title(
        f"{config.dataset}: {config.model} w{config.width:g} cut at {config.cut}, "
        f"{config.symbols} symbols ({config.backend})",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    save_figure(figure, path)


def outputs(config, rows):
    """``checkpoint/`` and ``training.json``, written on demand."""

    def checkpoint(path):
        done = trained(config)
        settings = {
            "dataset": done.dataset.name,
            "classifier": {
                "model": done.classifier_config.to_dict(),
                "epochs": config.classifier_epochs,
            },
            "jscc": done.jscc.to_dict(),
        }
        save_jscc(path, done.codec, done.classifier, done.jscc, settings)

    def training(path):
        done = trained(config)
        report = done.report
        facts = {
            "train_seconds": done.train_seconds,
            "compile_seconds": report.compile_seconds if report is not None else None,
            "final_loss": float(np.mean(report.losses[-10:])) if report is not None else None,
            "from_cache": report is None,
            "cache": str(done.cached_at) if done.cached_at else None,
            "jax_backend": jax.default_backend(),
        }
        path.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")

    return {"checkpoint": checkpoint, "training.json": training}


EXPERIMENT = register(
    Experiment(
        name="train_encoder",
        summary="train an analog split link (deep JSCC of features) through the channel: "
        "accuracy vs SNR",
        config=TrainEncoderConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=outputs,
    )
)
