"""The full model against the compact ensemble, each trained two ways.

The survey claims that 16 networks of width 1/2 reach the full-width network.
How far the full model lags behind with a short recipe says little about that
claim, so both sides are trained with each recipe of
:data:`airinfer.experiments.members.RECIPES`, untuned: ``short`` (a few epochs
of AdamW with a cosine decay, the last weights) and ``converged``
(:func:`airinfer.models.train.converged_recipe`: random crops and flips, up to
20 epochs, early stopping on the validation loss, the best epoch's weights).

Rows: per recipe, the full-width CNN (``model = full``) and the average of the
softmax outputs of the first K compact members (``model = ensemble``, K in
``member_counts``; K = 1 is one member alone), with test accuracy and its 95 %
Wilson interval, parameters, the epochs each model was trained (early stopping
may end a run before its last epoch) and the training's wall time as the model
cache recorded it.
"""

import dataclasses
import functools
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import aggregation
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import RECIPES, EnsembleSpec, member_outputs, training_record
from airinfer.experiments.plotting import curve_style, draw_curve, save_figure
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.ota.encoding import decide

__all__ = ["BaselineConfig", "EXPERIMENT"]

Recipe = Literal["short", "converged"]


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """Configuration of ``baseline``.

    Attributes:
        seed: seeds the data split and every training.
        dataset: ``fashion_mnist``, ``cifar10`` (when its files are present) or ``digits``.
        recipes: which recipes to train both sides with.
        full_width: the full model's width multiplier.
        width: the compact members' width multiplier.
        member_counts: the ensemble sizes K reported (the first K members).
        trained_members: members trained (>= every K): 20 shares the cached
            ensemble of ``ota_snr``, ``ota_privacy`` and ``strategies_snr``.
        diversity: how the members differ (``bagging``, ``init`` or ``shards``).
        epochs: epochs of the ``short`` recipe.
    """

    seed: int = 0
    dataset: Literal["digits", "fashion_mnist", "cifar10"] = "fashion_mnist"
    recipes: tuple[Recipe, ...] = RECIPES
    full_width: float = 1.0
    width: float = 0.5
    member_counts: tuple[int, ...] = (1, 2, 4, 8, 16)
    trained_members: int = 20
    diversity: Literal["init", "bagging", "shards"] = "bagging"
    epochs: int = 2
    #: accepted by every experiment (airinfer.experiments.sharding); this one draws nothing
    devices: int | None = None

    def __post_init__(self):
        if not self.recipes or any(r not in RECIPES for r in self.recipes):
            raise ConfigError(f"recipes: {self.recipes} must be some of {', '.join(RECIPES)}")
        counts = self.member_counts
        if not counts or any(type(k) is not int or k < 1 for k in counts):
            raise ConfigError(f"member_counts: {counts} must be ints >= 1")
        if not max(counts) <= self.trained_members:
            raise ConfigError(
                f"trained_members: {self.trained_members} is below the largest K {max(counts)}"
            )
        if any(not 0 < w <= 4 for w in (self.full_width, self.width)):
            raise ConfigError(
                f"full_width, width: {self.full_width}, {self.width} must lie in (0, 4]"
            )

    def spec(self, recipe: str, model: str) -> EnsembleSpec:
        """The members of one side: the full model alone, or the compact ensemble."""
        full = model == "full"
        return EnsembleSpec(
            dataset=self.dataset, model="cnn", width=self.full_width if full else self.width,
            members=1 if full else self.trained_members,
            diversity="init" if full else self.diversity, epochs=self.epochs, seed=self.seed,
            recipe=recipe,
        )  # fmt: skip


QUICK = {"dataset": "digits", "epochs": 10, "member_counts": (1, 2, 4, 8), "trained_members": 8}


def points(config):
    """Per recipe: the full model, then the ensembles of every size."""
    return [
        point
        for recipe in config.recipes
        for point in (
            {"recipe": recipe, "model": "full", "members": 1},
            *({"recipe": recipe, "model": "ensemble", "members": k} for k in config.member_counts),
        )
    ]


@functools.cache
def _probabilities(config, recipe: str, model: str):
    """``([K, N, C] softmax outputs on the test split, labels, parameters per member)``."""
    outputs = member_outputs(config.spec(recipe, model))
    return (
        aggregation.softmax(outputs.test_logits),
        outputs.test_labels,
        outputs.params_per_member[0],
    )


def run_point(key, config, point):
    """Test accuracy of the model or the first K members' average softmax."""
    probs, labels, params = _probabilities(config, point["recipe"], point["model"])
    k = point["members"]
    correct = int(np.sum(np.asarray(decide(probs[:k].mean(axis=0))) == labels))
    low, high = wilson_interval(correct, len(labels))
    record = training_record(config.spec(point["recipe"], point["model"]))
    epochs_run = record.get("epochs_run") or [np.nan] * k
    return {
        "accuracy": correct / len(labels),
        "accuracy_ci": (high - low) / 2,
        "params": params * k,
        "epochs_run": float(np.mean(epochs_run[:k])),
        "train_seconds": record["train_seconds"],
    }


def plot(rows, config, path):
    """Accuracy vs K per recipe with 95 % error bars, the full model of the same recipe
    as a level line."""
    figure = Figure(figsize=(6.0, 4.6), layout="constrained")
    ax = figure.subplots()
    for index, recipe in enumerate(config.recipes):
        look = curve_style(index)
        ensemble = sorted(
            (r["members"], r["accuracy"], r["accuracy_ci"])
            for r in rows
            if r["recipe"] == recipe and r["model"] == "ensemble"
        )
        if ensemble:
            k, accuracy, ci = (np.asarray(column) for column in zip(*ensemble, strict=True))
            draw_curve(ax, k, accuracy, ci,
                       label=f"K members of width {config.width:g}, {recipe} recipe",
                       **look)  # fmt: skip
        for r in rows:
            if r["recipe"] == recipe and r["model"] == "full":
                label = f"one model of width {config.full_width:g}, {recipe} recipe"
                ax.axhline(r["accuracy"], color=look["color"], linestyle="--", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("ensemble members K")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{config.dataset}: full model vs compact ensemble, per recipe", fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="baseline",
        summary="the full CNN vs K compact CNNs, both trained short and to convergence",
        config=BaselineConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
