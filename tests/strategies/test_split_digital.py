"""Split inference over the digital link: costs, quantiser bounds, extreme SNRs, bottleneck."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.zoo import flops
from airinfer.phy import quantize
from airinfer.strategies.base import Link
from airinfer.strategies.cost import Hardware
from airinfer.strategies.feature_coding import (
    Bottleneck,
    bottleneck_flops,
    calibrate_clip,
    train_bottleneck,
)
from airinfer.strategies.local import inference_copy
from airinfer.strategies.split_digital import SplitDigitalStrategy

from .conftest import accuracy

# Long programs (LDPC decoding of 128 images' blocks): full XLA optimisation
# pays (tests/conftest.py).
pytestmark = pytest.mark.xla_optimized

# See test_cloud: 30 dB below the cliff the decided bits are coin flips, so the
# accuracy is at most the largest class frequency, plus 4 binomial sigmas.
CHANCE_SIGMAS = 4.0
HOPELESS_SNR_DB = -30.0
# float32 rounding of the back's arithmetic on top of the quantiser's bound
FLOAT_SLACK = 1e-4
# float32 rounding of the quantiser's affine maps: a few ulps of the clip level
ULPS = 8 * float(np.finfo(np.float32).eps)


def chance_bound(labels) -> float:
    top = np.bincount(np.asarray(labels)).max() / len(labels)
    return top + CHANCE_SIGMAS * math.sqrt(top * (1 - top) / len(labels))


def dense_kernel(model, stage):
    """The kernel ``[in, out]`` of the CNN's dense stage ``stage`` (``hidden`` or ``logits``)."""
    return np.asarray(model.stages[model.stage_names.index(stage)].dense.kernel[...])


def logit_error_bound(model, feature_error):
    """Largest change of each logit when every conv2 feature moves by at most ``feature_error``.

    The back is dense -> ReLU -> dense; ReLU is 1-Lipschitz, so an error
    ``e`` on the inputs of a dense layer ``W`` moves output ``j`` by at most
    ``sum_i |W_ij| e_i``.
    """
    hidden = np.abs(dense_kernel(model, "hidden")).T @ np.full(
        dense_kernel(model, "hidden").shape[0], feature_error
    )
    return np.abs(dense_kernel(model, "logits")).T @ hidden


@pytest.fixture(scope="module")
def eight_bits(new_digits_cnn, digits_batch):
    """8 bits at conv2 over AWGN, clip = the batch's largest feature: nothing is clipped."""
    model = new_digits_cnn()
    clip = calibrate_clip(model, "conv2", digits_batch[0], percentile=100)
    strategy = SplitDigitalStrategy(model, "conv2", 8, clip, signed=False)
    return strategy, jax.jit(strategy.receive)


# --------------------------------------------------------------------------- costs


