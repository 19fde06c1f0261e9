"""Training recipes: augmentation, early stopping on the validation split, resumable runs."""

import dataclasses
import pathlib
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from airinfer.models import cache
from airinfer.models.ensemble import EnsembleConfig, init_group
from airinfer.models.fit import fit
from airinfer.models.recipe import Augmentation, TrainConfig, converged_recipe
from airinfer.models.train import train_ensemble, train_group
from airinfer.models.zoo import ModelConfig

N = 2000  # images per statistical check


def _dot_images(n, size=8):
    """``n`` images of zeros with a single 1 at the centre, ``[n, size, size, 1]``."""
    images = np.zeros((n, size, size, 1), np.float32)
    images[:, size // 2, size // 2] = 1.0
    return jnp.asarray(images)


def test_shift_moves_each_image_by_at_most_shift_and_every_offset_is_equally_likely():
    # here, not at the top: the killed training's child imports this module (2.4 CPU-s)
    from scipy import stats

    out = np.asarray(Augmentation(shift=2, flip=False)(jax.random.key(0), _dot_images(N)))
    assert out.shape == (N, 8, 8, 1)
    assert np.all(out.sum(axis=(1, 2, 3)) == 1.0)  # the dot is moved, never lost or doubled
    flat = np.argmax(out[..., 0].reshape(N, -1), axis=1)
    rows, cols = flat // 8 - 4, flat % 8 - 4
    assert np.abs(rows).max() <= 2 and np.abs(cols).max() <= 2
    counts = np.bincount((rows + 2) * 5 + (cols + 2), minlength=25)
    # 25 offsets, uniform: a chi-square test at the 1e-3 level (fails if offsets were shared)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_flip_mirrors_about_half_the_images():
    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, 3, 1] = 1.0  # left half
    out = np.asarray(Augmentation(shift=0, flip=True)(jax.random.key(1), jnp.repeat(image, N, 0)))
    mirrored = out[:, 3, 6, 0] == 1.0
    assert np.all(mirrored | (out[:, 3, 1, 0] == 1.0))
    # binomial(N, 1/2): within 4 standard deviations
    assert abs(mirrored.mean() - 0.5) < 4 * np.sqrt(0.25 / N)


def test_no_augmentation_unless_asked():
    assert TrainConfig().augmentation is None
    assert TrainConfig(shift=1).augmentation == Augmentation(1, False)


def test_converged_recipe_flips_clothes_not_digits_and_scales_the_shift():
    digits, clothes = converged_recipe("digits", 8), converged_recipe("fashion_mnist", 28)
    assert (digits.shift, digits.flip) == (1, False)
    assert (clothes.shift, clothes.flip) == (2, True)
    assert clothes.patience > 0 and clothes.epochs > TrainConfig().epochs


def test_cache_keys_of_models_trained_before_the_recipe_fields_are_unchanged():
    # the Fashion-MNIST server CNN's key as computed before shift, flip and patience existed
    server = EnsembleConfig(ModelConfig("cnn", (28, 28, 1), 10, 1.0), 1, "init")
    assert cache.cache_key("fashion_mnist", 0, server, TrainConfig(epochs=2)) == (
        "e1ede2105b1cad5932b2b00b2fc1e0913f214dcaa825a99e6ffaaeeccc393656"
    )
    assert cache.cache_key("fashion_mnist", 0, server, TrainConfig(epochs=2, shift=2)) != (
        "e1ede2105b1cad5932b2b00b2fc1e0913f214dcaa825a99e6ffaaeeccc393656"
    )


@pytest.mark.parametrize("field, value", [("shift", -1), ("patience", 1.5), ("flip", "yes")])
def test_bad_recipe_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def _mlp_group(digits, seed=0, members=1):
    config = ModelConfig("mlp", digits.image_shape, 10, 0.25)
    return init_group(config, jnp.stack([jax.random.key(seed + k) for k in range(members)]))


def test_patience_stops_a_diverging_run_early_and_needs_a_validation_split(digits):
    rows = np.arange(256, dtype=np.int32)[None]
    diverging = TrainConfig(epochs=20, batch_size=64, learning_rate=5.0, patience=2)
    validation = (digits.val_images, digits.val_labels)
    _, losses, _ = train_group(
        _mlp_group(digits), digits.train_images, digits.train_labels, rows, diverging,
        jax.random.key(0), formulation="loop", validation=validation,
    )  # fmt: skip
    assert losses.shape[1] < 20 * 4  # 4 steps per epoch: stopped before the last epoch
    with pytest.raises(ValueError, match="patience"):
        train_group(_mlp_group(digits), digits.train_images, digits.train_labels, rows,
                    diverging, jax.random.key(0), formulation="loop")  # fmt: skip


