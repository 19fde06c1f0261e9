"""Checkpoints (round trip, mismatch errors, atomic folders) and the model cache."""

import dataclasses

import jax
import numpy as np
import pytest

from airinfer.models import cache
from airinfer.models.checkpoint import (
    CheckpointMismatchError,
    check_format,
    field_differences,
    load_ensemble,
    read_description,
    restore_state,
    save_checkpoint,
    save_ensemble,
    state_fingerprint,
)
from airinfer.models.ensemble import Ensemble, EnsembleConfig, init_group
from airinfer.models.inference import ensemble_logits
from airinfer.models.train import TrainConfig
from airinfer.models.zoo import ModelConfig


@pytest.fixture(scope="module")
def two_groups():
    """Three members in two architectures: two CNNs of width 0.25, one of width 0.5."""
    narrow = ModelConfig("cnn", (8, 8, 1), 10, 0.25)
    wide = dataclasses.replace(narrow, width=0.5)
    keys = jax.random.split(jax.random.key(0), 3)
    return Ensemble((init_group(narrow, keys[:2]), init_group(wide, keys[2:])))


def test_round_trip_gives_identical_logits(tmp_path, two_groups, digits):
    path = save_ensemble(tmp_path / "ckpt", two_groups, {"note": "round trip"})
    loaded, metadata = load_ensemble(path, two_groups.member_configs)
    assert metadata == {"note": "round trip"}
    assert loaded.member_configs == two_groups.member_configs
    np.testing.assert_array_equal(
        ensemble_logits(loaded, digits.test_images), ensemble_logits(two_groups, digits.test_images)
    )
    description = read_description(path)
    assert [g["size"] for g in description["groups"]] == [2, 1]


def test_mismatched_architecture_fails_naming_the_field(tmp_path, two_groups):
    path = save_ensemble(tmp_path / "ckpt", two_groups)
    wrong_width = [dataclasses.replace(c, width=1.0) for c in two_groups.member_configs]
    with pytest.raises(
        CheckpointMismatchError, match="member 0 differs: width: checkpoint has 0.25, expected 1.0"
    ):
        load_ensemble(path, wrong_width)
    wrong_classes = [dataclasses.replace(c, num_classes=100) for c in two_groups.member_configs]
    with pytest.raises(CheckpointMismatchError, match="num_classes"):
        load_ensemble(path, wrong_classes)
    with pytest.raises(CheckpointMismatchError, match="3 members, expected 2"):
        load_ensemble(path, two_groups.member_configs[:2])


def test_saving_never_overwrites_and_leaves_no_partial_folder(tmp_path, two_groups):
    save_ensemble(tmp_path / "ckpt", two_groups)
    with pytest.raises(ValueError, match="already exists"):
        save_ensemble(tmp_path / "ckpt", two_groups)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_ensemble(tmp_path / "absent")


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "models"))
    assert cache.cache_root() == tmp_path / "models"
    monkeypatch.delenv("AIRINFER_CACHE")
    assert cache.cache_root().parts[-3:] == (".cache", "airinfer", "models")


def test_cache_key_changes_with_anything_that_changes_the_members():
    config = EnsembleConfig(ModelConfig("mlp", (8, 8, 1), 10, 0.25), members=2, diversity="bagging")
    base = cache.cache_key("digits", 0, config, TrainConfig())
    assert base == cache.cache_key("digits", 0, config, TrainConfig())
    assert base != cache.cache_key("digits", 1, config, TrainConfig())
    assert base != cache.cache_key(
        "digits", 0, dataclasses.replace(config, members=3), TrainConfig()
    )
    assert base != cache.cache_key("digits", 0, config, TrainConfig(seed=1))
    assert base != cache.cache_key("fashion_mnist", 0, config, TrainConfig())


def test_cached_training_reuses_the_stored_members(tmp_path, digits):
    config = EnsembleConfig(
        ModelConfig("mlp", digits.image_shape, 10, 0.25), members=2, diversity="init"
    )
    train_config = TrainConfig(epochs=1, batch_size=64)
    first, report, path = cache.cached_train_ensemble(
        digits, 0, config, train_config, root=tmp_path
    )
    assert report is not None and path.parent == tmp_path
    second, report_again, path_again = cache.cached_train_ensemble(
        digits, 0, config, train_config, root=tmp_path
    )
    assert report_again is None and path_again == path
    np.testing.assert_array_equal(
        ensemble_logits(first, digits.test_images), ensemble_logits(second, digits.test_images)
    )


def test_any_artefact_round_trips_and_a_mismatch_is_named(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": {"c": np.ones(2, np.int32)}}
    path = save_checkpoint(tmp_path / "any", {"format": 7, "note": "x"}, state)
    description = read_description(path)
    assert description == {"format": 7, "note": "x"}
    check_format(path, description, 7)
    with pytest.raises(CheckpointMismatchError, match="checkpoint format 7, this version reads 8"):
        check_format(path, description, 8)
    restored = restore_state(path, state)
    np.testing.assert_array_equal(restored["w"], state["w"])
    np.testing.assert_array_equal(restored["b"]["c"], state["b"]["c"])
    wrong = {"v": np.zeros((2, 3), np.float32), "b": {"c": np.ones(2, np.int32)}}
    with pytest.raises(CheckpointMismatchError, match="the stored weights has another"):
        restore_state(path, wrong, "weights")


def test_field_differences_name_only_the_fields_that_differ():
    found = ModelConfig("cnn", (8, 8, 1), 10, 0.25)
    expected = dataclasses.replace(found, width=0.5)
    assert field_differences(found, expected) == "width: checkpoint has 0.25, expected 0.5"
    assert field_differences(found, found) == ""


def test_state_fingerprint_follows_the_weights(two_groups):
    member = two_groups.member(0)
    assert state_fingerprint(member) == state_fingerprint(two_groups.member(0))
    assert state_fingerprint(member) != state_fingerprint(two_groups.member(1))


def test_description_key_is_the_canonical_json_digest():
    assert cache.description_key({"a": 1, "b": [2]}) == cache.description_key({"b": [2], "a": 1})
    assert cache.description_key({"a": 1}) != cache.description_key({"a": 2})


def test_load_or_build_builds_once_then_loads(tmp_path):
    calls = []

    def build(partial):
        calls.append("build")
        assert partial == path.with_name(path.name + ".partial")
        partial.mkdir(parents=True)  # a checkpoint of the build: removed once stored
        return {"x": np.arange(3, dtype=np.float32)}

    def save(path, artefact):
        save_checkpoint(path, {"format": 1}, artefact)

    def load(path):
        return restore_state(path, {"x": np.zeros(3, np.float32)})

    path = tmp_path / "entries" / "one"
    first, built = cache.load_or_build(path, load, build, save)
    second, built_again = cache.load_or_build(path, load, build, save)
    assert (built, built_again, calls) == (True, False, ["build"])
    assert not path.with_name("one.partial").exists()
    np.testing.assert_array_equal(first["x"], second["x"])

    # another process stored the entry between our check and our save: theirs stays
    def save_late(path, artefact):
        save(path, artefact)
        save(path, artefact)  # refused: the folder exists

    path = tmp_path / "entries" / "two"
    other, built = cache.load_or_build(path, load, build, save_late)
    assert built and (tmp_path / "entries" / "two").is_dir()
