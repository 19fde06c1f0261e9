"""The baseline experiment: both recipes on both sides, read back from the model cache."""

import numpy as np
import pytest

from airinfer.experiments import baseline, members, runner
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec
from airinfer.models.train import TrainConfig

# the converged recipe's ingredients (augmentation, early stopping) at a test's cost
CHEAP_CONVERGED = TrainConfig(epochs=3, shift=1, patience=1)


@pytest.fixture
def cheap_recipes(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "models"))
    monkeypatch.setattr(members, "converged_recipe", lambda *args, **kwargs: CHEAP_CONVERGED)
    members._trained.cache_clear()
    members.member_outputs.cache_clear()
    baseline._probabilities.cache_clear()
    yield
    members._trained.cache_clear()
    members.member_outputs.cache_clear()
    baseline._probabilities.cache_clear()


def test_rows_compare_the_full_model_and_the_ensembles_per_recipe(cheap_recipes, tmp_path):
    config = baseline.BaselineConfig(
        dataset="digits", epochs=2, member_counts=(1, 2), trained_members=2
    )
    rows = runner.run(baseline.EXPERIMENT, config, tmp_path / "run", progress=False).rows
    assert [(r["recipe"], r["model"], r["members"]) for r in rows] == [
        (recipe, model, k)
        for recipe in ("short", "converged")
        for model, k in (("full", 1), ("ensemble", 1), ("ensemble", 2))
    ]
    for r in rows:
        assert 0.3 < r["accuracy"] <= 1.0  # chance is 0.1
        assert 0 < r["accuracy_ci"] < 0.1 and r["train_seconds"] > 0
    by = {(r["recipe"], r["model"], r["members"]): r for r in rows}
    # epochs as each recipe ran them: all of the short ones, at most the converged cap
    assert by["short", "full", 1]["epochs_run"] == 2
    assert 1 <= by["converged", "full", 1]["epochs_run"] <= CHEAP_CONVERGED.epochs
    assert by["short", "ensemble", 2]["params"] == 2 * by["short", "ensemble", 1]["params"]
    # K = 1 is member 0 alone: its accuracy is that of its own logits
    outputs = members.member_outputs(config.spec("short", "ensemble"))
    member0 = np.mean(outputs.test_logits[0].argmax(-1) == outputs.test_labels)
    assert by["short", "ensemble", 1]["accuracy"] == pytest.approx(member0)
    assert (tmp_path / "run" / "baseline.png").stat().st_size > 0


def test_the_recipe_decides_the_training_settings():
    short = EnsembleSpec(dataset="fashion_mnist", epochs=4, seed=3)
    assert short.train_config(28) == TrainConfig(epochs=4, seed=3)
    converged = EnsembleSpec(dataset="fashion_mnist", epochs=4, seed=3, recipe="converged")
    assert converged.train_config(28).patience > 0 and converged.train_config(28).seed == 3
    with pytest.raises(ValueError, match="recipe"):
        EnsembleSpec(recipe="long")


@pytest.mark.parametrize(
    "changes, field",
    [({"recipes": ("long",)}, "recipes"), ({"member_counts": (0,)}, "member_counts"),
     ({"width": 0.0}, "width"), ({"member_counts": (4, 32)}, "trained_members")],
)  # fmt: skip
def test_bad_configs_are_named(changes, field):
    with pytest.raises(ConfigError, match=field):
        baseline.BaselineConfig(**changes)
