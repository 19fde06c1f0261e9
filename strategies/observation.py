"""The edge ensemble's first round: how the neighbours come to see device 0's observation.

Three schemes (:data:`OBSERVATIONS`), after the survey's edge ensembles:

* ``shared``: every device observes the same scene (co-located cameras, a
  UAV swarm); nothing is multicast. The edge-ensemble strategy without an
  observation object.
* ``direct`` (:class:`DirectObservation`): device 0 multicasts its image over
  a device-to-device digital link, the cloud strategy's
  (:class:`~airinfer.strategies.cloud.ImageLink`: 8-bit pixels or a codec stream,
  5G LDPC + QAM). One transmission reaches every neighbour, each through its
  own independent fading and noise; each decodes its own copy, errors and all.
* ``encoder`` (:class:`SharedEncoder`): device 0 runs a shared encoder (the
  front of a model cut at a split point, optionally a learned
  :class:`~airinfer.strategies.feature_coding.Bottleneck`) and multicasts the
  features, digital (``bits`` per value, LDPC + QAM) or analog (uncoded
  unit-energy symbols, two values per complex channel use); each neighbour
  runs its own head on what it received (:mod:`airinfer.strategies.heads`).

A digital copy carries an ideal CRC (every error detected, its bits not
counted): with ``crc=True`` a neighbour whose copy has a wrong bit stays
silent in the second round, and one whose copy is intact sees exactly what
was sent; with ``crc=False`` every neighbour infers on what it decoded. An
analog copy is always delivered. With a CRC only the verdict matters, so a
digital multicast over AWGN or Rayleigh can skip the decoder
(``mode="abstraction"``): each copy is intact with probability
``(1 - BLER) ** blocks`` on the link's measured BLER curve
(:mod:`airinfer.phy.abstraction`), which is what makes a multicast to 15
neighbours affordable in full sweeps (over OFDM channels, whose blocks share
a slot's channel draw, copies are simulated all the same); ``mode="simulate"``
(the default) sends every copy through the digital link. The digital links run on
``Link.backend`` (Sionna's blocks or their JAX twins), over ``awgn`` or ``rayleigh`` (i.i.d. fading
per symbol) with a scalar ``snr_db``; the analog one over any channel of
:func:`~airinfer.strategies.jscc.link.analog_link` (one flat gain per copy under
``rayleigh``), on ``Link.backend``. SNR is Es/N0 per complex symbol in dB
(noise CN(0, no), ``no = 10**(-snr_db/10)``), the same for every neighbour.

What a multicast costs (:meth:`DirectObservation.sent`, :meth:`SharedEncoder.sent`):
the channel uses and payload bits of one copy (the neighbours share the
transmission); :meth:`SharedEncoder.encoder_flops` is device 0's work before
it, :meth:`SharedEncoder.receiver_flops` each neighbour's before its head.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from airinfer.models.zoo import SplitClassifier, feature_shape, flops
from airinfer.phy.abstraction import ABSTRACTED_CHANNELS, message_intact
from airinfer.phy.conventions import reals_to_symbols, symbols_to_reals
from airinfer.phy.digital_payload import (
    LinkSettings,
    channel_uses_per_sample,
    num_blocks,
    on_backend,
    send_bits,
)
from airinfer.strategies.cloud import ImageLink
from airinfer.strategies.feature_coding import (
    BOTTLENECK_CLIP,
    Bottleneck,
    FeatureQuantizer,
    bottleneck_flops,
)
from airinfer.strategies.jscc.link import analog_link
from airinfer.strategies.local import check_images, inference_copy

__all__ = ["OBSERVATIONS", "MULTICAST_MODES", "Multicast", "DirectObservation", "SharedEncoder"]

OBSERVATIONS = ("shared", "direct", "encoder")
#: How a digital multicast is carried: every copy through the decoder, or its
#: CRC verdict drawn from the link's BLER curve.
MULTICAST_MODES = ("simulate", "abstraction")
# A digital copy's channel uses are the same over every flat channel.
_ANY_FLAT_CHANNEL = "awgn"


class Multicast(NamedTuple):
    """What the neighbours received in the first round.

    Attributes:
        inputs: ``[B, N, ...]`` float32, what each of the N neighbours' models sees.
        delivered: ``[B, N]`` bool, the neighbour takes part in the second round
            (its copy passed the CRC, or no CRC is used).
        channel_uses: complex channel uses of one copy (a number or a JAX scalar).
        payload_bits: info bits of one copy (0 for analog symbols).
    """

    inputs: jax.Array
    delivered: jax.Array
    channel_uses: object
    payload_bits: object


def _copies(x, num_copies):
    """``[B, ...]`` -> ``[B * N, ...]``: every row repeated for each of N receivers."""
    return jnp.repeat(x, num_copies, axis=0)


def _per_receiver(x, batch, num_copies):
    """``[B * N, ...]`` -> ``[B, N, ...]``."""
    return x.reshape(batch, num_copies, *x.shape[1:])


def _check_mode(mode, crc):
    if mode not in MULTICAST_MODES:
        raise ValueError(f"mode: unknown {mode!r}; allowed: {', '.join(MULTICAST_MODES)}")
    if mode == "abstraction" and not crc:
        raise ValueError(
            "mode: 'abstraction' draws only the CRC's verdict; with crc=False the neighbours "
            "infer on their bit errors, which must be simulated (mode='simulate')"
        )


def _abstracted(mode, channel):
    """Whether a copy's CRC verdict is drawn rather than decoded (not over OFDM)."""
    return mode == "abstraction" and channel in ABSTRACTED_CHANNELS


