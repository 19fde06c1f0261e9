"""The analog split strategy: the whole chain behind the strategy interface, and its accuracy.

:func:`jscc_logits` runs front, encoder, channel, equaliser, decoder and back;
:class:`JSCCSplitStrategy` puts it behind ``strategy(key, images, link) ->
Outcome`` with its cost; :func:`accuracy_vs_snr` sweeps its test accuracy.
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.models.zoo import SplitClassifier, feature_shape, flops
from airinfer.phy.conventions import reals_to_symbols, symbols_to_reals
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Cost, Hardware, make_cost
from airinfer.strategies.jscc.codec import JSCCCodec, codec_flops
from airinfer.strategies.jscc.config import JSCCConfig
from airinfer.strategies.jscc.link import analog_link

__all__ = ["jscc_logits", "JSCCSplitStrategy", "accuracy_vs_snr"]


def jscc_logits(classifier, codec, key, images, snr_db, channel, config: JSCCConfig, *, backend):
    """Front, encoder, channel, equaliser, decoder, back: the whole analog split chain.

    Input:
        classifier: the :class:`~airinfer.models.zoo.SplitClassifier` (used as it is:
            put it in eval mode first).
        codec: the :class:`JSCCCodec`.
        key: JAX PRNG key of the channel.
        images: ``[batch, H, W, C]`` float32.
        snr_db: Es/N0 per complex symbol in dB, scalar or ``[batch]``.
        channel: ``awgn``, ``rayleigh`` or ``tdl-a``.
        config: split point and OFDM grid.
        backend: ``sionna`` or ``jax``.

    Output:
        ``[batch, num_classes]`` float32 logits. No gradient reaches the front.
    """
    features = jax.lax.stop_gradient(classifier.front(images, config.split_point))
    snr_db = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), (images.shape[0],))
    symbols = codec.encode(features, snr_db)
    equalised, effective_snr_db = analog_link(
        key, symbols, snr_db, channel, backend=backend, ofdm_subcarriers=config.ofdm_subcarriers
    )
    return classifier.back(codec.decode(equalised, effective_snr_db), config.split_point)


@dataclasses.dataclass(frozen=True, eq=False)
class JSCCSplitStrategy:
    """Split inference over an analog link with a learned encoder/decoder (deep JSCC).

    Call it as ``strategy(key, images, link) -> Outcome`` (see
    :mod:`airinfer.strategies.base`); jit-able: ``jax.jit(strategy)``. ``link.channel``
    and ``link.backend`` choose the channel the symbols cross (it may differ
    from the one the codec was trained on); ``link.connectivity`` plays no part
    (one device, one server).

    Parameters:
        classifier: the split classifier (its back end fine-tuned or not); a
            copy is taken in eval mode.
        codec: the trained :class:`JSCCCodec`.
        config: the link's :class:`JSCCConfig` (split point, ``k``, OFDM grid).
        hardware: compute speeds and symbol rate behind the latency.
        name: ``"split_analog"``.

    Input:
        key: JAX PRNG key (channel and noise).
        images: ``[batch, H, W, C]`` float32.
        link: :class:`~airinfer.strategies.base.Link`; ``snr_db`` scalar or ``[batch]``.

    Output:
        :class:`~airinfer.strategies.base.Outcome`: logits ``[batch, num_classes]``
        float32; cost of one sample: ``k`` channel uses, 0 payload bits,
        device FLOPs of the front and the encoder, server FLOPs of the decoder
        and the back (XLA's counts), latency per :func:`airinfer.strategies.cost.latency_s`.
    """

    classifier: SplitClassifier
    codec: JSCCCodec
    config: JSCCConfig
    hardware: Hardware = Hardware()
    name: str = "split_analog"

    def __post_init__(self):
        if self.config.split_point not in self.classifier.split_points:
            raise ValueError(
                f"split_point: unknown {self.config.split_point!r}; allowed: "
                f"{', '.join(self.classifier.split_points)}"
            )
        if self.codec.symbols != self.config.symbols:
            raise ValueError(
                f"symbols: the codec sends {self.codec.symbols}, the config says "
                f"{self.config.symbols}"
            )
        classifier = nnx.clone(self.classifier)
        classifier.eval()
        object.__setattr__(self, "_classifier", nnx.split(classifier))
        object.__setattr__(self, "_codec", nnx.split(nnx.clone(self.codec)))
        object.__setattr__(self, "_costs", {})

    def cost(self, input_shape) -> Cost:
        """The :class:`~airinfer.strategies.cost.Cost` of one sample of shape ``(H, W, C)``."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._costs:
            classifier = nnx.merge(*self._classifier)
            found = feature_shape(classifier, self.config.split_point, input_shape)
            if found != self.codec.feature_shape:
                raise ValueError(
                    f"images: inputs of shape {input_shape} give features {found} at "
                    f"{self.config.split_point!r}, the codec expects {self.codec.feature_shape}"
                )
            encoder, decoder = codec_flops(nnx.merge(*self._codec))
            front = flops(classifier, input_shape, self.config.split_point, "front")
            back = flops(classifier, input_shape, self.config.split_point, "back")
            self._costs[input_shape] = make_cost(
                float(self.config.symbols), 0.0, front + encoder, decoder + back, self.hardware
            )
        return self._costs[input_shape]

    def message(self, images, snr_db):
        """The encoder's ``k`` unit-energy symbols at ``snr_db`` as reals ``[B, 2k]`` float32
        (real parts, then imaginary parts)."""
        images = jnp.asarray(images, jnp.float32)
        features = nnx.merge(*self._classifier).front(images, self.config.split_point)
        snr_db = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), (images.shape[0],))
        return symbols_to_reals(nnx.merge(*self._codec).encode(features, snr_db))

    def received(self, key, images, link: Link):
        """What the server (or an eavesdropper at the same SNR) gets: the equalised noisy
        symbols as reals ``[B, 2k]`` float32 (as :meth:`message`)."""
        symbols = reals_to_symbols(self.message(images, link.snr_db))
        equalised, _ = analog_link(
            key, symbols, link.snr_db, link.channel, backend=link.backend,
            ofdm_subcarriers=self.config.ofdm_subcarriers,
        )  # fmt: skip
        return symbols_to_reals(equalised)

    def __call__(self, key, images, link: Link) -> Outcome:
        images = jnp.asarray(images, jnp.float32)
        if images.ndim != 4:
            raise ValueError(f"images must have shape [batch, H, W, C], got {images.shape}")
        cost = self.cost(images.shape[1:])
        logits = jscc_logits(
            nnx.merge(*self._classifier),
            nnx.merge(*self._codec),
            key,
            images,
            link.snr_db,
            link.channel,
            self.config,
            backend=link.backend,
        )
        return Outcome(logits, cost)


