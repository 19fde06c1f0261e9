"""Cloud inference over the digital link: pixels and Pillow codecs, costs, errors.

The codecs alone: tests/phy/test_source_coding.py.
"""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.models.zoo import flops
from airinfer.phy.source_coding import ImageCodec
from airinfer.strategies.base import Link
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.cost import Hardware
from airinfer.strategies.local import inference_copy

from .conftest import accuracy

# Long programs (LDPC decoding of 128 images' blocks): full XLA optimisation
# pays (tests/conftest.py).
pytestmark = pytest.mark.xla_optimized

# Below the LDPC cliff by 30 dB every decided bit is a coin flip: the image the
# server sees is independent of the label, so the expected accuracy is
# sum_c P(pred = c) P(label = c) <= max_c P(label = c). Four binomial standard
# deviations of 128 samples at p = 0.15 (sqrt(p (1 - p) / 128) = 0.032) on top.
CHANCE_SIGMAS = 4.0
HOPELESS_SNR_DB = -30.0


def chance_bound(labels) -> float:
    top = np.bincount(np.asarray(labels)).max() / len(labels)
    return top + CHANCE_SIGMAS * math.sqrt(top * (1 - top) / len(labels))


@pytest.fixture(scope="module")
def pixels_run(new_digits_cnn, digits_pixels):
    """The pixel strategy over AWGN and its jitted ``receive`` (compiled once per module).

    Only ``receive`` is compiled here: the jitted full call (``receive``, the model and
    the cost) would compile the LDPC link a second time. It runs jitted in
    tests/strategies/test_mcs.py (test_a_fixed_mcs_runs_on_the_link, through
    ``outcome_with_crc``, which ``__call__`` returns the first half of).
    """
    strategy = CloudStrategy(new_digits_cnn(), digits_pixels, hardware=Hardware(symbol_rate_hz=2e6))
    return strategy, jax.jit(strategy.receive)


# --------------------------------------------------------------------------- costs


def test_pixels_cost_exact(pixels_run, digits_cnn, digits_batch, key):
    strategy, receive = pixels_run
    # the cost of a jitted reception, as __call__ computes it
    cost = strategy.cost(receive(key, digits_batch[0], Link(snr_db=40.0)), "awgn")
    server = flops(digits_cnn, (8, 8, 1))
    assert float(cost.payload_bits) == 512
    assert float(cost.channel_uses) == 512
    assert float(cost.device_flops) == 0
    assert float(cost.server_flops) == server
    server_speed = strategy.hardware.server_flops_per_s
    assert float(cost.latency_s) == pytest.approx(512 / 2e6 + server / server_speed, 1e-6)
    assert strategy.name == "cloud_digital"


# --------------------------------------------------------------------------- the link


def test_pixels_high_snr_equals_noiseless_and_hopeless_snr_is_chance(
    pixels_run, digits_cnn, digits_pixels, digits_batch, key
):
    strategy, receive = pixels_run
    images, labels = digits_batch
    codes = digits_pixels.to_codes(images)
    noiseless = digits_pixels.from_codes(codes)
    reception = receive(key, images, Link(snr_db=40.0))
    np.testing.assert_array_equal(reception.codes, codes)
    np.testing.assert_array_equal(strategy.message(images), codes)  # the raw pixels leave
    # ... and reach the server (or an eavesdropper) whole: ``received`` on the compiled
    # ``receive`` (eagerly, the Sionna link would cost a third of this file's time)
    compiled = types.SimpleNamespace(receive=receive)
    received = CloudStrategy.received(compiled, key, images, Link(snr_db=40.0))
    np.testing.assert_array_equal(received, codes)
    # the same arithmetic, compiled in another program: float32 rounding apart
    np.testing.assert_allclose(reception.images, noiseless, rtol=0, atol=1e-6)
    assert not reception.decode_failed.any()
    server = inference_copy(digits_cnn)
    logits = server(reception.images)
    reference = digits_cnn(noiseless)
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)
    assert accuracy(logits, labels) == accuracy(reference, labels) > 0.85
    # same compiled program, SNR 70 dB lower
    garbled = receive(key, images, Link(snr_db=HOPELESS_SNR_DB))
    assert np.mean(np.asarray(garbled.codes) != np.asarray(codes)) > 0.5
    assert accuracy(server(garbled.images), labels) <= chance_bound(labels)


@pytest.mark.slow
def test_pixels_rayleigh_any_backend_high_snr_equals_noiseless(
    digits_cnn, digits_pixels, digits_batch, key
):
    images, _ = digits_batch
    strategy = CloudStrategy(digits_cnn, digits_pixels)
    # the digital link is Sionna's only: backend "jax" runs the same link
    link = Link(snr_db=40.0, channel="rayleigh", backend="jax")
    reception = jax.jit(strategy.receive)(key, images, link)
    np.testing.assert_array_equal(reception.codes, digits_pixels.to_codes(images))


