"""The learned encoder and decoder of the analog split link, and what they compute.

The encoder maps one sample's features to ``k`` complex channel symbols of
exactly unit average energy (:func:`unit_energy_symbols`); the decoder maps
the equalised symbols back to features. With ``side_info`` the encoder also
sees the nominal SNR and the decoder the effective SNR of every symbol
(clipped to :data:`SNR_CLIP_DB`, in units of 10 dB).
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from airinfer.models.zoo import xla_flops
from airinfer.phy.conventions import symbols_to_reals
from airinfer.strategies.jscc.config import JSCCConfig

__all__ = [
    "SNR_CLIP_DB",
    "unit_energy_symbols",
    "FeatureEncoder",
    "FeatureDecoder",
    "JSCCCodec",
    "codec_flops",
]

# SNRs entering the networks as side information are clipped to this range
# (dB), so that a deep fade (|h|^2 -> 0) or a noise-free link (snr_db = inf)
# gives finite inputs.
SNR_CLIP_DB = (-50.0, 70.0)
# dB -> network input: 10 dB per unit keeps the usual -10..20 dB near [-1, 2].
_SNR_SCALE_DB = 10.0


def unit_energy_symbols(reals):
    """Pack ``2k`` reals into ``k`` complex symbols of exactly unit average energy.

    Input:
        reals: ``[batch, 2k]`` float, the first ``k`` real parts, then the
            ``k`` imaginary parts.

    Output:
        ``[batch, k]`` complex64 with ``mean(|x|^2) = 1`` over the ``k``
        symbols of every sample. Each row is first divided by its largest
        magnitude, so that neither tiny nor huge inputs under- or overflow when
        squared; an all-zero row becomes ``1 + 0j`` everywhere (still unit
        energy, with a zero gradient instead of a NaN).
    """
    reals = jnp.asarray(reals, jnp.float32)
    if reals.ndim != 2 or reals.shape[-1] % 2:
        raise ValueError(f"reals must have shape [batch, 2k], got {reals.shape}")
    peak = jnp.max(jnp.abs(reals), axis=-1, keepdims=True)
    nonzero = peak > 0
    scaled = reals / jnp.where(nonzero, peak, 1.0)
    # mean |x|^2 over k symbols = 2 * mean of the 2k squared reals; >= 1/k here
    energy = 2.0 * jnp.mean(scaled**2, axis=-1, keepdims=True)
    scaled = scaled * jax.lax.rsqrt(jnp.where(nonzero, energy, 1.0))
    re, im = jnp.split(scaled, 2, axis=-1)
    symbols = jax.lax.complex(re, im)
    return jnp.where(nonzero, symbols, jnp.ones_like(symbols))


def _snr_input(snr_db):
    """SNR in dB as a network input: clipped to :data:`SNR_CLIP_DB`, in units of 10 dB."""
    return jnp.clip(jnp.asarray(snr_db, jnp.float32), *SNR_CLIP_DB) / _SNR_SCALE_DB


class FeatureEncoder(nnx.Module):
    """Device side: features -> ``k`` complex channel symbols of unit average energy.

    A dense ReLU layer and a dense output layer of ``2k`` reals, packed into
    complex symbols by :func:`unit_energy_symbols` (per-sample power constraint).

    Parameters:
        num_features: size of one sample's flattened features.
        symbols: ``k``.
        hidden: hidden units.
        side_info: the SNR is an extra input.
        rngs: ``nnx.Rngs`` for the initial weights.

    Input:
        features: ``[batch, ...]`` float32, the front's output.
        snr_db: ``[batch]`` float32 nominal Es/N0 in dB (used with ``side_info``).

    Output:
        ``[batch, k]`` complex64, ``mean(|x|^2) = 1`` per sample.
    """

    def __init__(self, num_features: int, symbols: int, hidden: int, side_info: bool, *, rngs):
        self.side_info = side_info
        self.hidden = nnx.Linear(num_features + int(side_info), hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 2 * symbols, rngs=rngs)

    def __call__(self, features, snr_db):
        inputs = features.reshape(features.shape[0], -1)
        if self.side_info:
            inputs = jnp.concatenate([inputs, _snr_input(snr_db)[:, None]], axis=-1)
        return unit_energy_symbols(self.out(jax.nn.relu(self.hidden(inputs))))


class FeatureDecoder(nnx.Module):
    """Server side: equalised symbols -> features for the classifier's back end.

    Parameters:
        symbols: ``k``.
        feature_shape: shape of one sample's features (no batch axis).
        hidden: hidden units.
        side_info: the per-symbol effective SNR is an extra input.
        rngs: ``nnx.Rngs`` for the initial weights.

    Input:
        equalised: ``[batch, k]`` complex64, the MMSE-equalised symbols.
        effective_snr_db: ``[batch, k]`` float32, ``snr_db + 10 log10 |h|^2``
            per symbol (used with ``side_info``).

    Output:
        ``[batch, *feature_shape]`` float32.
    """

    def __init__(self, symbols: int, feature_shape, hidden: int, side_info: bool, *, rngs):
        self.side_info = side_info
        self.feature_shape = tuple(int(d) for d in feature_shape)
        inputs = 2 * symbols + (symbols if side_info else 0)
        self.hidden = nnx.Linear(inputs, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, math.prod(self.feature_shape), rngs=rngs)

    def __call__(self, equalised, effective_snr_db):
        inputs = symbols_to_reals(equalised)
        if self.side_info:
            inputs = jnp.concatenate([inputs, _snr_input(effective_snr_db)], axis=-1)
        features = self.out(jax.nn.relu(self.hidden(inputs)))
        return features.reshape(features.shape[0], *self.feature_shape)


class JSCCCodec(nnx.Module):
    """The encoder and decoder of one analog split link.

    Parameters:
        feature_shape: shape of one sample's features at the split point.
        symbols: ``k`` complex channel uses per sample.
        hidden: hidden units of each network.
        side_info: the networks see the SNR.
        rngs: ``nnx.Rngs``.
    """

    def __init__(self, feature_shape, symbols: int, hidden: int, side_info: bool, *, rngs):
        self.feature_shape = tuple(int(d) for d in feature_shape)
        self.symbols = int(symbols)
        num_features = math.prod(self.feature_shape)
        self.encoder = FeatureEncoder(num_features, symbols, hidden, side_info, rngs=rngs)
        self.decoder = FeatureDecoder(symbols, self.feature_shape, hidden, side_info, rngs=rngs)

    @classmethod
    def from_config(cls, config: JSCCConfig, feature_shape, key) -> "JSCCCodec":
        """A freshly initialised codec for ``config``, weights drawn from ``key``."""
        return cls(
            feature_shape,
            config.symbols,
            config.hidden,
            config.side_info,
            rngs=nnx.Rngs(params=key),
        )

    def encode(self, features, snr_db):
        """See :class:`FeatureEncoder`."""
        return self.encoder(features, snr_db)

    def decode(self, equalised, effective_snr_db):
        """See :class:`FeatureDecoder`."""
        return self.decoder(equalised, effective_snr_db)


def codec_flops(codec: JSCCCodec) -> tuple[float, float]:
    """FLOPs of one sample through the encoder and through the decoder (XLA's count).

    The receiver's equaliser (a complex multiply and divide per symbol) is not
    counted, as a digital link's demapper is not.

    Returns:
        ``(encoder_flops, decoder_flops)``.
    """
    graphdef, state = nnx.split(codec)
    k = codec.symbols

    def encode(state, features, snr_db):
        return nnx.merge(graphdef, state).encode(features, snr_db)

    def decode(state, equalised, effective_snr_db):
        return nnx.merge(graphdef, state).decode(equalised, effective_snr_db)

    encoder = xla_flops(
        encode,
        state,
        jax.ShapeDtypeStruct((1, *codec.feature_shape), jnp.float32),
        jax.ShapeDtypeStruct((1,), jnp.float32),
    )
    decoder = xla_flops(
        decode,
        state,
        jax.ShapeDtypeStruct((1, k), jnp.complex64),
        jax.ShapeDtypeStruct((1, k), jnp.float32),
    )
    return encoder, decoder
