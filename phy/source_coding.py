"""Source coding of images for the digital strategies: 8-bit pixels, JPEG/WebP through Pillow.

Two pieces that the cloud and split-digital strategies share:

* :class:`PixelFormat` undoes a data set's normalisation and maps images to
  uniform 8-bit codes and back (jit-able). Data sets hold images normalised per
  channel, ``x = (raw - mean) / std`` (:func:`airinfer.models.datasets.load_dataset`),
  where ``raw`` are the stored pixels: integers ``0..16`` for ``digits``,
  ``0..255`` for ``fashion_mnist`` and ``cifar10``. The 8-bit code is
  ``round(raw * scale)`` with the integer ``scale = 255 // max_value`` (15 for
  digits, 1 for 8-bit data), so integer pixels are codes exactly and the round
  trip is exact up to float32 rounding of the normalisation.
* :class:`ImageCodec` encodes 8-bit images as JPEG or WebP with Pillow on the
  host and decodes whatever bytes arrive, corrupted or not. Pillow is not
  jit-able; :meth:`ImageCodec.encode_jax` and :meth:`ImageCodec.decode_jax`
  reach it with ``jax.pure_callback`` through fixed-size byte buffers (a
  bound ``max_bytes`` per image) plus each stream's true length.

:func:`bytes_to_bits` and :func:`bits_to_bytes` turn streams into the bits
that :func:`airinfer.phy.digital_payload.send_bits` carries over the digital link.
"""

import contextlib
import dataclasses
import functools
import io
import math
import threading
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageFile

from airinfer.phy import quantize

__all__ = [
    "CODEC_FORMATS",
    "JPEG_TABLES",
    "DATASET_MAX_VALUE",
    "PixelFormat",
    "ImageCodec",
    "EncodedImages",
    "DecodedImages",
    "bytes_to_bits",
    "bits_to_bytes",
]

CODEC_FORMATS = ("jpeg", "webp")
JPEG_TABLES = ("inline", "shared")
#: Full scale of each data set's stored pixels (``load_dataset`` keeps them as they are).
DATASET_MAX_VALUE = {"digits": 16.0, "fashion_mnist": 255.0, "cifar10": 255.0}

_PIL_MODES = {1: "L", 3: "RGB"}
_PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


# ---------------------------------------------------------------------------
# 8-bit pixels


@dataclasses.dataclass(frozen=True)
class PixelFormat:
    """How normalised images map to 8-bit pixel codes and back.

    Parameters:
        mean: per-channel mean of the stored pixels that was subtracted
            (``Dataset.mean``), one float per channel.
        std: per-channel standard deviation that divided them (``Dataset.std``), > 0.
        max_value: full scale of the stored pixels (16 for digits, 255 for 8-bit data).

    The code of a stored pixel ``raw`` is ``clip(round(raw * scale), 0, 255)``
    with ``scale = 255 // max_value`` when ``max_value`` is a whole number
    (integer pixels are then codes exactly), ``255 / max_value`` otherwise.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_value: float = 255.0

    def __post_init__(self):
        mean = tuple(float(m) for m in np.atleast_1d(np.asarray(self.mean, np.float32)))
        std = tuple(float(s) for s in np.atleast_1d(np.asarray(self.std, np.float32)))
        if len(mean) != len(std):
            raise ValueError(f"mean and std: {len(mean)} and {len(std)} channels differ")
        if not all(math.isfinite(m) for m in mean):
            raise ValueError(f"mean: {self.mean!r} is not finite")
        if not all(math.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"std: {self.std!r} is not finite and > 0 in every channel")
        if not (isinstance(self.max_value, int | float) and 0 < self.max_value <= 255):
            raise ValueError(f"max_value: {self.max_value!r} is not a number in (0, 255]")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "max_value", float(self.max_value))

    @classmethod
    def for_dataset(cls, dataset) -> "PixelFormat":
        """The format (normalisation, pixel range) of a ``Dataset``."""
        if dataset.name not in DATASET_MAX_VALUE:
            raise ValueError(
                f"dataset: {dataset.name!r} has no known pixel range; "
                f"known: {', '.join(DATASET_MAX_VALUE)}"
            )
        return cls(tuple(dataset.mean), tuple(dataset.std), DATASET_MAX_VALUE[dataset.name])

    @property
    def channels(self) -> int:
        """Number of image channels ``C``."""
        return len(self.mean)

    @property
    def scale(self) -> float:
        """Code units per stored-pixel unit."""
        if self.max_value.is_integer():
            return float(255 // int(self.max_value))
        return 255.0 / self.max_value

    def check_images(self, images):
        """Raise ValueError unless ``images`` is ``[B, H, W, C]`` with this format's ``C``."""
        shape = jnp.shape(images)
        if len(shape) != 4 or shape[0] < 1:
            raise ValueError(f"images: shape {tuple(shape)} is not [batch >= 1, H, W, C]")
        if shape[-1] != self.channels:
            raise ValueError(
                f"images: {shape[-1]} channels, but the pixel format has {self.channels}"
            )

    def to_codes(self, images):
        """Normalised images ``[B, H, W, C]`` float -> 8-bit codes ``[B, H, W, C]`` uint8."""
        self.check_images(images)
        raw = jnp.asarray(images, jnp.float32) * jnp.asarray(self.std) + jnp.asarray(self.mean)
        return jnp.clip(jnp.round(raw * self.scale), 0, 255).astype(jnp.uint8)

    def from_codes(self, codes):
        """8-bit codes ``[B, H, W, C]`` -> normalised images ``[B, H, W, C]`` float32."""
        raw = jnp.asarray(codes, jnp.float32) / self.scale
        return (raw - jnp.asarray(self.mean)) / jnp.asarray(self.std)