def test_cost_hand_computed(digits_cnn):
    front = flops(digits_cnn, (8, 8, 1), "conv2", "front")
    back = flops(digits_cnn, (8, 8, 1), "conv2", "back")
    hardware = Hardware(device_flops_per_s=1e8, server_flops_per_s=1e12, symbol_rate_hz=1e6)
    # conv2 of the width-0.5 CNN on 8x8: 2 x 2 x 32 = 128 values; 8 bits: 1024 bits,
    # k = 512: 2 blocks of n = 1024 coded bits, QPSK: 2 x 512 symbols
    strategy = SplitDigitalStrategy(digits_cnn, "conv2", 8, 4.0, hardware)
    cost = strategy.cost((8, 8, 1), "awgn")
    assert (cost.payload_bits, cost.channel_uses) == (1024, 1024)
    assert (cost.device_flops, cost.server_flops) == (front, back)
    assert cost.latency_s == pytest.approx(front / 1e8 + 1024 / 1e6 + back / 1e12, rel=1e-12)
    assert strategy.name == "split_digital_b8"
    # 4 bits: 512 bits; k = 256 at rate 2/3: n = 384, 16-QAM: 96 symbols per block, 2 blocks
    qam = SplitDigitalStrategy(digits_cnn, "conv2", 4, 4.0, modulation="16qam",
                               code_rate=2 / 3, block_bits=256)  # fmt: skip
    assert qam.cost((8, 8, 1), "rayleigh")[:2] == (192, 512)
    # hidden: 64 units x 2 bits = 128 bits, one block padded from 128 to 512 info bits
    hidden = SplitDigitalStrategy(digits_cnn, "hidden", 2, 4.0)
    assert hidden.cost((8, 8, 1), "awgn")[:2] == (512, 128)
    # a bottleneck of 4 channels: 2 x 2 x 4 = 16 values x 2 bits = 32 bits; its dense
    # layers cost 2 C c + c (compress) and 2 c C + C (expand) per position, 4 positions
    bottleneck = Bottleneck(32, 4, rngs=nnx.Rngs(0))
    squeezed = SplitDigitalStrategy(digits_cnn, "conv2", 2, bottleneck=bottleneck)
    cost = squeezed.cost((8, 8, 1), "awgn")
    assert (cost.payload_bits, cost.channel_uses) == (32, 512)
    assert cost.device_flops == front + 4 * (2 * 32 * 4 + 4)
    assert cost.server_flops == back + 4 * (2 * 4 * 32 + 32)
    assert bottleneck_flops(bottleneck, (2, 2, 32), "compress") == 4 * (2 * 32 * 4 + 4)


# slow: one more compilation of the LDPC link; the default suite covers its parts, the
# jitted receive and the server (test_eight_bits_at_40_db_within_the_quantiser_bound)
# and the cost (test_cost_hand_computed)
@pytest.mark.slow
def test_full_call_is_jitted_and_its_cost_exact(eight_bits, digits_cnn, digits_batch, key):
    strategy, receive = eight_bits
    images, _ = digits_batch
    outcome = jax.jit(strategy)(key, images, Link(snr_db=40.0))
    reception = receive(key, images, Link(snr_db=40.0))
    np.testing.assert_allclose(outcome.logits, strategy.server(reception.received), atol=1e-5)
    assert float(outcome.cost.payload_bits) == 1024
    assert float(outcome.cost.channel_uses) == 1024
    assert float(outcome.cost.device_flops) == flops(digits_cnn, (8, 8, 1), "conv2", "front")


def test_quantisers_hand_computed(digits_cnn):
    # unsigned, 2 bits, clip 3: levels 0, 1, 2, 3 (nearest; clipped outside)
    unsigned = SplitDigitalStrategy(digits_cnn, "conv2", 2, 3.0, signed=False)
    values = jnp.array([0.0, 0.4, 0.6, 2.9, 5.0, -1.0])
    bits = unsigned.quantize_to_bits(values)
    np.testing.assert_array_equal(bits[2], [0, 1])  # code 1, MSB first
    np.testing.assert_array_equal(bits[3], [1, 1])
    np.testing.assert_array_equal(unsigned.bits_to_values(bits), [0, 0, 1, 3, 3, 0])
    assert unsigned.quantization_error_bound == 0.5
    # signed, 2 bits, clip 2: phy.quantize's mid-rise levels -1.5, -0.5, 0.5, 1.5
    signed = SplitDigitalStrategy(digits_cnn, "conv2", 2, 2.0)
    values = jnp.array([0.1, -0.1, 1.9, -3.0])
    np.testing.assert_array_equal(
        signed.bits_to_values(signed.quantize_to_bits(values)), [0.5, -0.5, 1.5, -1.5]
    )
    assert signed.quantization_error_bound == 0.5


# --------------------------------------------------------------------------- the link's extremes