class _Cut(Exception):
    pass


def test_a_cut_ensemble_training_resumes_to_the_same_members(digits, tmp_path):
    digits = dataclasses.replace(
        digits, train_images=digits.train_images[:256], train_labels=digits.train_labels[:256]
    )
    config = EnsembleConfig(ModelConfig("mlp", digits.image_shape, 10, 0.25), 2, "bagging")
    recipe = TrainConfig(epochs=2, batch_size=64, shift=1)
    whole, _ = train_ensemble(digits, config, recipe, formulation="loop")
    steps = []

    def cut_in_member_1s_second_epoch(n):
        steps.append(n)
        if len(steps) == 4 * (len(digits.train_labels) // 64):  # member 0's 2 epochs, then 2
            raise _Cut

    with pytest.raises(_Cut):
        train_ensemble(digits, config, recipe, formulation="loop", checkpoint=tmp_path,
                       on_step=cut_in_member_1s_second_epoch)  # fmt: skip
    resumed_steps = []
    resumed, _ = train_ensemble(digits, config, recipe, formulation="loop", checkpoint=tmp_path,
                                on_step=resumed_steps.append)  # fmt: skip
    # member 0 was whole and member 1 had one epoch saved: the bar starts at those
    # steps, and one epoch of single steps is left
    per_epoch = len(digits.train_labels) // 64
    assert resumed_steps == [2 * per_epoch, per_epoch] + [1] * per_epoch
    states = (jax.tree.leaves(e.groups[0].state) for e in (whole, resumed))
    for a, b in zip(*states, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_resumed_run_that_early_stopping_ended_stays_ended(tmp_path):
    x = jnp.linspace(-1, 1, 32)[:, None]
    rows = np.arange(32).reshape(2, 16)

    def loss(params, state, key, xb, yb):
        return jnp.mean((xb * params - yb) ** 2), state

    validations = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    common = (loss, jnp.zeros(()), optax.sgd(0.1), (x, x), lambda epoch: rows)
    first = fit(*common, epochs=10, validate=lambda p, s: next(validations), patience=2,
                checkpoint=tmp_path / "run")  # fmt: skip
    assert first.epochs == 3 and first.best_epoch == 1
    again = fit(*common, epochs=10, validate=lambda p, s: next(validations), patience=2,
                checkpoint=tmp_path / "run")  # fmt: skip
    assert again.epochs == 3 and again.best_epoch == 1
    np.testing.assert_array_equal(again.params, first.params)


KILLED_TRAINING = """
import os, signal, sys
from airinfer.models.cache import cached_train_ensemble
from airinfer.models.datasets import load_dataset
from tests.models.test_recipe import KILL_CONFIG, KILL_TRAINING

taken = 0

def on_step(n):
    global taken
    taken += n
    if taken == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)

cached_train_ensemble(load_dataset("digits", seed=0), 0, KILL_CONFIG, KILL_TRAINING,
                      formulation="loop", on_step=on_step)
"""
KILL_CONFIG = EnsembleConfig(ModelConfig("mlp", (8, 8, 1), 10, 0.25), 2, "bagging")
KILL_TRAINING = TrainConfig(epochs=3, batch_size=128, shift=1, patience=2)


def test_a_training_killed_at_a_random_step_resumes_to_the_same_parameters(
    digits, tmp_path, monkeypatch
):
    steps_per_member = KILL_TRAINING.epochs * (len(digits.train_labels) // 128)
    # a step drawn at random (seeded: the same one every run) in either member's training
    kill_at = int(np.random.default_rng(15).integers(1, 2 * steps_per_member))
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_TRAINING, str(kill_at)],
        cwd=pathlib.Path(__file__).parents[2], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list(tmp_path.glob("*.partial")), "the killed run left no checkpoint"
    taken = []
    resumed, _, _ = cache.cached_train_ensemble(
        digits, 0, KILL_CONFIG, KILL_TRAINING, formulation="loop", on_step=taken.append
    )
    # the killed step's epoch was not saved; every epoch before it was
    per_epoch = steps_per_member // KILL_TRAINING.epochs
    saved = (kill_at - 1) // per_epoch * per_epoch
    # the bar starts at the saved steps (one tick per resumed member), then ticks per step
    assert sum(taken) == 2 * steps_per_member
    assert taken[-(2 * steps_per_member - saved) :] == [1] * (2 * steps_per_member - saved)
    assert not list(tmp_path.glob("*.partial"))
    whole, _ = train_ensemble(digits, KILL_CONFIG, KILL_TRAINING, formulation="loop")
    states = (jax.tree.leaves(e.groups[0].state) for e in (whole, resumed))
    for a, b in zip(*states, strict=True):
        np.testing.assert_array_equal(a, b)
