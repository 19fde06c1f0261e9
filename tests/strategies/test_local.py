import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.zoo import SplitClassifier, flops
from airinfer.strategies.base import Link
from airinfer.strategies.cost import Hardware
from airinfer.strategies.local import LocalStrategy, inference_copy
from tests.conftest import normal

from .conftest import accuracy


class _NormNet(SplitClassifier):
    """BatchNorm, then a dense layer: inference mode changes its output."""

    def __init__(self, rngs):
        self.norm = nnx.BatchNorm(1, rngs=rngs)
        self.dense = nnx.Linear(64, 10, rngs=rngs)
        self.stages = nnx.List([self.norm, lambda x: self.dense(x.reshape(x.shape[0], -1))])
        self.stage_names = ("norm", "logits")


def test_logits_and_cost_exact(digits_cnn, digits_batch, key):
    images, labels = digits_batch
    hardware = Hardware(device_flops_per_s=2e8)
    strategy = LocalStrategy(digits_cnn, hardware)
    outcome = strategy(key, images, Link(snr_db=0.0))
    np.testing.assert_array_equal(outcome.logits, digits_cnn(images))
    model_flops = flops(digits_cnn, (8, 8, 1))
    assert outcome.cost.device_flops == model_flops > 0
    assert outcome.cost.channel_uses == 0 and outcome.cost.payload_bits == 0
    assert outcome.cost.server_flops == 0
    assert outcome.cost.latency_s == pytest.approx(model_flops / 2e8, rel=1e-12)
    assert strategy.name == "local"
    assert strategy.message(images) is None  # nothing leaves the device
    # the briefly trained CNN is a real classifier on this batch
    assert accuracy(outcome.logits, labels) > 0.85


def test_jit_any_link_same_numbers(digits_cnn, digits_batch):
    images, _ = digits_batch
    strategy = LocalStrategy(digits_cnn)
    run = jax.jit(strategy)
    eager = strategy(jax.random.key(0), images, Link(snr_db=10.0))
    # no link at all matters: OFDM channel, JAX backend, nobody connected
    for link in (
        Link(snr_db=-40.0, channel="tdl-a"),
        Link(snr_db=60.0, connectivity=0.0, backend="jax"),
    ):
        outcome = run(jax.random.key(5), images, link)
        np.testing.assert_allclose(outcome.logits, eager.logits, rtol=1e-5, atol=1e-5)
        assert float(outcome.cost.device_flops) == eager.cost.device_flops
    first = run(jax.random.key(1), images, Link(snr_db=3.0))
    second = run(jax.random.key(1), images, Link(snr_db=3.0))
    np.testing.assert_array_equal(first.logits, second.logits)


def test_inference_mode_without_touching_the_model():
    model = _NormNet(nnx.Rngs(0))
    # running statistics far from a batch's own: the two modes disagree
    model.norm.mean.value = jnp.full((1,), 3.0)
    model.norm.var.value = jnp.full((1,), 4.0)
    model.train()
    images = normal(0, (16, 8, 8, 1))
    outcome = LocalStrategy(model)(jax.random.key(0), images, Link(snr_db=0.0))
    reference = inference_copy(model)(images)
    np.testing.assert_array_equal(outcome.logits, reference)
    assert not np.allclose(outcome.logits, model(images), atol=1e-3)
    assert model.norm.use_running_average is False  # still in training mode


def test_bad_input(digits_cnn, digits_batch, key):
    images, _ = digits_batch
    with pytest.raises(ValueError, match="model"):
        LocalStrategy(lambda x: x)
    with pytest.raises(ValueError, match="hardware"):
        LocalStrategy(digits_cnn, hardware={"device_flops_per_s": 1e9})
    strategy = LocalStrategy(digits_cnn)
    with pytest.raises(ValueError, match=r"images: shape \(8, 8, 1\)"):
        strategy(key, images[0], Link(snr_db=0.0))
    with pytest.raises(ValueError, match="images: dtype int32"):
        strategy(key, images.astype(jnp.int32), Link(snr_db=0.0))
