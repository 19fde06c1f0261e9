"""Cloud inference over the digital link: pixels and Pillow codecs, costs, errors."""

import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageFile

from airinfer.models.zoo import flops
from airinfer.strategies.base import Hardware, Link
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.codec import (
    ImageCodec,
    PixelFormat,
    bits_to_bytes,
    bytes_to_bits,
    channel_uses_per_sample,
    digital_link_config,
)
from airinfer.strategies.local import inference_copy

from .conftest import accuracy

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
def pixels_run(digits_cnn, digits_pixels):
    """The jitted pixel strategy over AWGN and its ``receive`` (compiled once per module)."""
    strategy = CloudStrategy(digits_cnn, digits_pixels, hardware=Hardware(symbol_rate_hz=2e6))
    return strategy, jax.jit(strategy), jax.jit(strategy.receive)


# --------------------------------------------------------------------------- pixels and bits


def test_pixel_codes_are_the_stored_pixels_exactly(digits, digits_pixels):
    codes = np.asarray(digits_pixels.to_codes(digits.test_images))
    stored = np.round(digits.test_images * digits.std + digits.mean)
    assert digits_pixels.scale == 15.0  # 0..16 -> 0..240: integer pixels are codes exactly
    np.testing.assert_array_equal(codes, 15 * stored)
    back = np.asarray(digits_pixels.from_codes(codes))
    # float32 rounding of (raw - mean) / std only
    np.testing.assert_allclose(back, digits.test_images, rtol=0, atol=2e-6)
    eight_bit = PixelFormat((33.0,), (70.0,), 255.0)
    raw = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1)
    codes = eight_bit.to_codes((raw - 33.0) / 70.0)
    assert eight_bit.scale == 1.0
    np.testing.assert_array_equal(codes, raw)