def test_same_key_same_numbers(pixels_run, digits_batch):
    _, receive = pixels_run
    images, _ = digits_batch
    link = Link(snr_db=0.5)  # on the cliff: some blocks fail
    first = receive(jax.random.key(7), images, link)
    second = receive(jax.random.key(7), images, link)
    np.testing.assert_array_equal(first.images, second.images)
    one = first.codes
    other = receive(jax.random.key(8), images, link).codes
    assert not np.array_equal(one, other)


@pytest.mark.parametrize(
    "source, quality, full_call",
    [("jpeg", 50, False), pytest.param("webp", 50, True, marks=pytest.mark.slow)],
)
def test_codec_high_snr_is_the_clean_decode_and_low_snr_fails_to_neutral(
    source, quality, full_call, digits_cnn, digits_pixels, digits_batch, key
):
    images, labels = digits_batch
    strategy = CloudStrategy(digits_cnn, digits_pixels, source=source, quality=quality)
    codec = ImageCodec(source, quality)
    codes = np.asarray(digits_pixels.to_codes(images))
    encoded = codec.encode(codes, strategy.buffer_bytes((8, 8, 1)))
    clean = codec.decode(encoded.streams, encoded.lengths, (8, 8, 1)).codes
    receive = jax.jit(strategy.receive)
    server = inference_copy(digits_cnn)

    reception = receive(key, images, Link(snr_db=40.0))
    np.testing.assert_array_equal(reception.codes, clean)
    np.testing.assert_array_equal(strategy.message(images), clean)  # what an eavesdropper decodes
    np.testing.assert_allclose(reception.images, digits_pixels.from_codes(clean), atol=1e-6)
    assert not reception.decode_failed.any()
    np.testing.assert_array_equal(reception.payload_bits, 8 * encoded.lengths)
    blocks = -(-8 * encoded.lengths // 512)
    np.testing.assert_array_equal(reception.channel_uses, blocks * 512)
    cost = strategy.cost(reception, "awgn")
    assert float(cost.payload_bits) == pytest.approx(8 * encoded.lengths.mean(), 1e-6)
    assert float(cost.channel_uses) == pytest.approx(512 * blocks.mean(), 1e-6)
    assert accuracy(server(reception.images), labels) > 0.8
    assert strategy.name == f"cloud_digital_{source}_q{quality}"
    if full_call:
        outcome = jax.jit(strategy)(key, images, Link(snr_db=40.0))
        np.testing.assert_allclose(outcome.logits, server(reception.images), atol=1e-5)
        assert float(outcome.cost.payload_bits) == pytest.approx(float(cost.payload_bits), 1e-6)

    garbled = receive(key, images, Link(snr_db=HOPELESS_SNR_DB))
    failed = np.asarray(garbled.decode_failed)
    assert failed.sum() > 0  # headers destroyed: Pillow cannot open them
    np.testing.assert_array_equal(np.asarray(garbled.images)[failed], 0.0)  # the neutral image
    assert np.isfinite(garbled.images).all()
    assert accuracy(server(garbled.images), labels) <= chance_bound(labels)


def test_bad_input(digits_cnn, digits_pixels, digits_batch, key):
    images, _ = digits_batch
    strategy = CloudStrategy(digits_cnn, digits_pixels)
    with pytest.raises(ValueError, match="images: 3 channels"):
        strategy(key, jnp.zeros((2, 8, 8, 3)), Link(snr_db=10.0))
    with pytest.raises(ValueError, match="images: shape"):
        strategy(key, images[0], Link(snr_db=10.0))
    with pytest.raises(ValueError, match="source"):
        CloudStrategy(digits_cnn, digits_pixels, source="png")
    with pytest.raises(ValueError, match="quality"):
        CloudStrategy(digits_cnn, digits_pixels, source="jpeg", quality=0)
    with pytest.raises(ValueError, match="code_rate: 0.3 gives a fractional"):
        CloudStrategy(digits_cnn, digits_pixels, code_rate=0.3)
    with pytest.raises(ValueError, match="k must be in"):
        CloudStrategy(digits_cnn, digits_pixels, block_bits=8)
    with pytest.raises(ValueError, match="modulation"):
        CloudStrategy(digits_cnn, digits_pixels, modulation="8psk")
    with pytest.raises(ValueError, match="max_bytes"):
        CloudStrategy(digits_cnn, digits_pixels, source="webp", max_bytes=0)
    with pytest.raises(ValueError, match="pixel_format"):
        CloudStrategy(digits_cnn, (0.0, 1.0))
    with pytest.raises(ValueError, match="model"):
        CloudStrategy(None, digits_pixels)


def test_names_tell_the_source_apart(digits_cnn, digits_pixels):
    def name(**fields):
        return CloudStrategy(digits_cnn, digits_pixels, **fields).name

    assert name() == "cloud_digital"
    assert name(source="webp", quality=30) == "cloud_digital_webp_q30"
    assert name(source="jpeg", quality=30) == "cloud_digital_jpeg_q30"
    assert name(source="jpeg", quality=30, jpeg_tables="shared") == "cloud_digital_jpeg_shared_q30"