# ---------------------------------------------------------------------------
# Bytes and bits


def bytes_to_bits(data):
    """Bytes ``[..., L]`` (uint8 or ints in 0..255) -> bits ``[..., 8 L]`` float32, MSB first."""
    data = jnp.asarray(data)
    bits = quantize.codes_to_bits(data.astype(jnp.int32), 8)
    return bits.reshape(*data.shape[:-1], data.shape[-1] * 8)


def bits_to_bytes(bits):
    """Bits ``[..., 8 L]`` of 0/1 (MSB first) -> bytes ``[..., L]`` uint8."""
    bits = jnp.asarray(bits)
    if bits.shape[-1] % 8:
        raise ValueError(f"bits: last axis {bits.shape[-1]} is not a multiple of 8")
    grouped = bits.reshape(*bits.shape[:-1], bits.shape[-1] // 8, 8)
    return quantize.bits_to_codes(grouped).astype(jnp.uint8)


# ---------------------------------------------------------------------------
# Image codecs through Pillow


class EncodedImages(NamedTuple):
    """Encoded streams in fixed-size buffers.

    Attributes:
        streams: ``[B, max_bytes]`` uint8, stream ``b`` in ``streams[b, :lengths[b]]``, zeros after.
        lengths: ``[B]`` int32, bytes of each stream (what is sent).
    """

    streams: np.ndarray
    lengths: np.ndarray


class DecodedImages(NamedTuple):
    """What the receiver's decoder made of the streams.

    Attributes:
        codes: ``[B, H, W, C]`` uint8 pixels (zeros where decoding failed).
        failed: ``[B]`` bool, Pillow could not decode the stream at all.
    """

    codes: np.ndarray
    failed: np.ndarray


_TRUNCATED_LOCK = threading.Lock()


@contextlib.contextmanager
def _load_truncated_images():
    """Let Pillow decode truncated/corrupted streams as far as they go, then restore the flag.

    The flag is a Pillow module global; the lock keeps concurrent decodes in
    this process from restoring it under each other.
    """
    with _TRUNCATED_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


@dataclasses.dataclass(frozen=True)
class ImageCodec:
    """A lossy image codec of Pillow at a fixed quality.

    Parameters:
        format: ``"jpeg"`` or ``"webp"``.
        quality: Pillow's quality, an int in ``[1, 100]``.
        jpeg_tables: ``"inline"``: standard JPEG files with their quantisation
            and Huffman tables (about 570 bytes for grey images); ``"shared"``:
            JPEG's abbreviated format, where the tables are fixed by the
            quality and known to both ends, so only the image stream is sent
            and the receiver puts the tables in front of it. Decoded pixels
            are the same either way. Ignored for WebP.
    """

    format: str = "jpeg"
    quality: int = 75
    jpeg_tables: str = "inline"

    def __post_init__(self):
        if self.format not in CODEC_FORMATS:
            raise ValueError(
                f"format: unknown {self.format!r}; allowed: {', '.join(CODEC_FORMATS)}"
            )
        if not _is_int(self.quality) or not 1 <= self.quality <= 100:
            raise ValueError(f"quality: {self.quality!r} is not an int in [1, 100]")
        if self.jpeg_tables not in JPEG_TABLES:
            raise ValueError(
                f"jpeg_tables: unknown {self.jpeg_tables!r}; allowed: {', '.join(JPEG_TABLES)}"
            )

    @property
    def _shared_tables(self) -> bool:
        return self.format == "jpeg" and self.jpeg_tables == "shared"

    @staticmethod
    def _mode(channels: int) -> str:
        if channels not in _PIL_MODES:
            raise ValueError(f"images: {channels} channels; the codecs take 1 (grey) or 3 (RGB)")
        return _PIL_MODES[channels]

    def _save(self, image: np.ndarray, **extra) -> bytes:
        buffer = io.BytesIO()
        pil = Image.fromarray(image.reshape(image.shape[:2]) if image.shape[2] == 1 else image)
        pil.save(buffer, _PIL_FORMATS[self.format], quality=self.quality, **extra)
        return buffer.getvalue()

    def encode_one(self, image: np.ndarray) -> bytes:
        """One ``[H, W, C]`` uint8 image -> the bytes that are sent."""
        image = np.asarray(image)
        if image.ndim != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: {image.dtype}{list(image.shape)} is not uint8 [H, W, C]")
        self._mode(image.shape[2])
        # streamtype 2: libjpeg's abbreviated image stream, without tables
        return self._save(image, streamtype=2) if self._shared_tables else self._save(image)

    @functools.cache  # noqa: B019 (frozen and hashable: one entry per codec and mode)
    def _tables(self, mode: str) -> bytes:
        """The tables-only JPEG stream (SOI, DQT, DHT, EOI) of this quality and mode."""
        blank = np.zeros((8, 8, 1 if mode == "L" else 3), np.uint8)
        return self._save(blank, streamtype=1)

    def decode_one(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray | None:
        """Received bytes -> ``[H, W, C]`` uint8, or None when Pillow cannot decode them.

        A stream that opens with the expected size is decoded as far as its
        data allow (truncated or corrupted entropy-coded data give a damaged
        image, not a failure); a header that does not parse, the wrong image
        size, or any error of Pillow's decoder is a failure.
        """
        height, width, channels = shape
        mode = self._mode(channels)
        if self._shared_tables:
            # the tables' EOI and the stream's SOI cancel: one interchange stream
            data = self._tables(mode)[:-2] + data[2:]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow warns on odd headers; a failure is counted
                with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[self.format]]) as image:
                    if image.size != (width, height):
                        return None
                    image.load()
                    pixels = np.asarray(image.convert(mode), np.uint8)
        except Exception:  # noqa: BLE001 (corrupted streams raise many kinds of errors)
            return None
        return pixels.reshape(height, width, channels)

    def encode(self, codes: np.ndarray, max_bytes: int) -> EncodedImages:
        """Encode ``[B, H, W, C]`` uint8 images into ``[B, max_bytes]`` buffers (host, NumPy).

        Raises ValueError when a stream is longer than ``max_bytes``.
        """
        codes = np.asarray(codes, np.uint8)
        if codes.ndim != 4:
            raise ValueError(f"codes: shape {list(codes.shape)} is not [B, H, W, C]")
        streams = np.zeros((codes.shape[0], max_bytes), np.uint8)
        lengths = np.zeros(codes.shape[0], np.int32)
        for b, image in enumerate(codes):
            data = self.encode_one(image)
            if len(data) > max_bytes:
                raise ValueError(
                    f"max_bytes: {self.format} stream of image {b} has {len(data)} bytes, "
                    f"more than max_bytes={max_bytes}; raise max_bytes"
                )
            streams[b, : len(data)] = np.frombuffer(data, np.uint8)
            lengths[b] = len(data)
        return EncodedImages(streams, lengths)

    def decode(self, streams: np.ndarray, lengths: np.ndarray, shape) -> DecodedImages:
        """Decode each ``streams[b, :lengths[b]]`` into ``[H, W, C]`` uint8 (host, NumPy)."""
        streams = np.asarray(streams, np.uint8)
        lengths = np.asarray(lengths)
        shape = tuple(int(d) for d in shape)
        codes = np.zeros((streams.shape[0], *shape), np.uint8)
        failed = np.zeros(streams.shape[0], bool)
        with _load_truncated_images():
            for b in range(streams.shape[0]):
                image = self.decode_one(streams[b, : int(lengths[b])].tobytes(), shape)
                if image is None:
                    failed[b] = True
                else:
                    codes[b] = image
        return DecodedImages(codes, failed)

    def stream_bound(self, shape: tuple[int, int, int]) -> int:
        """A default ``max_bytes`` for ``[H, W, C]`` images: 1.5x the stream of uniform noise.

        Noise is about the least compressible content; the margin covers the
        rest, and :meth:`encode` raises if a stream still does not fit.
        """
        noise = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        return int(math.ceil(1.5 * len(self.encode_one(noise)))) + 64

    def encode_jax(self, codes, max_bytes: int) -> tuple[jax.Array, jax.Array]:
        """:meth:`encode` from JAX (jit-able): ``codes [B, H, W, C]`` uint8 -> streams, lengths."""
        batch = codes.shape[0]
        out = (
            jax.ShapeDtypeStruct((batch, max_bytes), jnp.uint8),
            jax.ShapeDtypeStruct((batch,), jnp.int32),
        )

        def host(codes):
            return tuple(self.encode(np.asarray(codes), max_bytes))

        return jax.pure_callback(host, out, codes, vmap_method="sequential")

    def decode_jax(self, streams, lengths, shape) -> tuple[jax.Array, jax.Array]:
        """:meth:`decode` from JAX (jit-able): -> ``codes [B, H, W, C]`` uint8, ``failed [B]``."""
        shape = tuple(int(d) for d in shape)
        batch = streams.shape[0]
        out = (
            jax.ShapeDtypeStruct((batch, *shape), jnp.uint8),
            jax.ShapeDtypeStruct((batch,), jnp.bool_),
        )

        def host(streams, lengths):
            return tuple(self.decode(np.asarray(streams), np.asarray(lengths), shape))

        return jax.pure_callback(host, out, streams, lengths, vmap_method="sequential")