def test_eight_bits_at_40_db_within_the_quantiser_bound(eight_bits, digits_cnn, digits_batch, key):
    strategy, receive = eight_bits
    images, labels = digits_batch
    reception = receive(key, images, Link(snr_db=40.0))
    sent, received = np.asarray(reception.sent), np.asarray(reception.received)
    half_step = strategy.quantization_error_bound
    assert half_step == pytest.approx(strategy.clip / 255 / 2)  # levels i clip / 255
    assert np.abs(received - sent).max() <= half_step + ULPS * strategy.clip
    # every received value is a level, no bit was flipped, and zeros stay zeros
    levels = received / (2 * half_step)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert (sent == 0).mean() > 0.1  # ReLU features: many exact zeros
    np.testing.assert_array_equal(received[sent == 0], 0.0)
    np.testing.assert_allclose(sent, inference_copy(digits_cnn).front(images, "conv2"), atol=1e-6)
    # what leaves the device is what an error-free link delivers
    np.testing.assert_array_equal(strategy.message(images), received)
    logits = np.asarray(strategy.server(reception.received))
    full = np.asarray(digits_cnn(images))
    bound = logit_error_bound(digits_cnn, half_step)
    assert np.all(np.abs(logits - full) <= bound + FLOAT_SLACK)
    assert np.abs(logits - full).max() > 0  # 8 bits are not lossless
    assert abs(accuracy(logits, labels) - accuracy(full, labels)) <= 2 / len(labels)

    hopeless = receive(key, images, Link(snr_db=HOPELESS_SNR_DB))
    assert np.mean(np.abs(np.asarray(hopeless.received) - sent) > half_step * 1.01) > 0.3
    assert accuracy(strategy.server(hopeless.received), labels) <= chance_bound(labels)


# slow: another LDPC program (four blocks); the 8-bit case covers the quantiser bound
# over the link (test_eight_bits_at_40_db_within_the_quantiser_bound)
@pytest.mark.slow
def test_sixteen_bits_at_40_db_is_the_full_model(digits_cnn, digits_batch, key):
    images, _ = digits_batch
    clip = calibrate_clip(digits_cnn, "conv2", images, percentile=100)
    strategy = SplitDigitalStrategy(digits_cnn, "conv2", 16, clip, signed=False)
    reception = jax.jit(strategy.receive)(key, images, Link(snr_db=40.0))
    logits = np.asarray(strategy.server(reception.received))
    full = np.asarray(digits_cnn(images))
    np.testing.assert_array_equal(logits.argmax(-1), full.argmax(-1))
    bound = logit_error_bound(digits_cnn, strategy.quantization_error_bound)
    assert np.all(np.abs(logits - full) <= bound + FLOAT_SLACK)
    assert np.abs(logits - full).max() < 1e-3  # the triangle bound is loose; the error is not


def test_same_key_same_numbers(eight_bits, digits_batch):
    _, receive = eight_bits
    images, _ = digits_batch
    link = Link(snr_db=0.5)  # on the cliff: some blocks fail
    first = receive(jax.random.key(3), images, link).received
    again = receive(jax.random.key(3), images, link).received
    other = receive(jax.random.key(4), images, link).received
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# --------------------------------------------------------------------------- clip and bottleneck


def test_calibrate_clip_is_a_percentile_of_magnitudes(digits_cnn, digits):
    images = digits.train_images[:300]
    features = np.abs(np.asarray(inference_copy(digits_cnn).front(jnp.asarray(images), "hidden")))
    assert calibrate_clip(digits_cnn, "hidden", images, 100, batch_size=128) == pytest.approx(
        features.max(), rel=1e-6
    )
    # ReLU features: more than half of them are exact zeros, so a high percentile
    assert np.percentile(features, 90) > 0
    assert calibrate_clip(digits_cnn, "hidden", images, 90) == pytest.approx(
        np.percentile(features, 90), rel=1e-6
    )
    for bad in (0, 100.5, "high", True):
        with pytest.raises(ValueError, match="percentile"):
            calibrate_clip(digits_cnn, "hidden", images, bad)
    with pytest.raises(ValueError, match="split_point"):
        calibrate_clip(digits_cnn, "conv9", images)