def accuracy_vs_snr(
    strategy: JSCCSplitStrategy,
    key,
    images,
    labels,
    snr_db: Sequence[float],
    *,
    channel: str = "awgn",
    backend: str = "sionna",
    chunk_size: int = 1000,
) -> np.ndarray:
    """Test accuracy of ``strategy`` at each SNR.

    Point ``i`` uses the key ``fold_in(key, i)`` (and ``fold_in`` of that per
    chunk), so a point's result does not depend on the other points. One
    compiled function serves every point: the SNR is a traced value.

    Args:
        strategy: the analog split strategy.
        key: JAX PRNG key.
        images: ``[N, H, W, C]`` float32; labels: ``[N]`` int.
        snr_db: Es/N0 per complex symbol in dB, one per point.
        channel, backend: of the :class:`~airinfer.strategies.base.Link`.
        chunk_size: images per call (the last chunk is padded to it).

    Returns:
        ``[len(snr_db)]`` float64 accuracies in [0, 1].
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    n = len(labels)
    chunk_size = min(chunk_size, n)
    run = jax.jit(strategy)
    accuracies = []
    for i, snr in enumerate(snr_db):
        point_key = jax.random.fold_in(key, i)
        correct = 0
        for c, begin in enumerate(range(0, n, chunk_size)):
            chunk = images[begin : begin + chunk_size]
            padded = np.concatenate(
                [chunk, np.zeros((chunk_size - len(chunk), *chunk.shape[1:]), np.float32)]
            )
            link = Link(snr_db=jnp.float32(snr), channel=channel, backend=backend)
            logits = run(jax.random.fold_in(point_key, c), padded, link).logits
            predictions = np.asarray(logits)[: len(chunk)].argmax(-1)
            correct += int((predictions == labels[begin : begin + chunk_size]).sum())
        accuracies.append(correct / n)
    return np.asarray(accuracies, np.float64)
