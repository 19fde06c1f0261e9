"""Ensembles and training: vmap vs loop, diversity kinds, metrics, quantisation."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.models import fit as fit_module
from airinfer.models.ensemble import (
    EnsembleConfig,
    MemberGroup,
    ensemble_metrics,
    init_group,
    stack_models,
    stochastic_quantize,
)
from airinfer.models.inference import choose_formulation, ensemble_logits, group_logits
from airinfer.models.train import (
    TrainConfig,
    classifier_loss,
    planned_member_steps,
    train_ensemble,
    train_group,
)
from airinfer.models.zoo import ModelConfig, build_model
from tests.conftest import DIGITS_ENSEMBLE, DIGITS_TRAINING, normal

# Loop and vmap run the same float32 arithmetic in another order (batched GEMMs,
# grouped convolutions); after a few dozen Adam steps parameters agree to ~1e-5.
FORMULATION_RTOL = 1e-3
FORMULATION_ATOL = 1e-4


def test_formulation_rule():
    assert choose_formulation("cnn", 8, "cpu") == "loop"
    assert choose_formulation("mobilenet_v2", 8, "cpu") == "loop"
    assert choose_formulation("mlp", 8, "cpu") == "vmap"
    assert choose_formulation("cnn", 8, "gpu") == "vmap"
    assert choose_formulation("mobilenet_v2", 16, "tpu") == "vmap"
    assert choose_formulation("mlp", 1, "gpu") == "loop"


def test_init_group_members_equal_build_model_with_their_keys():
    config = ModelConfig("mlp", (8, 8, 1), 10, 0.25)
    keys = jax.random.split(jax.random.key(3), 2)
    group = init_group(config, keys)
    x = jnp.ones((2, 8, 8, 1))
    for k in range(2):
        expected = build_model(config, keys[k])(x)
        if jax.default_backend() == "cpu":
            np.testing.assert_array_equal(group.member(k)(x), expected)
        else:  # jitted and eager initialisers may round differently on accelerators
            np.testing.assert_allclose(group.member(k)(x), expected, rtol=1e-3, atol=1e-4)
    assert not np.allclose(group.member(0)(x), group.member(1)(x))


def _train_both_ways(digits, group, index_sets, train_config):
    common = (group, digits.train_images, digits.train_labels, index_sets, train_config)
    looped = train_group(*common, jax.random.key(5), formulation="loop")
    vmapped = train_group(*common, jax.random.key(5), formulation="vmap")
    return (*looped, *vmapped)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_vmapped_training_equals_per_member_training(digits, kind):
    config = ModelConfig(kind, digits.image_shape, 10, 0.25)
    group = init_group(config, jax.random.split(jax.random.key(0), 3))
    index_sets = np.stack([np.arange(k, 320 + k) for k in range(3)]).astype(np.int32)
    train_config = TrainConfig(epochs=2, batch_size=32, seed=0)
    # full float32 products: GPUs otherwise use TF32, and cuDNN picks other
    # algorithms for the grouped convolutions of the vmapped step
    with jax.default_matmul_precision("highest"):
        looped, loop_losses, used_loop, vmapped, vmap_losses, used_vmap = _train_both_ways(
            digits, group, index_sets, train_config
        )
    assert (used_loop, used_vmap) == ("loop", "vmap")
    assert loop_losses.shape == (3, 20)
    # training did something: the loss fell
    assert np.all(loop_losses[:, -3:].mean(1) < 0.7 * loop_losses[:, :3].mean(1))
    np.testing.assert_allclose(
        vmap_losses, loop_losses, rtol=FORMULATION_RTOL, atol=FORMULATION_ATOL
    )
    for a, b in zip(jax.tree.leaves(looped.state), jax.tree.leaves(vmapped.state), strict=True):
        np.testing.assert_allclose(a, b, rtol=FORMULATION_RTOL, atol=FORMULATION_ATOL)
    # inference agrees across formulations too
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            group_logits(looped, digits.test_images, formulation="loop"),
            group_logits(looped, digits.test_images, formulation="vmap"),
            rtol=1e-4,
            atol=1e-4,
        )


def test_retraining_the_same_architecture_does_not_recompile(digits):
    config = ModelConfig("mlp", digits.image_shape, 10, 0.25)
    index_sets = np.arange(64, dtype=np.int32)[None]
    train_config = TrainConfig(epochs=1, batch_size=32)
    compiled = []
    # other seeds (initial weights and batch order) share one compiled step
    for seed in (0, 1):
        group = init_group(config, jax.random.key(seed)[None])
        train_group(
            group,
            digits.train_images,
            digits.train_labels,
            index_sets,
            dataclasses.replace(train_config, seed=seed),
            jax.random.key(seed),
            formulation="loop",
        )
        step = fit_module.jitted_step(
            classifier_loss(group.graphdef, None, None),
            fit_module.adamw_cosine(train_config.learning_rate, train_config.weight_decay, 2),
            members=False,
            scan=False,
        )
        compiled.append((fit_module.jitted_step.cache_info().currsize, step._cache_size()))
    assert compiled[1] == compiled[0] == (compiled[0][0], 1)


def test_cnn_ensemble_on_digits_reaches_93_percent_per_member(digits, digits_ensemble):
    # the session's shared ensemble: four width-0.5 CNNs, bagging, 10 epochs of batch 64
    ensemble, report = digits_ensemble
    assert ensemble.member_configs == (ModelConfig("cnn", digits.image_shape, 10, 0.5),) * 4
    assert (DIGITS_ENSEMBLE.diversity, DIGITS_TRAINING.epochs, DIGITS_TRAINING.batch_size) == (
        "bagging", 10, 64,
    )  # fmt: skip
    metrics = ensemble_metrics(ensemble_logits(ensemble, digits.test_images), digits.test_labels)
    assert min(metrics["member_accuracy"]) >= 0.93
    assert metrics["ensemble_accuracy"] >= metrics["mean_member_accuracy"]
    assert report.formulations == [choose_formulation("cnn", 4)]
    assert len(report.losses) == 4 and len(report.val_accuracy) == 4
    assert min(report.val_accuracy) >= 0.9


@pytest.mark.parametrize(
    "diversity, extra",
    [
        ("init", {}),
        ("shards", {}),
        ("widths", {"widths": (0.25, 0.5)}),
        ("architectures", {"architectures": (("mlp", 0.25), ("cnn", 0.25))}),
        ("distillation", {"teacher_width": 1.0}),
        ("quantization", {"quantization_bits": 6}),
    ],
)
def test_every_diversity_kind_trains_k_distinct_members(digits, diversity, extra):
    config = EnsembleConfig(
        ModelConfig("mlp", digits.image_shape, 10, 0.25), members=4, diversity=diversity, **extra
    )
    steps = []
    train_config = TrainConfig(epochs=3, batch_size=32)
    ensemble, report = train_ensemble(digits, config, train_config, on_step=steps.append)
    assert ensemble.size == 4 and ensemble.member_configs == config.member_configs()
    assert sum(steps) == planned_member_steps(len(digits.train_labels), config, train_config)
    logits = ensemble_logits(ensemble, digits.test_images)
    assert logits.shape == (4, len(digits.test_labels), 10) and np.all(np.isfinite(logits))
    for k in range(1, 4):
        assert not np.allclose(logits[0], logits[k])
    metrics = ensemble_metrics(logits, digits.test_labels)
    # far above chance (0.1) after three epochs, even on a quarter of the data
    assert min(metrics["member_accuracy"]) > 0.7
    if diversity == "widths":
        assert [g.config.width for g in ensemble.groups] == [0.25, 0.5]
    if diversity == "architectures":
        assert [g.config.kind for g in ensemble.groups] == ["mlp", "cnn"]
    if diversity == "distillation":
        assert report.teacher_config.width == 1.0


def test_shards_give_each_member_its_own_disjoint_rows(digits, monkeypatch):
    train_module = importlib.import_module("airinfer.models.train")
    trained_on = []
    train_group_as_is = train_module.train_group

    def recording(group, images, labels, index_sets, *args, **kwargs):
        trained_on.append(np.asarray(index_sets))
        return train_group_as_is(group, images, labels, index_sets, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_group", recording)
    members = 5
    config = EnsembleConfig(
        ModelConfig("mlp", digits.image_shape, 10, 0.25), members=members, diversity="shards"
    )
    train_ensemble(digits, config, TrainConfig(epochs=1, batch_size=32))
    (shards,) = trained_on  # one group: every member's rows
    n = len(digits.train_labels)
    assert shards.shape == (members, n // members)
    rows = shards.ravel()
    assert len(np.unique(rows)) == rows.size  # no row in two shards (nor twice in one)
    assert 0 <= rows.min() and rows.max() < n
    # they cover the training split but for the n mod K rows left over (equal shards)
    assert rows.size == n - n % members and n % members > 0


def test_widths_default_to_half_same_and_double():
    config = EnsembleConfig(ModelConfig("cnn", width=0.5), members=6, diversity="widths")
    assert [c.width for c in config.member_configs()] == [0.25, 0.25, 0.5, 0.5, 1.0, 1.0]


def test_architectures_default_to_the_model_and_the_other_family():
    config = EnsembleConfig(ModelConfig("cnn", width=0.5), members=4, diversity="architectures")
    assert [(c.kind, c.width) for c in config.member_configs()] == [("cnn", 0.5)] * 2 + [
        ("mlp", 0.5)
    ] * 2
    with pytest.raises(ValueError, match="model kind: unknown 'rnn'"):
        EnsembleConfig(diversity="architectures", architectures=(("rnn", 1.0),))


def test_ensemble_config_names_bad_values():
    with pytest.raises(ValueError, match="diversity: unknown 'boosting'"):
        EnsembleConfig(diversity="boosting")
    with pytest.raises(ValueError, match="members"):
        EnsembleConfig(members=0)


def test_stochastic_quantisation_is_unbiased_on_the_grid_and_leaves_biases():
    weights = {
        "kernel": jnp.linspace(-1.0, 1.0, 64).reshape(8, 8),
        "bias": jnp.linspace(-0.3, 0.3, 8),
    }
    bits = 3  # levels -3..3, step 1/3
    draws = jax.vmap(lambda key: stochastic_quantize(key, weights, bits))(
        jax.random.split(jax.random.key(0), 2000)
    )
    steps = np.asarray(draws["kernel"]) * 3
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-5)  # on the grid
    assert np.abs(steps).max() <= 3 + 1e-5
    # unbiased: the mean of 2000 draws is within 4 σ of w, σ <= step/2/sqrt(2000) = 0.0037
    np.testing.assert_allclose(
        np.asarray(draws["kernel"]).mean(0), weights["kernel"], atol=4 * 0.0037
    )
    np.testing.assert_array_equal(draws["bias"][0], weights["bias"])
    assert not np.array_equal(draws["kernel"][0], draws["kernel"][1])


def test_ensemble_metrics_on_hand_made_logits():
    labels = np.array([0, 1, 2])
    logits = np.array(
        [
            [[5.0, 0, 0], [0, 5.0, 0], [0, 1.0, 0.9]],  # right, right, wrong (barely says 1)
            [[0, 5.0, 0], [0, 5.0, 0], [0, 0, 9.0]],  # wrong, right, right (very sure)
            [[0, 5.0, 0], [5.0, 0, 0], [0, 1.0, 0.9]],  # wrong, wrong, wrong (barely says 1)
        ]
    )
    metrics = ensemble_metrics(logits, labels)
    np.testing.assert_allclose(metrics["member_accuracy"], [2 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(metrics["mean_member_accuracy"], 4 / 9)
    # votes: class 1 wins every sample (2 of 3 votes each): only sample 1 is right
    np.testing.assert_allclose(metrics["majority_vote_accuracy"], 1 / 3)
    # averaged softmax: the sure member 1 outweighs two unsure votes on sample 2
    np.testing.assert_allclose(metrics["ensemble_accuracy"], 2 / 3)


def test_majority_vote_ties_go_to_the_lowest_class():
    logits = np.array([[[0.0, 0, 1]], [[0.0, 1, 0]]])  # one vote for 2, one for 1
    assert ensemble_metrics(logits, np.array([1]))["majority_vote_accuracy"] == 1.0


def test_member_of_a_group_is_a_copy():
    group = init_group(
        ModelConfig("mlp", (8, 8, 1), 10, 0.25), jax.random.split(jax.random.key(0), 2)
    )
    assert isinstance(group, MemberGroup) and group.size == 2
    before = np.asarray(group.state["stages"][0]["dense"]["kernel"][...])
    member = group.member(1)
    np.testing.assert_array_equal(member.stages[0].dense.kernel[...], before[1])
    member.stages[0].dense.kernel[...] = jnp.zeros_like(member.stages[0].dense.kernel[...])
    np.testing.assert_array_equal(group.state["stages"][0]["dense"]["kernel"][...], before)


def test_stack_models_keeps_each_models_outputs():
    config = ModelConfig("mlp", (8, 8, 1), 10, 0.25)
    models = [build_model(config, jax.random.key(seed)) for seed in (4, 5)]
    group = stack_models(config, models)
    x = normal(0, (3, 8, 8, 1))
    logits = group_logits(group, x)
    for k, model in enumerate(models):
        np.testing.assert_allclose(logits[k], model(x), rtol=1e-6, atol=1e-6)