def test_bytes_and_bits():
    data = jnp.array([[0b10110001, 0, 255]], jnp.uint8)
    bits = bytes_to_bits(data)
    np.testing.assert_array_equal(bits[0, :8], [1, 0, 1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(bits[0, 8:16], 0)
    np.testing.assert_array_equal(bits[0, 16:], 1)
    np.testing.assert_array_equal(bits_to_bytes(bits), data)
    with pytest.raises(ValueError, match="multiple of 8"):
        bits_to_bytes(jnp.zeros((1, 12)))


def test_pixel_format_bad_input(digits):
    with pytest.raises(ValueError, match="std"):
        PixelFormat((0.0,), (0.0,))
    with pytest.raises(ValueError, match="mean and std"):
        PixelFormat((0.0, 1.0), (1.0,))
    with pytest.raises(ValueError, match="max_value"):
        PixelFormat((0.0,), (1.0,), 300.0)
    with pytest.raises(ValueError, match="images: 3 channels"):
        PixelFormat.for_dataset(digits).to_codes(jnp.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="pixel range"):
        PixelFormat.for_dataset(type("Fake", (), {"name": "mnist"})())


# --------------------------------------------------------------------------- codecs on the host


@pytest.mark.parametrize(
    "codec",
    [ImageCodec("jpeg", 50), ImageCodec("jpeg", 90, "shared"), ImageCodec("webp", 50)],
    ids=["jpeg", "jpeg-shared", "webp"],
)
def test_codec_round_trip_is_pillows(codec, digits, digits_pixels):
    codes = np.asarray(digits_pixels.to_codes(digits.test_images[:16]))
    encoded = codec.encode(codes, 1024)
    decoded = codec.decode(encoded.streams, encoded.lengths, (8, 8, 1))
    assert not decoded.failed.any()
    for b in range(16):
        data = encoded.streams[b, : encoded.lengths[b]].tobytes()
        assert not encoded.streams[b, encoded.lengths[b] :].any()
        if codec.jpeg_tables == "shared":
            # the abbreviated stream carries no tables: the receiver adds them
            assert b"\xff\xdb" not in data and len(data) < 150
            inline = ImageCodec("jpeg", codec.quality).encode_one(codes[b])
            expected = np.asarray(Image.open(io.BytesIO(inline)))
        else:
            expected = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        np.testing.assert_array_equal(decoded.codes[b, ..., 0], expected)
    # lossy, but close: a codec's own error, not garbage (codes span 0..240)
    assert np.abs(decoded.codes.astype(int) - codes).mean() < 20


def test_corrupted_streams_decode_or_fail_and_restore_pillow(digits, digits_pixels):
    codec = ImageCodec("jpeg", 75)
    codes = np.asarray(digits_pixels.to_codes(digits.test_images[:2]))
    encoded = codec.encode(codes, 1024)
    clean = codec.decode(encoded.streams, encoded.lengths, (8, 8, 1))
    truncated = encoded.lengths.copy()
    truncated[0] -= 20  # entropy-coded data cut short: decoded as far as it goes
    streams = encoded.streams.copy()
    streams[1, :16] = 0  # no JPEG header at all: a failure
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    damaged = codec.decode(streams, truncated, (8, 8, 1))
    assert ImageFile.LOAD_TRUNCATED_IMAGES == before
    np.testing.assert_array_equal(damaged.failed, [False, True])
    assert not np.array_equal(damaged.codes[0], clean.codes[0])
    np.testing.assert_array_equal(damaged.codes[1], 0)


def test_codec_bad_input():
    with pytest.raises(ValueError, match="format"):
        ImageCodec("png")
    with pytest.raises(ValueError, match="quality"):
        ImageCodec("jpeg", 0)
    with pytest.raises(ValueError, match="quality"):
        ImageCodec("webp", 101)
    with pytest.raises(ValueError, match="jpeg_tables"):
        ImageCodec("jpeg", 50, "none")
    with pytest.raises(ValueError, match="2 channels"):
        ImageCodec("jpeg").encode(np.zeros((1, 8, 8, 2), np.uint8), 1024)
    noise = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match="max_bytes"):
        ImageCodec("jpeg", 95).encode(noise, 100)
    # the default buffer holds the least compressible content with room to spare
    bound = ImageCodec("jpeg", 100).stream_bound((8, 8, 1))
    assert len(ImageCodec("jpeg", 100).encode_one(noise[0])) < bound


# --------------------------------------------------------------------------- costs


def test_link_cost_hand_computed():
    # 8x8x1 pixels: 512 bits; k = 512, n = 1024, QPSK: 1 block of 512 symbols
    qpsk = digital_link_config("awgn", "qpsk", 0.5, 512)
    assert channel_uses_per_sample(8 * 8 * 8, qpsk) == 512
    # k = 256, rate 1/3 -> n = 768; 16-QAM: 192 symbols per block, 2 blocks
    qam = digital_link_config("rayleigh", "16qam", 1 / 3, 256)
    assert (qam.n, qam.channel) == (768, "rayleigh")
    assert channel_uses_per_sample(512, qam) == 384
    assert channel_uses_per_sample(513, qam) == 576  # one bit more: a third block
    np.testing.assert_array_equal(
        channel_uses_per_sample(jnp.array([1, 256, 257]), qam), [192, 192, 384]
    )


def test_pixels_cost_exact(pixels_run, digits_cnn, digits_batch, key):
    strategy, run, _ = pixels_run
    outcome = run(key, digits_batch[0], Link(snr_db=40.0))
    server = flops(digits_cnn, (8, 8, 1))
    assert float(outcome.cost.payload_bits) == 512
    assert float(outcome.cost.channel_uses) == 512
    assert float(outcome.cost.device_flops) == 0
    assert float(outcome.cost.server_flops) == server
    server_speed = strategy.hardware.server_flops_per_s
    assert float(outcome.cost.latency_s) == pytest.approx(512 / 2e6 + server / server_speed, 1e-6)
    assert strategy.name == "cloud_digital"


# --------------------------------------------------------------------------- the link


def test_pixels_high_snr_equals_noiseless_and_hopeless_snr_is_chance(
    pixels_run, digits_cnn, digits_pixels, digits_batch, key
):
    _, run, receive = pixels_run
    images, labels = digits_batch
    codes = digits_pixels.to_codes(images)
    noiseless = digits_pixels.from_codes(codes)
    reception = receive(key, images, Link(snr_db=40.0))
    np.testing.assert_array_equal(reception.codes, codes)
    np.testing.assert_array_equal(pixels_run[0].message(images), codes)  # the raw pixels leave
    # the same arithmetic, compiled in another program: float32 rounding apart
    np.testing.assert_allclose(reception.images, noiseless, rtol=0, atol=1e-6)
    assert not reception.decode_failed.any()
    outcome = run(key, images, Link(snr_db=40.0))
    reference = digits_cnn(noiseless)
    np.testing.assert_allclose(outcome.logits, reference, rtol=1e-5, atol=1e-5)
    assert accuracy(outcome.logits, labels) == accuracy(reference, labels) > 0.85
    # same compiled program, SNR 70 dB lower
    garbled = receive(key, images, Link(snr_db=HOPELESS_SNR_DB))
    assert np.mean(np.asarray(garbled.codes) != np.asarray(codes)) > 0.5
    hopeless = run(key, images, Link(snr_db=HOPELESS_SNR_DB))
    assert accuracy(hopeless.logits, labels) <= chance_bound(labels)


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
    _, run, receive = pixels_run
    images, _ = digits_batch
    link = Link(snr_db=0.5)  # on the cliff: some blocks fail
    first = run(jax.random.key(7), images, link)
    second = run(jax.random.key(7), images, link)
    np.testing.assert_array_equal(first.logits, second.logits)
    one = receive(jax.random.key(7), images, link).codes
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
    with pytest.raises(ValueError, match="'tdl-a' has no digital path"):
        strategy(key, images, Link(snr_db=10.0, channel="tdl-a"))
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
