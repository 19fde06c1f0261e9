"""Computation partitioning (layer-wise and horizontal) and the digital hop it uses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.models.zoo import ModelConfig, abstract_model, build_model, flops
from airinfer.strategies.base import Link
from airinfer.strategies.cost import Hardware
from airinfer.strategies.digital_hop import DigitalHop, reconstruct, send
from airinfer.strategies.partition import (
    HorizontalPartitionStrategy,
    LayerPartitionStrategy,
    even_cuts,
    stage_flops,
)
from tests.conftest import normal

# Digits test split: 360 images. Binomial sigma of an accuracy near 0.2 is
# sqrt(0.2 * 0.8 / 360) = 0.021, near 0.9 it is 0.016; the bounds below sit
# more than 10 sigma away from the values measured when these tests were written
# (high SNR 0.96, -10 dB about 0.1).
HIGH_SNR_MIN_ACCURACY = 0.8
LOW_SNR_MAX_ACCURACY = 0.35
# The chain of the fixture below: bits per value at each cut.
CHAIN_BITS = {"conv2": 2, "hidden": 4}


@pytest.fixture(scope="module")
def untrained():
    """CNN of width 1 on 8x8 inputs: conv1 -> 4x4x32, conv2 -> 2x2x64, hidden 128, logits 10."""
    return build_model(ModelConfig("cnn", (8, 8, 1), 10, 1.0), jax.random.key(0))


@pytest.fixture(scope="module")
def images():
    return normal(1, (16, 8, 8, 1))


@pytest.fixture(scope="module")
def chain(untrained, images):
    """Three devices cut after conv2 (256 values, 2 bits) and hidden (128 values, 4 bits).

    Both hops carry 512 bits per image, one LDPC block of k = 512: the same link
    and batch, so that run eagerly the second hop reuses the first one's compiled
    programs.
    """
    x, hops = images, []
    for stage, name in zip(untrained.stages, untrained.stage_names, strict=True):
        x = stage(x)
        if name in CHAIN_BITS:
            hops.append(DigitalHop.fit(x, bits=CHAIN_BITS[name]))
    return LayerPartitionStrategy(untrained, tuple(CHAIN_BITS), tuple(hops))


# ---------------------------------------------------------------------------
# the digital hop


def test_hop_cost_hand_computed():
    # 512 values x 4 bits = 2048 bits: one block, rate 1/2 -> 4096 coded bits, QPSK -> 2048
    assert tuple(DigitalHop(bits=4).cost(512)) == (2048, 2048, 1)
    # at most 1000 bits a block: 3 blocks of k = 683 (1 bit of padding), n = 1366, 683 symbols
    assert tuple(DigitalHop(bits=4, max_block_bits=1000).cost(512)) == (3 * 683, 2048, 3)
    # 100 x 8 = 800 bits, rate 1/3, 16-QAM: n = 4 * ceil(800 / (4/3)) = 2400 -> 600 symbols
    assert tuple(DigitalHop(bits=8, modulation="16qam", code_rate=1 / 3).cost(100)) == (600, 800, 1)
    # uncoded: 5 x 3 = 15 bits, padded to 16 for QPSK -> 8 symbols
    assert tuple(DigitalHop(bits=3, coding="uncoded").cost(5)) == (8, 15, 1)
    # LDPC's shortest block is 12 info bits: 2 x 1 bit -> k = 12, n = 24 -> 12 symbols
    assert tuple(DigitalHop(bits=1).cost(2)) == (12, 2, 1)


def test_hop_link_matches_cost():
    for hop, num_values in [
        (DigitalHop(bits=4, max_block_bits=1000), 512),
        (DigitalHop(bits=8, modulation="64qam", code_rate=2 / 3), 77),
        (DigitalHop(bits=3, coding="uncoded", modulation="16qam"), 5),
    ]:
        link = hop.link(num_values, "rayleigh")
        cost = hop.cost(num_values)
        assert cost.num_blocks * link.num_symbols == cost.channel_uses
        assert cost.num_blocks * link.k >= cost.payload_bits > (cost.num_blocks - 1) * link.k


def test_hop_fit_covers_the_calibration_range():
    features = np.array([[-1.0, 0.5], [3.0, 2.0]])
    hop = DigitalHop.fit(features, bits=6)
    assert (hop.low, hop.high, hop.bits) == (-1.0, 3.0, 6)
    step = (hop.high - hop.low) / 2**hop.bits
    assert np.max(np.abs(np.asarray(reconstruct(features, hop)) - features)) <= step / 2 + 1e-6
    constant = DigitalHop.fit(np.zeros(5))
    assert (constant.low, constant.high) == (0.0, 1.0)


def test_hop_send_high_snr_is_the_quantiser_low_snr_is_not():
    hop = DigitalHop(bits=6, low=-2.0, high=2.0)
    values = normal(0, (2, 40, 50))  # 2 x 40 messages of 300 bits
    snr_db = jnp.array([40.0, -10.0])[:, None]  # first half clean, second half hopeless
    received = np.asarray(
        jax.jit(send, static_argnums=(3, 4))(jax.random.key(1), values, snr_db, hop, "awgn")
    )
    clean = np.asarray(reconstruct(values, hop))
    np.testing.assert_array_equal(received[0], clean[0])
    # At -10 dB the LDPC decoder fails: a large share of the values are wrong.
    assert np.mean(received[1] != clean[1]) > 0.5


def test_hop_bad_input():
    with pytest.raises(ValueError, match="bits"):
        DigitalHop(bits=0)
    with pytest.raises(ValueError, match="low < high"):
        DigitalHop(low=1.0, high=1.0)
    with pytest.raises(ValueError, match="modulation"):
        DigitalHop(modulation="8psk")
    with pytest.raises(ValueError, match="code_rate"):
        DigitalHop(code_rate=1.0)
    with pytest.raises(ValueError, match="max_block_bits"):
        DigitalHop(max_block_bits=9000)
    with pytest.raises(ValueError, match="num_values"):
        DigitalHop().cost(0)
    with pytest.raises(ValueError, match="'fading' is not supported by a digital hop"):
        send(jax.random.key(0), jnp.zeros((2, 3)), 0.0, DigitalHop(), "fading")
    with pytest.raises(ValueError, match="snr_db"):
        send(jax.random.key(0), jnp.zeros((2, 3)), jnp.zeros(3), DigitalHop(), "awgn")


# ---------------------------------------------------------------------------
# layer-wise partitioning


def test_even_cuts():
    model = abstract_model(ModelConfig("cnn", (8, 8, 1), 10, 1.0))  # conv1 conv2 hidden logits
    assert even_cuts(model, 1) == ()
    assert even_cuts(model, 2) == ("conv2",)
    assert even_cuts(model, 3) == ("conv1", "conv2")
    assert even_cuts(model, 4) == ("conv1", "conv2", "hidden")
    with pytest.raises(ValueError, match="num_devices: 5 exceeds the 4 stages"):
        even_cuts(model, 5)


@pytest.mark.parametrize("num_devices", [1, 2, 3, 4])
def test_layer_perfect_links_equal_the_full_model(untrained, images, num_devices):
    strategy = LayerPartitionStrategy(untrained, even_cuts(untrained, num_devices), ideal=True)
    outcome = strategy(jax.random.key(0), images, Link(snr_db=-30.0))
    np.testing.assert_array_equal(outcome.logits, untrained(images))


def test_layer_cost_hand_computed(untrained):
    strategy = LayerPartitionStrategy(untrained, ("conv1", "conv2"), DigitalHop(bits=4))
    cost = strategy.cost((8, 8, 1))
    # conv1: 4x4x32 = 512 values x 4 bits = 2048 bits -> 2048 QPSK symbols at rate 1/2;
    # conv2: 2x2x64 = 256 values x 4 bits = 1024 bits -> 1024 symbols.
    assert (cost.channel_uses, cost.payload_bits) == (3072, 3072)
    # A chain: every stage runs on some device, one after the other.
    assert (
        cost.device_flops == flops(untrained, (8, 8, 1)) == sum(stage_flops(untrained, (8, 8, 1)))
    )
    assert cost.server_flops == 0.0
    hardware = Hardware()
    assert cost.latency_s == pytest.approx(
        cost.device_flops / hardware.device_flops_per_s + 3072 / hardware.symbol_rate_hz, rel=1e-12
    )
    one_device = LayerPartitionStrategy(untrained, ()).cost((8, 8, 1))
    assert (one_device.channel_uses, one_device.payload_bits) == (0, 0)


@pytest.mark.slow
def test_layer_high_snr_is_the_quantised_model(untrained, images, chain):
    """Every hop decodes without error at 40 dB: the output is the model with
    its activations quantised at the cuts, exactly."""
    strategy = chain
    links = [hop.link(v, "rayleigh") for hop, v in zip(chain.hops, (256, 128), strict=True)]
    assert links[0] == links[1] and links[0].k == 512  # one link, one block per image
    # Eager, as the reference: under jit XLA fuses the stages and rounds differently.
    outcome = strategy(jax.random.key(3), images, Link(snr_db=40.0, channel="rayleigh"))
    x = images
    for stage, name in zip(untrained.stages, untrained.stage_names, strict=True):
        x = stage(x)
        if name in strategy.cuts:
            x = reconstruct(x, strategy.hops[strategy.cuts.index(name)])
    np.testing.assert_array_equal(outcome.logits, x)


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(np.asarray(logits), -1) == labels))


@pytest.mark.slow  # codes 720 images' features: ~25 s on a busy 2-core CPU
def test_layer_accuracy_high_vs_low_snr(digits_cnn, digits):
    trained = digits_cnn  # a width-0.5 CNN trained on digits (the session's shared one)
    strategy = LayerPartitionStrategy.calibrated(trained, 2, digits.train_images[:256], bits=8)
    images, labels = digits.test_images, digits.test_labels
    n = len(labels)
    # Both SNRs in one call: one SNR per sample.
    snr_db = np.concatenate([np.full(n, 10.0), np.full(n, -10.0)]).astype(np.float32)
    both = jnp.concatenate([images, images])
    outcome = jax.jit(strategy)(jax.random.key(0), both, Link(snr_db=snr_db))
    high = _accuracy(outcome.logits[:n], labels)
    low = _accuracy(outcome.logits[n:], labels)
    ideal = LayerPartitionStrategy(trained, strategy.cuts, strategy.hops, ideal=True)
    full = _accuracy(ideal(jax.random.key(0), images, Link(snr_db=0.0)).logits, labels)
    assert high >= HIGH_SNR_MIN_ACCURACY
    assert abs(high - full) <= 2 / n  # 8-bit features change at most a couple of decisions
    assert low <= LOW_SNR_MAX_ACCURACY


def test_layer_jit_determinism(untrained, images):
    # one cut (after hidden: 128 values x 4 bits, one LDPC block): the chain's second
    # hop would compile a second link into the program and check nothing more here
    hidden = untrained.stages[2](untrained.stages[1](untrained.stages[0](images)))
    strategy = LayerPartitionStrategy(untrained, ("hidden",), (DigitalHop.fit(hidden, bits=4),))
    run = jax.jit(strategy)
    link = Link(snr_db=0.5, channel="rayleigh")  # faded around the LDPC threshold: some fail
    first = run(jax.random.key(5), images, link).logits
    again = run(jax.random.key(5), images, link).logits
    other = run(jax.random.key(6), images, link).logits
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    run(jax.random.key(5), images, Link(snr_db=7.0, channel="rayleigh"))
    assert run._cache_size() == 1  # the SNR is traced: no recompilation
    # Eager and jitted runs draw the same channel; only XLA's fusion rounds differently.
    eager = strategy(jax.random.key(5), images, link).logits
    np.testing.assert_allclose(first, eager, rtol=1e-4, atol=1e-4)


def test_layer_bad_input(untrained, images):
    with pytest.raises(ValueError, match="unknown split point 'logits'"):
        LayerPartitionStrategy(untrained, ("logits",))
    with pytest.raises(ValueError, match="distinct and ordered"):
        LayerPartitionStrategy(untrained, ("conv2", "conv1"))
    with pytest.raises(ValueError, match="one DigitalHop per cut"):
        LayerPartitionStrategy(untrained, ("conv1", "conv2"), (DigitalHop(),))
    with pytest.raises(ValueError, match="SplitClassifier"):
        LayerPartitionStrategy(object(), ())
    with pytest.raises(ValueError, match="num_devices: 5 exceeds"):
        LayerPartitionStrategy.calibrated(untrained, 5, images)
    strategy = LayerPartitionStrategy(untrained, ("conv1",))
    with pytest.raises(ValueError, match=r"images must have shape \[B, H, W, C\]"):
        strategy(jax.random.key(0), images[0], Link(snr_db=10.0))


# ---------------------------------------------------------------------------
# horizontal partitioning


@pytest.mark.parametrize("layer", ["conv1", "conv2", "hidden", "logits"])
@pytest.mark.parametrize("num_devices", [1, 3])
def test_horizontal_perfect_links_equal_the_full_model(untrained, images, layer, num_devices):
    strategy = HorizontalPartitionStrategy(untrained, layer, num_devices, ideal=True)
    logits = np.asarray(strategy(jax.random.key(0), images, Link(snr_db=-30.0)).logits)
    full = np.asarray(untrained(images))
    if num_devices > 1:
        # XLA's CPU kernels may sum a narrower slice in another order (the conv2
        # convolution everywhere, the logits' matmul on AVX-512): float32 rounding.
        np.testing.assert_allclose(logits, full, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.argmax(logits, -1), np.argmax(full, -1))
    else:
        np.testing.assert_array_equal(logits, full)


def test_horizontal_slices_and_flops(untrained):
    strategy = HorizontalPartitionStrategy(untrained, "conv1", 3)
    assert strategy.slices() == ((0, 11), (11, 22), (22, 32))
    counts = stage_flops(untrained, (8, 8, 1))
    # conv1 per output channel: 2 x 484 multiply-adds (3x3 taps inside the 8x8 'SAME'
    # image: 22^2), 64 bias adds, 64 ReLUs, 4x4 pooled outputs of 3 comparisons.
    per_channel = 2 * 22**2 + 64 + 64 + 16 * 3
    assert counts[0] == 32 * per_channel
    cost = strategy.cost((8, 8, 1))
    assert cost.device_flops == 11 * per_channel  # the widest slice; devices in parallel
    assert cost.server_flops == sum(counts[1:])
    # 16 pixels x 8 bits per channel: 1408, 1408, 1280 bits -> as many QPSK symbols at rate 1/2
    assert (cost.channel_uses, cost.payload_bits) == (4096, 4096)
    hidden = HorizontalPartitionStrategy(untrained, "hidden", 4, DigitalHop(bits=2)).cost((8, 8, 1))
    # 4 devices x 32 units x 2 bits = 64 bits each -> 64 symbols each; stages before on every device
    assert (hidden.channel_uses, hidden.payload_bits) == (256, 256)
    assert hidden.device_flops == counts[0] + counts[1] + counts[2] / 4
    assert hidden.server_flops == counts[3]


# slow, as the next: two minutes of LDPC under load; the default suite keeps a hop's
# high-SNR quantiser and the chain's perfect links (test_hop_send_..., ..._perfect_links_...)
@pytest.mark.slow
def test_horizontal_high_snr_is_the_quantised_model(untrained, images):
    strategy = HorizontalPartitionStrategy.calibrated(untrained, "hidden", 3, images, bits=4)
    outcome = strategy(jax.random.key(1), images, Link(snr_db=40.0))
    x = images
    for stage in untrained.stages[:3]:
        x = stage(x)
    expected = untrained.stages[3](reconstruct(x, strategy.hop))
    np.testing.assert_array_equal(outcome.logits, expected)


@pytest.mark.slow  # as above
def test_horizontal_accuracy_high_vs_low_snr(digits_cnn, digits):
    trained = digits_cnn
    strategy = HorizontalPartitionStrategy.calibrated(
        trained, "conv1", 4, digits.train_images[:256], bits=6
    )
    images, labels = digits.test_images, digits.test_labels
    n = len(labels)
    snr_db = np.concatenate([np.full(n, 10.0), np.full(n, -10.0)]).astype(np.float32)
    outcome = jax.jit(strategy)(
        jax.random.key(0), jnp.concatenate([images, images]), Link(snr_db=snr_db)
    )
    assert _accuracy(outcome.logits[:n], labels) >= HIGH_SNR_MIN_ACCURACY
    assert _accuracy(outcome.logits[n:], labels) <= LOW_SNR_MAX_ACCURACY


def test_horizontal_bad_input(untrained, images):
    with pytest.raises(ValueError, match=r"num_devices: 11 must be an int in \[1, 10\]"):
        HorizontalPartitionStrategy(untrained, "logits", 11)
    with pytest.raises(ValueError, match="unknown stage 'conv3'"):
        HorizontalPartitionStrategy(untrained, "conv3", 2)
    mobilenet = abstract_model(ModelConfig("mobilenet_v2", (32, 32, 3), 10, 0.25))
    with pytest.raises(ValueError, match="cannot be split by output units; allowed: logits"):
        HorizontalPartitionStrategy(mobilenet, "stage3", 2)


def test_strategy_names(untrained):
    assert LayerPartitionStrategy(untrained, ()).name == "partition_layer"
    assert HorizontalPartitionStrategy(untrained, "hidden", 2).name == "partition_horizontal"
    assert math.isclose(
        HorizontalPartitionStrategy(untrained, "hidden", 1).cost((8, 8, 1)).device_flops,
        sum(stage_flops(untrained, (8, 8, 1))[:3]),
    )


def test_messages_are_the_quantised_activations(untrained, images):
    """What leaves the first device of a chain (and the devices of a split layer)
    lies on the hop's quantiser grid and rebuilds the activations within half a step."""
    chain = LayerPartitionStrategy.calibrated(untrained, 3, images, bits=3)
    sent = chain.message(images)
    activations = untrained.stages[0](images).reshape(len(images), -1)
    assert sent.shape == activations.shape
    assert len(np.unique(np.asarray(sent))) <= 2**3
    step = (chain.hops[0].high - chain.hops[0].low) / 2**3
    assert float(jnp.max(jnp.abs(sent - activations))) <= step / 2 + 1e-6
    assert LayerPartitionStrategy(untrained, ()).message(images) is None
    split = HorizontalPartitionStrategy.calibrated(untrained, "hidden", 4, images, bits=3)
    sent = split.message(images)
    assert sent.shape == (len(images), untrained.stages[-1].dense.in_features)
    assert len(np.unique(np.asarray(sent))) <= 2**3