@pytest.mark.slow
def test_trained_bottleneck_keeps_accuracy_at_64_bits(digits_cnn, digits, digits_batch, key):
    bits, channels = 2, 8  # 2 x 2 x 8 values x 2 bits = 64 bits, against 1024 at 8 bits
    trained = train_bottleneck(
        key, digits_cnn, "conv2", digits, bits=bits, channels=channels, steps=500
    )
    untrained = Bottleneck(32, channels, rngs=nnx.Rngs(0))
    images, labels = digits.test_images, digits.test_labels
    model = inference_copy(digits_cnn)

    def noiseless(bottleneck):
        code = bottleneck.compress(model.front(jnp.asarray(images), "conv2"))
        code = quantize.fake_quantize(code, bits, 1.0)
        return model.back(bottleneck.expand(code), "conv2")

    assert accuracy(noiseless(trained), labels) > 0.85
    assert accuracy(noiseless(untrained), labels) < 0.4

    strategy = SplitDigitalStrategy(digits_cnn, "conv2", bits, bottleneck=trained, block_bits=64)
    assert strategy.cost((8, 8, 1), "awgn")[:2] == (64, 64)
    batch, batch_labels = digits_batch
    reception = jax.jit(strategy.receive)(key, batch, Link(snr_db=40.0))
    sent = np.asarray(reception.sent)
    assert np.abs(np.asarray(reception.received) - sent).max() <= 0.25 + ULPS
    logits = strategy.server(reception.received)
    assert accuracy(logits, batch_labels) > 0.8


# --------------------------------------------------------------------------- bad input


def test_bad_input(digits_cnn, digits, digits_batch, key):
    images, _ = digits_batch
    bottleneck = Bottleneck(32, 4, rngs=nnx.Rngs(0))
    for bits in (0, 17, True, 4.0):
        with pytest.raises(ValueError, match="bits"):
            SplitDigitalStrategy(digits_cnn, "conv2", bits, 1.0)
    with pytest.raises(ValueError, match="split_point"):
        SplitDigitalStrategy(digits_cnn, "logits", 8, 1.0)
    with pytest.raises(ValueError, match="clip: None"):
        SplitDigitalStrategy(digits_cnn, "conv2", 8)
    for clip in (-1.0, float("inf"), "1"):
        with pytest.raises(ValueError, match="clip"):
            SplitDigitalStrategy(digits_cnn, "conv2", 8, clip)
    with pytest.raises(ValueError, match="clip: 2.0 given with a bottleneck"):
        SplitDigitalStrategy(digits_cnn, "conv2", 8, 2.0, bottleneck=bottleneck)
    with pytest.raises(ValueError, match="signed"):
        SplitDigitalStrategy(digits_cnn, "conv2", 8, signed=False, bottleneck=bottleneck)
    with pytest.raises(ValueError, match="code_rate"):
        SplitDigitalStrategy(digits_cnn, "conv2", 8, 1.0, code_rate=1.5)
    with pytest.raises(ValueError, match="model"):
        SplitDigitalStrategy("cnn", "conv2", 8, 1.0)
    strategy = SplitDigitalStrategy(digits_cnn, "conv2", 8, 1.0)
    with pytest.raises(ValueError, match="images: shape"):
        strategy(key, images[0], Link(snr_db=0.0))
    wrong_place = SplitDigitalStrategy(digits_cnn, "hidden", 8, bottleneck=bottleneck)
    with pytest.raises(ValueError, match="bottleneck: takes 32 features"):
        wrong_place(key, images, Link(snr_db=0.0))
    with pytest.raises(ValueError, match="steps"):
        train_bottleneck(key, digits_cnn, "conv2", digits, bits=2, channels=4, steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_bottleneck(key, digits_cnn, "conv2", digits, bits=2, channels=4, steps=1,
                         batch_size=10**6)  # fmt: skip
    with pytest.raises(ValueError, match="dataset"):
        train_bottleneck(key, digits_cnn, "conv2", images, bits=2, channels=4, steps=1)
    with pytest.raises(ValueError, match="channels"):
        train_bottleneck(key, digits_cnn, "conv2", digits, bits=2, channels=0, steps=1)
