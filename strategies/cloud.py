"""Cloud inference: the device sends its raw input over a digital link, the server classifies it.

The device does no inference; it turns its image into bits and sends them
with 5G LDPC + Gray QAM (:mod:`airinfer.phy.digital`, Sionna) over the link's channel.
The server's full model sees the image rebuilt from the *decided* bits, bit
errors and all. Two sources:

* ``"pixels"``: uniform 8-bit pixels (:class:`~airinfer.phy.source_coding.PixelFormat`),
  ``H W C 8`` bits per image, MSB first, into LDPC blocks (the last padded).
  A bit error changes one pixel's code.
* ``"jpeg"`` / ``"webp"``: the 8-bit image encoded by Pillow at ``quality``
  (:class:`~airinfer.phy.source_coding.ImageCodec`); the stream's bits are sent and the
  server decodes the received bytes with Pillow. A corrupted stream is
  decoded as far as it goes; where Pillow cannot decode it at all, the server
  sees a neutral image (the training mean: all zeros once normalised) and the
  failure is counted (:meth:`CloudStrategy.receive`). Stream lengths vary per
  image; the number of blocks of each is side information assumed to arrive
  intact (a few bits of control signalling, not counted).

The digital link runs on ``Link.backend``: Sionna's blocks, or their JAX twins
(``"jax"``, no TensorFlow; not yet on ``"tdl-a"``), and ``Link.channel`` is
``"awgn"``, ``"rayleigh"`` (i.i.d. per-symbol fading, perfect CSI) or
``"tdl-a"`` (OFDM, a channel draw per codeword's slot, perfect CSI).

The link itself, source coding included, is an :class:`ImageLink`
(``CloudStrategy.uplink``), which the edge ensemble's ``direct`` observation
reuses to multicast an image to its neighbours. Every reception carries an
ideal CRC's verdict (``intact``: no bit of the image was decided wrong), which
the hybrid strategy consults before it trusts the server.

The link runs ``modulation`` at LDPC rate ``code_rate``, or a 5G NR MCS
(``mcs``, an index of 38.214 table ``mcs_table``: its QAM order ``Qm`` and rate
``R``, ``n = Qm ceil(k / (R Qm))``); :func:`airinfer.strategies.adaptation.adapt_mcs`
sets ``mcs`` for an SNR.

Cost of one inference: channel uses ``ceil(bits / k) n / bits_per_symbol``
(mean over the batch for codecs), payload bits (mean over the batch for
codecs; JAX scalars then), 0 device FLOPs (the codec's work is not a model's
and is not counted), the full model's FLOPs on the server.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from airinfer.models.zoo import SplitClassifier, flops
from airinfer.phy.abstraction import message_intact
from airinfer.phy.digital_payload import (
    LinkSettings,
    channel_uses_per_sample,
    num_blocks,
    on_backend,
    send_bits,
)
from airinfer.phy.source_coding import ImageCodec, PixelFormat, bits_to_bytes, bytes_to_bits
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Cost, Hardware, make_cost
from airinfer.strategies.local import check_common, check_images, inference_copy

__all__ = ["SOURCES", "ImageLink", "CloudStrategy", "CloudReception"]

SOURCES = ("pixels", "jpeg", "webp")


class CloudReception(NamedTuple):
    """What reached the server.

    Attributes:
        codes: ``[B, H, W, C]`` uint8, the 8-bit pixels rebuilt from the
            decided bits (zeros where the codec failed).
        images: ``[B, H, W, C]`` float32, the normalised images the server's
            model sees: ``codes`` normalised, or the neutral image (zeros).
        payload_bits: ``[B]`` int32, info bits sent per image.
        channel_uses: ``[B]`` int32, complex channel uses per image.
        decode_failed: ``[B]`` bool, the codec could not decode the received
            stream and the server saw the neutral image (always False for pixels).
        intact: ``[B]`` bool, every sent bit was decided right: what an ideal
            CRC (one that detects every error, its bits not counted) reports.
    """

    codes: jax.Array
    images: jax.Array
    payload_bits: jax.Array
    channel_uses: jax.Array
    decode_failed: jax.Array
    intact: jax.Array


@dataclasses.dataclass(frozen=True)
class ImageLink:
    """How an image crosses the digital link: its source coding and the LDPC + QAM link.

    What :class:`CloudStrategy` sends to the server, and what a device
    multicasts to its neighbours (the edge ensemble's ``direct`` observation).
    Hashable (a static ``jax.jit`` argument).

    Parameters:
        pixel_format: the normalisation of the images and their stored pixel
            range (:meth:`PixelFormat.for_dataset`).
        source: ``"pixels"``, ``"jpeg"`` or ``"webp"``.
        quality: codec quality, an int in ``[1, 100]`` (ignored for pixels).
        jpeg_tables: ``"inline"`` (standard JPEG files) or ``"shared"``
            (abbreviated streams, tables known at both ends); see :class:`ImageCodec`.
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"`` (without an MCS).
        code_rate: LDPC rate ``k / n`` (without an MCS).
        block_bits: info bits ``k`` per LDPC block, in ``[12, 8448]``.
        max_bytes: codec buffer per image; None: :meth:`ImageCodec.stream_bound`
            of the image shape.
        mcs: None (``modulation`` and ``code_rate``), or an index of 38.214 MCS
            table ``mcs_table`` that sets both
            (:class:`~airinfer.phy.digital_payload.LinkSettings`).
        mcs_table: 1 or 2, only with an ``mcs``.
    """

    pixel_format: PixelFormat
    source: str = "pixels"
    quality: int = 75
    jpeg_tables: str = "inline"
    modulation: str = "qpsk"
    code_rate: float = 0.5
    block_bits: int = 512
    max_bytes: int | None = None
    mcs: int | None = None
    mcs_table: int = 2

    def __post_init__(self):
        if not isinstance(self.pixel_format, PixelFormat):
            raise ValueError(
                f"pixel_format: {type(self.pixel_format).__name__} is not a PixelFormat"
            )
        if self.source not in SOURCES:
            raise ValueError(f"source: unknown {self.source!r}; allowed: {', '.join(SOURCES)}")
        if self.source != "pixels":
            self.codec  # noqa: B018 (checks quality and jpeg_tables now)
        if self.max_bytes is not None and not (
            isinstance(self.max_bytes, int) and self.max_bytes >= 1
        ):
            raise ValueError(f"max_bytes: {self.max_bytes!r} is not None or an int >= 1")
        # checks modulation, code_rate, mcs and mcs_table, then block_bits, now
        object.__setattr__(self, "_settings", LinkSettings.of(self))
        self.link_config("awgn")

    @property
    def codec(self) -> ImageCodec:
        """The image codec (``source`` ``"jpeg"`` or ``"webp"``)."""
        return ImageCodec(self.source, self.quality, self.jpeg_tables)

    def link_config(self, channel: str):
        """The :class:`airinfer.phy.digital.LinkConfig` used over ``channel``."""
        return self._settings.link_config(channel, self.block_bits)

    def max_blocks(self, image_shape) -> int:
        """LDPC blocks of the largest message of one ``(H, W, C)`` image: all its pixels,
        or a full codec buffer (:meth:`buffer_bytes`)."""
        image_shape = tuple(int(d) for d in image_shape)
        if self.source == "pixels":
            return num_blocks(8 * math.prod(image_shape), self.block_bits)
        return num_blocks(8 * self.buffer_bytes(image_shape), self.block_bits)

    def buffer_bytes(self, image_shape: tuple[int, int, int]) -> int:
        """Codec buffer per image: ``max_bytes`` or the codec's bound for ``image_shape``."""
        if self.max_bytes is not None:
            return self.max_bytes
        return self.codec.stream_bound(tuple(int(d) for d in image_shape))

    def receive(
        self, key: jax.Array, images: jax.Array, link: Link, *, abstraction: bool = False
    ) -> CloudReception:
        """Encode, send and rebuild the images: what the receiver's model will see.

        Input:
            key: JAX PRNG key of the channel and noise.
            images: ``[B, H, W, C]`` float32 normalised images; each row crosses
                its own link (its own fading and noise).
            link: :class:`~airinfer.strategies.base.Link`; ``snr_db`` is Es/N0 per
                complex symbol in dB (noise CN(0, no), ``no = 10**(-snr_db/10)``;
                average Es/N0 under Rayleigh fading).
            abstraction: skip the decoder: every image arrives as sent and
                ``intact`` is drawn from the link's BLER curve
                (:func:`airinfer.phy.abstraction.message_intact`; AWGN or Rayleigh,
                scalar ``snr_db``). Only for a receiver that drops what fails the CRC.

        Output:
            :class:`CloudReception`.
        """
        check_images(images)
        self.pixel_format.check_images(images)
        config = self.link_config(link.channel)
        batch, shape = images.shape[0], tuple(images.shape[1:])
        codes = self.pixel_format.to_codes(images)
        if self.source == "pixels":
            bits = bytes_to_bits(codes.reshape(batch, -1))
            payload = jnp.full((batch,), bits.shape[1], jnp.int32)
        else:
            streams, lengths = self.codec.encode_jax(codes, self.buffer_bytes(shape))
            bits = bytes_to_bits(streams)
            payload = 8 * lengths  # only a stream's own bits are sent, not the buffer's rest
        if abstraction:
            decided = bits
            blocks = num_blocks(payload, config.k)
            intact = message_intact(
                key, link.snr_db, on_backend(config, link.backend), blocks, (batch,)
            )
        else:
            decided = send_bits(key, bits, link.snr_db, config, backend=link.backend)
            sent = jnp.arange(bits.shape[1]) < payload[:, None]
            intact = jnp.all((decided == bits) | ~sent, axis=-1)
        if self.source == "pixels":
            received = bits_to_bytes(decided).reshape(codes.shape)
            failed = jnp.zeros((batch,), bool)
        else:
            received, failed = self.codec.decode_jax(bits_to_bytes(decided), lengths, shape)
        receiver_images = self.pixel_format.from_codes(received)
        receiver_images = jnp.where(failed[:, None, None, None], 0.0, receiver_images)
        uses = channel_uses_per_sample(payload, config)
        return CloudReception(received, receiver_images, payload, uses, failed, intact)

    def sent(self, image_shape, channel: str, reception: CloudReception | None = None):
        """``(channel_uses, payload_bits)`` of one image of ``image_shape`` over ``channel``.

        Pixels: exact Python floats. Codecs: means over the batch of
        ``reception`` (JAX scalars), which they need (a stream's length
        depends on its image).
        """
        if self.source == "pixels":
            payload = 8 * math.prod(int(d) for d in image_shape)
            uses = float(channel_uses_per_sample(payload, self.link_config(channel)))
            return uses, float(payload)
        if reception is None:
            raise ValueError(
                f"reception: None; a {self.source} stream's length depends on its image, "
                "so its cost follows from what was sent"
            )
        payload = jnp.mean(reception.payload_bits.astype(jnp.float32))
        return jnp.mean(reception.channel_uses.astype(jnp.float32)), payload

    def message(self, images: jax.Array) -> jax.Array:
        """What leaves the device: its 8-bit pixels, or what the codec stream decodes
        to, ``[B, H, W, C]`` float32 in code units (0..255)."""
        check_images(images)
        self.pixel_format.check_images(images)
        codes = self.pixel_format.to_codes(images)
        if self.source != "pixels":
            shape = tuple(images.shape[1:])
            streams, lengths = self.codec.encode_jax(codes, self.buffer_bytes(shape))
            codes, _ = self.codec.decode_jax(streams, lengths, shape)
        return jnp.asarray(codes, jnp.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class CloudStrategy:
    """Raw input over a digital link to the server's full model.

    Parameters:
        model: the server's full classifier.
        pixel_format: the normalisation of the images and their stored pixel
            range (:meth:`PixelFormat.for_dataset`).
        hardware: compute speeds and symbol rate behind the latency.
        source: ``"pixels"``, ``"jpeg"`` or ``"webp"``.
        quality: codec quality, an int in ``[1, 100]`` (ignored for pixels).
        jpeg_tables: ``"inline"`` (standard JPEG files) or ``"shared"``
            (abbreviated streams, tables known at both ends); see :class:`ImageCodec`.
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"`` (without an MCS).
        code_rate: LDPC rate ``k / n`` (without an MCS).
        block_bits: info bits ``k`` per LDPC block, in ``[12, 8448]``.
        max_bytes: codec buffer per image; None: :meth:`ImageCodec.stream_bound`
            of the image shape. All ``ceil(8 max_bytes / k)`` blocks are
            simulated; only a stream's own blocks are counted as sent.
        mcs: None (``modulation`` and ``code_rate``), or an index of 38.214 MCS
            table ``mcs_table`` that sets both (a ``modulation`` or ``code_rate``
            changed from its default is then refused); see
            :class:`~airinfer.phy.digital_payload.LinkSettings` and, to choose it
            per SNR, :func:`airinfer.strategies.adaptation.adapt_mcs`.
        mcs_table: 1 or 2, only with an ``mcs``.

    Input (``__call__``):
        key: JAX PRNG key of the channel and noise; the same key gives the same result.
        images: ``[B, H, W, C]`` float32 normalised images (``C`` as ``pixel_format``).
        link: :class:`~airinfer.strategies.base.Link`; ``snr_db`` is Es/N0 per complex
            symbol in dB (noise CN(0, no), ``no = 10**(-snr_db/10)``; average
            Es/N0 under Rayleigh fading).

    Output:
        :class:`~airinfer.strategies.base.Outcome` with the server's logits
        ``[B, num_classes]`` float32 and the cost of one inference.

    The image's link is the attribute ``uplink``, an :class:`ImageLink` of
    the link parameters above.
    """

    model: SplitClassifier
    pixel_format: PixelFormat
    hardware: Hardware = Hardware()
    source: str = "pixels"
    quality: int = 75
    jpeg_tables: str = "inline"
    modulation: str = "qpsk"
    code_rate: float = 0.5
    block_bits: int = 512
    max_bytes: int | None = None
    mcs: int | None = None
    mcs_table: int = 2
    _flops: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        check_common(self.model, self.hardware)
        uplink = ImageLink(
            self.pixel_format, self.source, self.quality, self.jpeg_tables, self.modulation,
            self.code_rate, self.block_bits, self.max_bytes, self.mcs, self.mcs_table,
        )  # fmt: skip
        object.__setattr__(self, "uplink", uplink)

    @property
    def name(self) -> str:
        if self.source == "pixels":
            return "cloud_digital"
        shared = "_shared" if self.source == "jpeg" and self.jpeg_tables == "shared" else ""
        return f"cloud_digital_{self.source}{shared}_q{self.quality}"

    @property
    def codec(self) -> ImageCodec:
        """The image codec (``source`` ``"jpeg"`` or ``"webp"``)."""
        return self.uplink.codec

    def link_config(self, channel: str):
        """The :class:`airinfer.phy.digital.LinkConfig` used over ``channel``."""
        return self.uplink.link_config(channel)

    def buffer_bytes(self, image_shape: tuple[int, int, int]) -> int:
        """Codec buffer per image: ``max_bytes`` or the codec's bound for ``image_shape``."""
        return self.uplink.buffer_bytes(image_shape)

    def server_flops(self, input_shape: tuple[int, ...]) -> float:
        """FLOPs of the server's full model on one ``input_shape`` sample."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._flops:
            self._flops[input_shape] = flops(self.model, input_shape)
        return self._flops[input_shape]

    def receive(self, key: jax.Array, images: jax.Array, link: Link) -> CloudReception:
        """Encode, send and rebuild the images: what the server's model will see.

        Same inputs as ``__call__``; returns a :class:`CloudReception`.
        """
        return self.uplink.receive(key, images, link)

    def cost(self, reception: CloudReception, channel: str) -> Cost:
        """The :class:`~airinfer.strategies.cost.Cost` of one inference received over ``channel``.

        Pixels: exact Python numbers; codecs: means over the batch (JAX scalars).
        """
        shape = tuple(int(d) for d in reception.images.shape[1:])
        uses, payload = self.uplink.sent(shape, channel, reception)
        return make_cost(uses, payload, 0.0, self.server_flops(shape), self.hardware)

    def message(self, images: jax.Array, snr_db=None) -> jax.Array:
        """What leaves the device: its 8-bit pixels, or what the codec stream decodes
        to, ``[B, H, W, C]`` float32 in code units (0..255)."""
        return self.uplink.message(images)

    def received(self, key: jax.Array, images: jax.Array, link: Link) -> jax.Array:
        """What the server (or an eavesdropper at the same SNR) gets: the 8-bit pixels it
        rebuilt, errors and all, ``[B, H, W, C]`` float32 in code units (as :meth:`message`)."""
        return self.receive(key, images, link).codes.astype(jnp.float32)

    def outcome_with_crc(self, key: jax.Array, images: jax.Array, link: Link):
        """``(outcome, intact)``: what ``__call__`` returns, and ``[B]`` bool, whether each
        image arrived without a bit error (an ideal CRC's verdict)."""
        reception = self.receive(key, images, link)
        logits = inference_copy(self.model)(reception.images)
        return Outcome(logits, self.cost(reception, link.channel)), reception.intact

    def __call__(self, key: jax.Array, images: jax.Array, link: Link) -> Outcome:
        return self.outcome_with_crc(key, images, link)[0]
