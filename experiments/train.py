"""Train a diverse ensemble: each member's and the combined test accuracy.

::

    airinfer run train --set dataset=fashion_mnist --set width=0.25 --set members=8

trains K members (:func:`airinfer.models.train.train_ensemble`, or the model
cache with ``cache=true``) and measures them on the test split. ``results.csv``
has one row per

* member (``rule = member``, ``k`` its index): ``accuracy`` (95 % Wilson
  half-width ``accuracy_ci``), ``val_accuracy`` on the validation split,
  ``params`` and ``flops`` (one inference of one image, XLA's count);
* combination of the first ``k`` members (``rule = mean_softmax``: argmax of
  the averaged softmax outputs; ``rule = majority_vote``: the most frequent
  argmax, ties to the lowest class): ``accuracy`` and ``accuracy_ci``.

Beside it, for post-hoc studies: ``checkpoint/`` (the members, orbax, with the
settings), ``test_logits.npz`` (``logits`` ``[K, N, C]`` float32 and
``labels`` ``[N]``) and ``training.json`` (training time, formulations,
whether the members came from the cache). ``train.png`` draws both.
"""

import dataclasses
import functools
import json
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from airinfer.experiments import progress
from airinfer.experiments.config import ConfigError
from airinfer.experiments.plotting import curve_style, display_name, draw_curve, save_figure, style
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.models.cache import cached_train_ensemble
from airinfer.models.checkpoint import save_ensemble
from airinfer.models.datasets import DATASETS, Dataset, load_dataset
from airinfer.models.ensemble import DIVERSITY_KINDS, Ensemble, EnsembleConfig, ensemble_metrics
from airinfer.models.inference import FORMULATIONS, ensemble_logits
from airinfer.models.recipe import TrainConfig
from airinfer.models.train import TrainReport, planned_member_steps, train_ensemble
from airinfer.models.zoo import MODEL_KINDS, ModelConfig, count_params, flops

__all__ = ["TrainEnsembleConfig", "EXPERIMENT", "Trained", "trained"]

RULES = ("member", "mean_softmax", "majority_vote")


@dataclasses.dataclass(frozen=True)
class TrainEnsembleConfig:
    """Configuration of ``train``.

    Attributes:
        seed: seeds the data split, the initialisation and the batches.
        dataset: ``digits`` (embedded), ``fashion_mnist`` or ``cifar10``.
        model: the members' kind: ``cnn``, ``mobilenet_v2`` or ``mlp``.
        width: their width multiplier, in (0, 4].
        members: the ensemble size K.
        diversity: how the members differ (:data:`airinfer.models.ensemble.DIVERSITY_KINDS`).
        epochs: epochs per member.
        batch_size: samples per member per step.
        learning_rate: peak AdamW learning rate.
        widths: for ``diversity=widths``: the widths (empty: width/2, width, 2·width).
        architectures: for ``diversity=architectures``: ``KIND:WIDTH`` entries
            (empty: the model and the other of cnn/mlp at ``width``).
        teacher_width: for ``diversity=distillation``: the teacher's width.
        bits: for ``diversity=quantization``: bits per weight, in [2, 16].
        formulation: ``auto`` (per backend and model), ``loop`` or ``vmap``.
        cache: load the members from the model cache, or store them there.
    """

    seed: int = 0
    dataset: Literal[DATASETS] = "digits"
    model: Literal[MODEL_KINDS] = "cnn"
    width: float = 1.0
    members: int = 4
    diversity: Literal[DIVERSITY_KINDS] = "bagging"
    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 3e-3
    widths: tuple[float, ...] = ()
    architectures: tuple[str, ...] = ()
    teacher_width: float = 1.0
    bits: int = 4
    formulation: Literal[FORMULATIONS] = "auto"
    cache: bool = False
    #: accepted by every experiment (airinfer.experiments.sharding); training: one device
    devices: int | None = None

    def __post_init__(self):
        for name in ("members", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} is not an integer >= 1")
        for name, value in [("width", self.width), ("teacher_width", self.teacher_width)] + [
            ("widths", w) for w in self.widths
        ]:
            if not 0 < value <= 4:
                raise ConfigError(f"{name}: {value} is not in (0, 4]")
        if not 2 <= self.bits <= 16:
            raise ConfigError(f"bits: {self.bits} is not in [2, 16]")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: {self.learning_rate} is not > 0")
        self.architecture_pairs()  # fails early, naming the bad entry

    def architecture_pairs(self) -> tuple[tuple[str, float], ...]:
        """``architectures`` as ``(kind, width)`` pairs; ConfigError names a bad entry."""
        pairs = []
        for entry in self.architectures:
            kind, _, width = entry.partition(":")
            if kind not in MODEL_KINDS:
                raise ConfigError(
                    f"architectures: unknown kind {kind!r} in {entry!r}; "
                    f"allowed: {', '.join(MODEL_KINDS)}"
                )
            try:
                pairs.append((kind, float(width)))
            except ValueError:
                raise ConfigError(f"architectures: {entry!r} is not KIND:WIDTH") from None
            if not 0 < pairs[-1][1] <= 4:
                raise ConfigError(f"architectures: {entry!r} has a width outside (0, 4]")
        return tuple(pairs)


