"""The over-the-air edge ensemble behind the strategy interface."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.models.datasets import load_dataset
from airinfer.models.ensemble import EnsembleConfig, init_group
from airinfer.models.train import TrainConfig, train_ensemble
from airinfer.models.zoo import ModelConfig, flops
from airinfer.strategies.base import Link
from airinfer.strategies.cost import Hardware
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy, noiseless_average
from tests.conftest import normal

NUM_MEMBERS = 4
NUM_CLASSES = 10
# At 60 dB on AWGN the estimate's noise per value is sqrt(no / 2) / 4 (three
# neighbours and the local device, unit amplitudes) in normalised units, times
# scale / sqrt(n) = sqrt(0.9 / 5) on the way back: 7.6e-5. Over 64 x 10 values
# the largest is below 5 sigma = 4e-4; the tolerance is 25 sigma.
HIGH_SNR_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def group():
    """Four untrained CNNs of width 1/4 on 8x8 inputs (distinct initialisations)."""
    config = ModelConfig("cnn", (8, 8, 1), NUM_CLASSES, 0.25)
    return init_group(config, jax.random.split(jax.random.key(0), NUM_MEMBERS))


@pytest.fixture(scope="module")
def images():
    return normal(1, (64, 8, 8, 1))


def _softmax_of(model, images):
    return jax.nn.softmax(model(images), axis=-1)


def test_cost_hand_computed(group):
    member_flops = flops(group.member(0), (8, 8, 1))
    cost = EdgeEnsembleStrategy(group).cost((8, 8, 1), NUM_CLASSES)
    # 10 values -> 5 complex symbols, shared by the 3 neighbours over the air
    assert (cost.channel_uses, cost.payload_bits) == (5, 0)
    assert cost.device_flops == member_flops and cost.server_flops == 0.0
    hardware = Hardware()
    assert cost.latency_s == pytest.approx(
        member_flops / hardware.device_flops_per_s + 5 / hardware.symbol_rate_hz, rel=1e-12
    )
    slow = Hardware(device_flops_per_s=1e6, symbol_rate_hz=1e3)
    repeated = EdgeEnsembleStrategy(group, "vote", repetitions=3, hardware=slow)
    cost = repeated.cost((8, 8, 1), NUM_CLASSES)
    assert cost.channel_uses == 15
    assert cost.latency_s == pytest.approx(member_flops / 1e6 + 15 / 1e3, rel=1e-12)
    alone = EdgeEnsembleStrategy([group.member(0)]).cost((8, 8, 1), NUM_CLASSES)
    assert alone.channel_uses == 0


# Sionna is slow: another compilation of the whole strategy; Sionna's flat fading
# against its twin is tests/phy/test_channels.py (test_twins_agree_...)
@pytest.mark.parametrize("backend", ["jax", pytest.param("sionna", marks=pytest.mark.slow)])
def test_high_snr_full_connectivity_is_the_noiseless_ensemble(group, images, backend):
    strategy = EdgeEnsembleStrategy(group)
    outcome = jax.jit(strategy)(
        jax.random.key(2), images, Link(snr_db=60.0, connectivity=1.0, backend=backend)
    )
    # the noiseless ensemble, from the members one by one
    reference = np.mean([_softmax_of(group.member(k), images) for k in range(NUM_MEMBERS)], 0)
    np.testing.assert_allclose(noiseless_average(strategy, images), reference, atol=1e-6)
    estimate = np.asarray(outcome.logits)
    assert np.max(np.abs(estimate - reference)) <= HIGH_SNR_TOLERANCE
    top2 = np.sort(reference, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * HIGH_SNR_TOLERANCE  # not a near-tie
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.argmax(estimate, -1)[clear], np.argmax(reference, -1)[clear])


def test_high_snr_votes_count_the_majority(group, images):
    strategy = EdgeEnsembleStrategy(group, payload="vote")
    outcome = strategy(jax.random.key(3), images, Link(snr_db=60.0, backend="jax"))
    votes = np.stack([np.argmax(group.member(k)(images), -1) for k in range(NUM_MEMBERS)])
    counts = np.stack([np.sum(votes == c, axis=0) for c in range(NUM_CLASSES)], -1)
    np.testing.assert_allclose(outcome.logits, counts / NUM_MEMBERS, atol=HIGH_SNR_TOLERANCE)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_connectivity_zero_is_the_local_model(group, images, channel):
    strategy = EdgeEnsembleStrategy(group)
    link = Link(snr_db=0.0, connectivity=0.0, channel=channel, backend="jax")
    local = _softmax_of(group.member(0), images)
    np.testing.assert_array_equal(strategy(jax.random.key(4), images, link).logits, local)
    jitted = jax.jit(strategy)(jax.random.key(4), images, link).logits
    np.testing.assert_array_equal(np.argmax(jitted, -1), np.argmax(local, -1))
    np.testing.assert_allclose(jitted, local, rtol=1e-6, atol=1e-7)


def test_one_member_is_the_local_model(group, images):
    strategy = EdgeEnsembleStrategy([group.member(2)])
    outcome = strategy(jax.random.key(5), images, Link(snr_db=-20.0, backend="jax"))
    np.testing.assert_array_equal(outcome.logits, _softmax_of(group.member(2), images))
    assert outcome.cost.channel_uses == 0


def test_partial_connectivity_joins_at_the_given_rate(group):
    """With p = 0.5 nobody joins with probability 0.5^3 = 0.125: then the output is
    exactly the local model's; otherwise (60 dB, AWGN) it is an average of several."""
    p, n = 0.5, 2000
    images = jnp.tile(normal(6, (8, 8, 8, 1)), (n // 8, 1, 1, 1))
    run = jax.jit(EdgeEnsembleStrategy(group))
    outcome = run(jax.random.key(7), images, Link(snr_db=60.0, connectivity=p, backend="jax"))
    # the same compiled program at p = 0 (connectivity is traced): the local model's output
    local = np.asarray(run(jax.random.key(7), images, Link(60.0, 0.0, backend="jax")).logits)
    alone = np.all(np.abs(np.asarray(outcome.logits) - local) < 1e-6, axis=-1)
    expected = (1 - p) ** (NUM_MEMBERS - 1)
    sigma = math.sqrt(expected * (1 - expected) / n)  # 0.0074
    assert abs(alone.mean() - expected) < 5 * sigma


def test_jit_determinism(group, images):
    strategy = EdgeEnsembleStrategy(group)
    run = jax.jit(strategy)
    link = Link(snr_db=0.0, connectivity=0.7, channel="rayleigh", backend="jax")
    first = run(jax.random.key(8), images, link).logits
    np.testing.assert_array_equal(first, run(jax.random.key(8), images, link).logits)
    assert not np.array_equal(first, run(jax.random.key(9), images, link).logits)
    run(jax.random.key(8), images, Link(20.0, 0.1, channel="rayleigh", backend="jax"))
    assert run._cache_size() == 1  # SNR and connectivity are traced: no recompilation
    eager = strategy(jax.random.key(8), images, link).logits
    np.testing.assert_allclose(first, eager, rtol=1e-5, atol=1e-6)


def test_bad_input(group, images):
    with pytest.raises(ValueError, match="payload must be one of"):
        EdgeEnsembleStrategy(group, payload="sign")
    with pytest.raises(ValueError, match="precoding"):
        EdgeEnsembleStrategy(group, precoding="zf")
    with pytest.raises(ValueError, match="threshold"):
        EdgeEnsembleStrategy(group, threshold=0.0)
    with pytest.raises(ValueError, match="repetitions"):
        EdgeEnsembleStrategy(group, repetitions=0)
    with pytest.raises(ValueError, match="non-empty sequence"):
        EdgeEnsembleStrategy([])
    with pytest.raises(ValueError, match=r"members\[1\] must be a models.zoo.SplitClassifier"):
        EdgeEnsembleStrategy([group.member(0), "model"])
    strategy = EdgeEnsembleStrategy(group)
    with pytest.raises(ValueError, match="connectivity must be in"):
        strategy(jax.random.key(0), images, Link(snr_db=0.0, connectivity=1.5))
    with pytest.raises(ValueError, match=r"images must have shape \[B, H, W, C\]"):
        strategy(jax.random.key(0), images[0], Link(snr_db=0.0))
    other = init_group(
        ModelConfig("cnn", (8, 8, 1), 5, 0.25), jax.random.split(jax.random.key(0), 1)
    )
    mixed = EdgeEnsembleStrategy([group.member(0), other.member(0)])
    with pytest.raises(ValueError, match="disagree on the number of classes"):
        mixed(jax.random.key(0), images, Link(snr_db=0.0))
    assert strategy.name == "edge_ensemble" and strategy.num_members == NUM_MEMBERS


@pytest.mark.slow  # trains four CNNs: ~25 s on a busy 2-core CPU
def test_accuracy_high_vs_low_snr():
    digits = load_dataset("digits", seed=0)
    config = EnsembleConfig(ModelConfig("cnn", digits.image_shape, 10, 0.25), NUM_MEMBERS)
    ensemble, _ = train_ensemble(digits, config, TrainConfig(epochs=8, seed=0))
    strategy = EdgeEnsembleStrategy(ensemble)
    images, labels = digits.test_images, digits.test_labels
    n = len(labels)
    snr_db = np.concatenate([np.full(n, 30.0), np.full(n, -30.0)]).astype(np.float32)
    outcome = jax.jit(strategy)(
        jax.random.key(0), jnp.concatenate([images, images]),
        Link(snr_db=snr_db, channel="rayleigh", backend="jax"),
    )  # fmt: skip
    decisions = np.argmax(np.asarray(outcome.logits), -1)
    high, low = np.mean(decisions[:n] == labels), np.mean(decisions[n:] == labels)
    # 360 test images: sigma <= 0.026; measured about 0.93 and 0.1 when written.
    assert high >= 0.8
    assert low <= 0.35


def test_message_is_a_neighbours_payload(group, images):
    strategy = EdgeEnsembleStrategy(group)
    np.testing.assert_allclose(
        strategy.message(images), _softmax_of(group.member(1), images), rtol=1e-6, atol=1e-7
    )
    votes = EdgeEnsembleStrategy(group, "vote").message(images)
    np.testing.assert_array_equal(jnp.sum(votes, -1), 1.0)
    assert EdgeEnsembleStrategy([group.member(0)]).message(images) is None
