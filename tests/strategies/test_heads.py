"""The shared encoder's heads: cut from a classifier, trained on frozen features, cached."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.train import TrainConfig
from airinfer.models.zoo import ModelConfig, build_model
from airinfer.strategies.heads import Head, cached_train_heads, train_heads
from airinfer.strategies.observation import SharedEncoder

from .conftest import accuracy

# 1000-odd training digits, batches of 64, four epochs: ~60 steps per head
HEAD_TRAINING = TrainConfig(epochs=4, batch_size=64, seed=1)
# measured ~0.95 for the heads on the trained encoder's conv2 features when written;
# 128 test images: sigma <= 0.044, the bound is far below
MIN_HEAD_ACCURACY = 0.8


@pytest.fixture(scope="module")
def encoder(trained_digits_ensemble):
    member = trained_digits_ensemble[0].member(0)
    return SharedEncoder(member, "conv2", bits=4, clip=4.0, signed=False)


def test_a_head_is_the_back_of_its_model():
    model = build_model(ModelConfig("cnn", (8, 8, 1), 10, 0.5), jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1), np.float32))
    head = Head(model, "conv2")
    assert head.stage_names == ("hidden", "logits") and head.split_points == ("hidden",)
    np.testing.assert_allclose(head(model.front(x, "conv2")), model(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(Head(model, None)(x), model(x))
    with pytest.raises(ValueError, match="split_point: unknown 'logits'"):
        Head(model, "logits")


def _entries(root):
    """The cache's entries (each entry's lock file, ``<entry>.lock``, stays beside it)."""
    return [path for path in root.iterdir() if path.suffix != ".lock"]


def test_heads_learn_differ_and_come_back_from_the_cache(
    encoder, digits, digits_batch, tmp_path, trained_digits_ensemble
):
    config = trained_digits_ensemble[0].groups[0].config
    heads = cached_train_heads(encoder, digits, 0, config, 2, HEAD_TRAINING, root=tmp_path)
    images, labels = digits_batch
    features = encoder.clean_features(images)
    logits = [head(features) for head in heads]
    for head_logits in logits:
        assert accuracy(head_logits, labels) >= MIN_HEAD_ACCURACY
    # bagging and their own initialisations: two different heads
    assert np.max(np.abs(np.asarray(logits[0]) - np.asarray(logits[1]))) > 1e-2
    (entry,) = _entries(tmp_path)
    assert entry.name.startswith("heads-")
    again = cached_train_heads(encoder, digits, 0, config, 2, HEAD_TRAINING, root=tmp_path)
    for head, loaded in zip(heads, again, strict=True):
        np.testing.assert_array_equal(loaded(features), head(features))
    assert len(_entries(tmp_path)) == 1


def test_bad_input(encoder, digits, trained_digits_ensemble):
    config = trained_digits_ensemble[0].groups[0].config
    with pytest.raises(ValueError, match="diversity: unknown 'widths'"):
        train_heads(encoder, digits, config, 2, HEAD_TRAINING, "widths")
    with pytest.raises(ValueError, match="num_heads: 0"):
        train_heads(encoder, digits, config, 0, HEAD_TRAINING)
    narrow = ModelConfig("cnn", (8, 8, 1), 10, 0.25)
    with pytest.raises(ValueError, match=r"take features \(2, 2, 16\), the encoder gives"):
        train_heads(encoder, digits, narrow, 2, HEAD_TRAINING)
    with pytest.raises(ValueError, match="encoder: Linear is not a SharedEncoder"):
        train_heads(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), digits, config, 2, HEAD_TRAINING)