QUICK = {"model": "mlp", "width": 0.25, "members": 3, "epochs": 2}


class Trained(NamedTuple):
    """What training gave.

    Attributes:
        ensemble: the members.
        dataset: the data they were trained on (split with ``seed``).
        ensemble_config, train_config: the settings behind them.
        report: the training report; None when the members came from the cache.
        cached_at: the model-cache folder, when ``cache`` is on.
        test_logits, val_logits: ``[K, N, C]`` float32 on the test and validation splits.
    """

    ensemble: Ensemble
    dataset: Dataset
    ensemble_config: EnsembleConfig
    train_config: TrainConfig
    report: TrainReport | None
    cached_at: Path | None
    test_logits: np.ndarray
    val_logits: np.ndarray


@functools.cache
def trained(config: TrainEnsembleConfig) -> Trained:
    """Train the members of ``config`` (or load them from the model cache), once per process."""
    dataset = load_dataset(config.dataset, seed=config.seed)
    model = ModelConfig(config.model, dataset.image_shape, dataset.num_classes, config.width)
    ensemble_config = EnsembleConfig(
        model,
        config.members,
        config.diversity,
        widths=config.widths,
        architectures=config.architecture_pairs(),
        teacher_width=config.teacher_width,
        quantization_bits=config.bits,
    )
    train_config = TrainConfig(
        config.epochs, config.batch_size, config.learning_rate, seed=config.seed
    )
    total = planned_member_steps(len(dataset.train_labels), ensemble_config, train_config)
    with progress.training(
        f"members: {config.members} x {config.model} w{config.width} on {config.dataset}", total
    ) as on_step:
        if config.cache:
            ensemble, report, cached_at = cached_train_ensemble(
                dataset, config.seed, ensemble_config, train_config,
                formulation=config.formulation, on_step=on_step,
            )  # fmt: skip
        else:
            ensemble, report = train_ensemble(
                dataset, ensemble_config, train_config,
                formulation=config.formulation, on_step=on_step,
            )  # fmt: skip
            cached_at = None
    return Trained(
        ensemble, dataset, ensemble_config, train_config, report, cached_at,
        ensemble_logits(ensemble, dataset.test_images).astype(np.float32),
        ensemble_logits(ensemble, dataset.val_images).astype(np.float32),
    )  # fmt: skip


def points(config):
    """One point per member, then per (rule, first k members) for the two combinations."""
    members = [{"rule": "member", "k": k} for k in range(config.members)]
    combined = [{"rule": rule, "k": k} for rule in RULES[1:] for k in range(1, config.members + 1)]
    return members + combined


def _accuracy(logits, labels) -> float:
    return float(np.mean(np.asarray(logits).argmax(-1) == labels))


@functools.cache
def _member_cost(config, k):
    """(parameters, FLOPs) of member ``k``."""
    done = trained(config)
    member = done.ensemble.member(k)
    return count_params(member), flops(member, done.dataset.image_shape)


