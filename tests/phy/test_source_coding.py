"""Source coding of images: 8-bit pixel codes, bytes and bits, JPEG/WebP through Pillow."""

import io

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageFile

from airinfer.phy.source_coding import ImageCodec, PixelFormat, bits_to_bytes, bytes_to_bits


@pytest.fixture(scope="module")
def digits_pixels(digits):
    """The :class:`PixelFormat` of ``digits`` (pixels 0..16)."""
    return PixelFormat.for_dataset(digits)


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