def _check_scalar_snr(snr_db):
    if jnp.ndim(snr_db) != 0:
        raise ValueError(
            f"link.snr_db: shape {jnp.shape(snr_db)}; a digital multicast takes one SNR "
            "for the whole batch"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class DirectObservation:
    """``direct``: device 0 multicasts its image over a digital link.

    Parameters:
        image_link: the :class:`~airinfer.strategies.cloud.ImageLink` (source coding,
            LDPC + QAM), the cloud strategy's.
        crc: a neighbour whose copy fails the (ideal) CRC stays silent; False:
            it infers on its decoded image, bit errors and all.
        mode: ``"simulate"`` (every copy through the link) or ``"abstraction"``
            (needs ``crc``; OFDM channels are simulated): see the module docstring.
    """

    image_link: ImageLink
    crc: bool = True
    mode: str = "simulate"
    name = "direct"

    def __post_init__(self):
        if not isinstance(self.image_link, ImageLink):
            raise ValueError(
                f"image_link: {type(self.image_link).__name__} is not a strategies.cloud.ImageLink"
            )
        if not isinstance(self.crc, bool):
            raise ValueError(f"crc: {self.crc!r} is not a bool")
        _check_mode(self.mode, self.crc)

    def own_input(self, images):
        """What device 0's model sees: its own clean image, ``[B, H, W, C]``."""
        return images

    def input_shape(self, image_shape):
        """Shape of one sample of what the members see: the image's."""
        return tuple(int(d) for d in image_shape)

    def encoder_flops(self, image_shape) -> float:
        """Device 0's model FLOPs before sending: none (source coding is not counted)."""
        return 0.0

    def receiver_flops(self, image_shape) -> float:
        """A neighbour's model FLOPs before its member: none."""
        return 0.0

    def sent(self, image_shape, multicast: Multicast | None = None):
        """``(channel_uses, payload_bits)`` of one copy (see :meth:`ImageLink.sent`); a
        codec's come from ``multicast`` (its streams' lengths vary)."""
        if multicast is not None:
            return multicast.channel_uses, multicast.payload_bits
        return self.image_link.sent(image_shape, _ANY_FLAT_CHANNEL)

    def multicast(self, key, images, num_neighbours: int, link) -> Multicast:
        """Send ``images`` ``[B, H, W, C]`` to ``num_neighbours`` N, each over its own link.

        ``link.snr_db`` must be a scalar. Returns a :class:`Multicast` whose
        inputs are the images each neighbour rebuilt.
        """
        _check_scalar_snr(link.snr_db)
        batch = images.shape[0]
        reception = self.image_link.receive(
            key, _copies(images, num_neighbours), link,
            abstraction=_abstracted(self.mode, link.channel),
        )  # fmt: skip
        delivered = reception.intact if self.crc else jnp.ones_like(reception.intact)
        image_shape = tuple(images.shape[1:])
        uses, bits = self.image_link.sent(image_shape, link.channel, reception)
        return Multicast(
            _per_receiver(reception.images, batch, num_neighbours),
            _per_receiver(delivered, batch, num_neighbours),
            uses,
            bits,
        )

    def message(self, images, snr_db=None):
        """What device 0 multicasts: its 8-bit pixels (or the codec's image), ``[B, H, W, C]``
        float32 in code units."""
        return self.image_link.message(images)


@dataclasses.dataclass(frozen=True, eq=False)
class SharedEncoder:
    """``encoder``: device 0 runs a shared encoder and multicasts the features.

    Parameters:
        model: the classifier whose front is the encoder; None with ``split_point`` None.
        split_point: where ``model`` is cut (one of its ``split_points``), or
            None for the identity encoder (the image itself is sent).
        bottleneck: optional :class:`~airinfer.strategies.feature_coding.Bottleneck`
            at ``split_point``: device 0 sends its code, each neighbour expands
            it before its head.
        analog: send uncoded unit-energy symbols (True) or quantised values
            over the digital LDPC + QAM link (False).
        bits: digital: bits per value, in ``[1, 16]``.
        clip: digital: the quantiser's range bound (None with a bottleneck,
            whose code is clipped at 1); ignored analog.
        signed: digital: quantise over ``[-clip, clip]`` (True) or ``[0, clip]``
            (False, for ReLU features); True with a bottleneck.
        modulation, code_rate, block_bits: digital: the 5G LDPC + QAM link.
        crc: digital: a neighbour whose copy fails the (ideal) CRC stays silent.
        mode: digital: ``"simulate"`` or ``"abstraction"`` (needs ``crc``; OFDM
            channels are simulated): see the module docstring.
        mcs: digital: None (``modulation`` and ``code_rate``), or an index of
            38.214 MCS table ``mcs_table`` that sets both (a ``modulation`` or
            ``code_rate`` changed from its default is then refused; see
            :class:`~airinfer.phy.digital_payload.LinkSettings`); refused analog.
        mcs_table: 1 or 2, only with an ``mcs``.

    Analog: the ``V`` values of a sample become ``ceil(V / 2)`` complex
    symbols scaled to unit average energy; the scale is side information that
    reaches the neighbours intact (one number, not counted). Each neighbour
    equalises its copy (MMSE, :func:`~airinfer.strategies.jscc.link.analog_link`) and
    undoes the scale.
    """

    model: SplitClassifier | None
    split_point: str | None
    bottleneck: Bottleneck | None = None
    analog: bool = False
    bits: int = 8
    clip: float | None = None
    signed: bool = True
    modulation: str = "qpsk"
    code_rate: float = 0.5
    block_bits: int = 512
    crc: bool = True
    mode: str = "simulate"
    mcs: int | None = None
    mcs_table: int = 2
    name = "encoder"

    def __post_init__(self):
        self._check_encoder()
        for name in ("analog", "crc"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not a bool")
        quantizer = None
        if self.analog and self.mode != "simulate":
            raise ValueError(f"mode: {self.mode!r} applies to the digital link, not analog=True")
        if self.analog and self.mcs is not None:
            raise ValueError(f"mcs: {self.mcs!r} applies to the digital link, not analog=True")
        settings = None
        if not self.analog:
            _check_mode(self.mode, self.crc)
            quantizer = self._quantizer()
            # checks modulation, code_rate, mcs and mcs_table, then block_bits, now
            settings = LinkSettings.of(self)
            settings.link_config("awgn", self.block_bits)
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_quantizer_", quantizer)
        model = None if self.model is None else inference_copy(self.model)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_flops", {})

    def _check_encoder(self):
        if self.split_point is None:
            if self.model is not None or self.bottleneck is not None:
                raise ValueError(
                    "split_point: None (the identity encoder) takes no model and no bottleneck"
                )
            return
        if not isinstance(self.model, SplitClassifier):
            raise ValueError(f"model: {type(self.model).__name__} is not a SplitClassifier")
        if self.split_point not in self.model.split_points:
            raise ValueError(
                f"split_point: unknown {self.split_point!r}; allowed: "
                f"{', '.join(self.model.split_points)} or None (the identity encoder)"
            )
        if self.bottleneck is not None and not isinstance(self.bottleneck, Bottleneck):
            raise ValueError(
                f"bottleneck: {type(self.bottleneck).__name__} is not a Bottleneck or None"
            )

    def _quantizer(self) -> FeatureQuantizer:
        if self.bottleneck is None:
            if self.clip is None:
                raise ValueError("clip: None; give the quantiser's range (calibrate_clip)")
            return FeatureQuantizer(self.bits, self.clip, self.signed)
        if self.clip is not None or self.signed is not True:
            raise ValueError(
                f"clip, signed: {self.clip!r}, {self.signed!r} given with a bottleneck, whose "
                f"tanh code is signed and clipped at {BOTTLENECK_CLIP}; leave them at None, True"
            )
        return FeatureQuantizer(self.bits, BOTTLENECK_CLIP, True)

    @property
    def quantizer(self) -> FeatureQuantizer | None:
        """The digital link's :class:`FeatureQuantizer` (None for analog)."""
        return self._quantizer_

    def link_config(self, channel: str):
        """The digital link's :class:`airinfer.phy.digital.LinkConfig` over ``channel``."""
        if self.analog:
            raise ValueError("analog: True; the shared encoder sends no digital link")
        return self._settings.link_config(channel, self.block_bits)

    def num_blocks(self, image_shape) -> int:
        """Digital: LDPC blocks of one copy, ``ceil(V bits / block_bits)``."""
        return num_blocks(math.prod(self.sent_shape(image_shape)) * self.bits, self.block_bits)

    # ------------------------------------------------------------------ shapes and FLOPs

    def feature_shape(self, image_shape):
        """Shape of one sample's features (the front's output; the image's for identity)."""
        image_shape = tuple(int(d) for d in image_shape)
        if self.split_point is None:
            return image_shape
        return feature_shape(self._model, self.split_point, image_shape)

    def sent_shape(self, image_shape):
        """Shape of one sample's sent values: the features, or the bottleneck's code."""
        shape = self.feature_shape(image_shape)
        if self.bottleneck is None:
            return shape
        if shape[-1] != self.bottleneck.features:
            raise ValueError(
                f"bottleneck: takes {self.bottleneck.features} features on the last axis, "
                f"the front at {self.split_point!r} gives {shape}"
            )
        return (*shape[:-1], self.bottleneck.channels)

    def input_shape(self, image_shape):
        """Shape of one sample of what the heads see: the (expanded) features."""
        return self.feature_shape(image_shape)

    def _compute_flops(self, image_shape):
        image_shape = tuple(int(d) for d in image_shape)
        if image_shape not in self._flops:
            encoder = receiver = 0.0
            if self.split_point is not None:
                encoder = flops(self._model, image_shape, self.split_point, "front")
            if self.bottleneck is not None:
                shape = self.feature_shape(image_shape)
                encoder += bottleneck_flops(self.bottleneck, shape, "compress")
                receiver = bottleneck_flops(self.bottleneck, shape, "expand")
            self._flops[image_shape] = (encoder, receiver)
        return self._flops[image_shape]

    def encoder_flops(self, image_shape) -> float:
        """Device 0's FLOPs of one sample before sending: the front and the compressor."""
        return self._compute_flops(image_shape)[0]

    def receiver_flops(self, image_shape) -> float:
        """A neighbour's FLOPs of one sample before its head: the expander (0 without one)."""
        return self._compute_flops(image_shape)[1]

    def sent(self, image_shape, multicast: Multicast | None = None):
        """``(channel_uses, payload_bits)`` of one copy: ``ceil(V b / k) n / m`` and
        ``V b`` digital, ``ceil(V / 2)`` and 0 analog (``V`` values sent)."""
        values = math.prod(self.sent_shape(image_shape))
        if self.analog:
            return float(-(-values // 2)), 0.0
        payload = values * self.bits
        config = self.link_config(_ANY_FLAT_CHANNEL)
        return float(channel_uses_per_sample(payload, config)), float(payload)

    # ------------------------------------------------------------------ the chain

    def encode(self, images):
        """Device 0: ``images`` ``[B, H, W, C]`` -> the values it sends ``[B, *sent_shape]``."""
        check_images(images)
        self.sent_shape(images.shape[1:])  # checks the bottleneck against the features
        if self.split_point is None:
            return jnp.asarray(images, jnp.float32)
        features = self._model.front(images, self.split_point)
        return features if self.bottleneck is None else self.bottleneck.compress(features)

    def decode(self, values):
        """A receiver: received values ``[..., *sent_shape]`` -> the head's input (expanded)."""
        return values if self.bottleneck is None else self.bottleneck.expand(values)

    def clean_features(self, images):
        """What a head sees over an error-free, noise-free link (device 0's own input, and
        what heads are trained on): ``[B, *input_shape]`` float32."""
        values = self.encode(images)
        if self.quantizer is not None:
            values = self.quantizer.round_trip(values)
        return self.decode(values)

    def own_input(self, images):
        """What device 0's head sees: :meth:`clean_features`."""
        return self.clean_features(images)

    def multicast(self, key, images, num_neighbours: int, link) -> Multicast:
        """Send the encoded ``images`` to ``num_neighbours`` N, each over its own link."""
        values = self.encode(images)
        batch = values.shape[0]
        if self.analog:
            received = self._send_analog(key, values, num_neighbours, link)
            delivered = jnp.ones((batch * num_neighbours,), bool)
        else:
            received, delivered = self._send_digital(key, values, num_neighbours, link)
        uses, bits = self.sent(images.shape[1:])
        return Multicast(
            _per_receiver(self.decode(received), batch, num_neighbours),
            _per_receiver(delivered, batch, num_neighbours),
            uses,
            bits,
        )

    def _send_digital(self, key, values, num_neighbours, link):
        _check_scalar_snr(link.snr_db)
        bits = self.quantizer.to_bits(values)  # [B, ..., b]
        flat = _copies(bits.reshape(bits.shape[0], -1), num_neighbours)
        config = self.link_config(link.channel)
        if _abstracted(self.mode, link.channel):
            blocks = num_blocks(flat.shape[1], config.k)
            intact = message_intact(
                key, link.snr_db, on_backend(config, link.backend), blocks, flat.shape[:1]
            )
            decided = flat
        else:
            decided = send_bits(key, flat, link.snr_db, config, backend=link.backend)
            intact = jnp.all(decided == flat, axis=-1)
        received = self.quantizer.to_values(decided.reshape(-1, *bits.shape[1:]))
        return received, intact if self.crc else jnp.ones_like(intact)

    def _send_analog(self, key, values, num_neighbours, link):
        symbols, scale = _unit_energy(values)
        equalised, _ = analog_link(
            key, _copies(symbols, num_neighbours), link.snr_db, link.channel, backend=link.backend
        )
        reals = symbols_to_reals(equalised * _copies(scale, num_neighbours), values[0].size)
        return reals.reshape(-1, *values.shape[1:])

    def message(self, images, snr_db=None):
        """What device 0 multicasts: digital, the quantised values as error-free bits
        rebuild them, ``[B, *sent_shape]``; analog, the unit-energy symbols as reals
        ``[B, 2 ceil(V / 2)]`` (real parts, then imaginary parts). float32."""
        values = self.encode(images)
        if self.quantizer is not None:
            return self.quantizer.round_trip(values)
        return symbols_to_reals(_unit_energy(values)[0])


def _unit_energy(values):
    """``[B, ...]`` values -> ``([B, k] complex64, [B, 1] complex64)``: ``k = ceil(V / 2)``
    symbols of unit average energy per sample, and the scale that restores them (an
    all-zero sample keeps scale 1)."""
    symbols = reals_to_symbols(values.reshape(values.shape[0], -1))
    energy = jnp.mean(jnp.real(symbols) ** 2 + jnp.imag(symbols) ** 2, axis=-1, keepdims=True)
    scale = jnp.sqrt(jnp.where(energy > 0, energy, 1.0)).astype(jnp.complex64)
    return symbols / scale, scale