def run_point(key, config, point):
    """Test accuracy of one member or of a combination of the first ``k``."""
    done = trained(config)
    labels = done.dataset.test_labels
    rule, k = point["rule"], point["k"]
    row = {}
    if rule == "member":
        accuracy = _accuracy(done.test_logits[k], labels)
        params, member_flops = _member_cost(config, k)
        row = {
            "val_accuracy": _accuracy(done.val_logits[k], done.dataset.val_labels),
            "params": params,
            "flops": member_flops,
        }
    else:
        metrics = ensemble_metrics(done.test_logits[:k], labels)
        accuracy = metrics[
            "ensemble_accuracy" if rule == "mean_softmax" else "majority_vote_accuracy"
        ]
    low, high = wilson_interval(round(accuracy * len(labels)), len(labels))
    return {"accuracy": accuracy, "accuracy_ci": (high - low) / 2, **row}


def plot(rows, config, path):
    """Left: each member's test accuracy (95 % interval) and validation accuracy;
    right: the accuracy of the first k members combined, against k."""
    figure = Figure(figsize=(10.0, 4.4), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    members = sorted((r for r in rows if r["rule"] == "member"), key=lambda r: r["k"])
    k = [r["k"] for r in members]
    draw_curve(left, k, [r["accuracy"] for r in members], [r["accuracy_ci"] for r in members],
               label="one member, test split", linestyle="none", **curve_style(0))  # fmt: skip
    left.plot(k, [r["val_accuracy"] for r in members], "x", color="black",
              label="one member, validation split")  # fmt: skip
    left.set_xlabel("member")
    left.set_ylabel("accuracy")
    left.set_title(f"{config.members} members: {config.model} width {config.width:g} "
                   f"({config.diversity})", fontsize=9)  # fmt: skip
    for index, rule in enumerate(("mean_softmax", "majority_vote")):
        curve = sorted((r["k"], r["accuracy"], r["accuracy_ci"]) for r in rows if r["rule"] == rule)
        if not curve:
            continue
        x, y, ci = (np.asarray(c) for c in zip(*curve, strict=True))
        draw_curve(right, x, y, ci, label=f"first k combined, {display_name(rule)}",
                   dodge=(index - 0.5) * 0.1, **style(rule, index))  # fmt: skip
    if members:
        mean = float(np.mean([r["accuracy"] for r in members]))
        right.axhline(mean, color=curve_style(0)["color"], linestyle=":",
                      label="mean of one member")  # fmt: skip
    right.set_xlabel("first k members combined")
    right.set_title(f"{config.dataset}, test split", fontsize=9)
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    save_figure(figure, path)


def _settings(done: Trained, config) -> dict:
    """What the checkpoint's metadata records: how the members were made."""
    return {
        "dataset": done.dataset.name,
        "ensemble": done.ensemble_config.to_dict(),
        "train": dataclasses.asdict(done.train_config),
        "formulation": config.formulation,
    }


def outputs(config, rows):
    """``checkpoint/``, ``test_logits.npz`` and ``training.json``, written on demand."""

    def checkpoint(path):
        done = trained(config)
        save_ensemble(path, done.ensemble, _settings(done, config))

    def logits(path):
        done = trained(config)
        np.savez(path, logits=done.test_logits, labels=done.dataset.test_labels)

    def training(path):
        done = trained(config)
        report = done.report
        facts = {
            "train_seconds": report.train_seconds if report is not None else None,
            "formulations": report.formulations if report is not None else [],
            "from_cache": report is None,
            "cache": str(done.cached_at) if done.cached_at else None,
            "jax_backend": jax.default_backend(),
        }
        path.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")

    return {"checkpoint": checkpoint, "test_logits.npz": logits, "training.json": training}


EXPERIMENT = register(
    Experiment(
        name="train",
        summary="train a diverse ensemble: each member's and the combined test accuracy, "
        "checkpoint and test logits",
        config=TrainEnsembleConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=outputs,
    )
)
