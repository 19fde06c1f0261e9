"""The digital link in pure JAX: ``LinkConfig(backend="jax")`` of :mod:`airinfer.phy.digital`.

The same link as the Sionna blocks, built from their JAX twins, on the flat
channels::

    info bits [batch, k] -> ldpc.encode (5G LDPC, k -> n) -> qam.map_bits (Gray QAM)
      -> AWGN | Rayleigh h ~ CN(0, 1) i.i.d. per symbol
      -> one-tap equaliser with h or an estimate h + CN(0, receiver_csi_error_var)
      -> qam.demap("app") with noise variance no / max(|h_est|^2, 1e-12)
      -> ldpc.decode (belief propagation, optionally stopping early) -> bits [batch, k]

:func:`airinfer.phy.ldpc.encode` gives Sionna's ``LDPC5GEncoder`` codewords bit
for bit and :func:`airinfer.phy.qam.map_bits` its ``Mapper`` symbols, so the
transmitted symbols are the Sionna link's exactly; the channel's random draws
are JAX's (another generator than the bridge's: the same key gives other
noise, with the same distribution). SNR is Es/N0 per complex symbol: unit-energy
symbols, noise CN(0, no). LLRs are ``log(p(b=1) / p(b=0))``.

Nothing here imports TensorFlow or Sionna. Every function is ``jit``- and
``vmap``-able; the public checks and the dispatch on ``config.backend`` live in
:mod:`airinfer.phy.digital`.
"""

import functools

import jax
import jax.numpy as jnp

from airinfer.phy import ldpc, qam
from airinfer.phy.link_config import _MIN_CHANNEL_POWER

__all__ = ["modulate", "channel_llrs", "decode"]


def modulate(bits, config):
    """The transmitted symbols: info bits ``[..., k]`` of 0/1 -> ``[..., n / m]`` complex64.

    LDPC encoding (``coding="ldpc"``) then Gray QAM mapping; the symbols of
    Sionna's ``LDPC5GEncoder`` + ``Mapper("qam", m)``, bit for bit.
    """
    if config.coding == "ldpc":
        bits = ldpc.encode(bits, ldpc.ldpc_code(config.k, config.codeword_length))
    return qam.map_bits(bits, config.bits_per_symbol)


def _complex_normal(key, shape, var):
    """CN(0, var) complex64 of ``shape`` (``var/2`` per real dimension)."""
    return jnp.sqrt(jnp.asarray(var, jnp.float32)) * jax.random.normal(key, shape, jnp.complex64)


# jitted with the configuration static, so that eager calls run compiled too
@functools.partial(jax.jit, static_argnames="config")
def channel_llrs(key, bits, no, config):
    """Encode, map, send through the flat channel and demap: the decoder's input.

    Input:
        key: JAX PRNG key of the fading, the noise and the CSI error.
        bits: ``[batch, k]`` float32 of 0/1.
        no: ``[batch]`` float32, noise power per complex symbol (CN(0, no)).
        config: :class:`~airinfer.phy.link_config.LinkConfig` on ``"awgn"`` or ``"rayleigh"``.

    Output:
        ``[batch, n]`` float32 LLRs ``log(p(b=1)/p(b=0))``, demapped with the
        post-equalisation noise ``no / |h_est|^2``.
    """
    key_fade, key_noise, key_error = jax.random.split(key, 3)
    x = modulate(bits, config)  # [batch, n / m]
    if config.channel == "awgn":
        h = jnp.ones_like(x)
    else:
        h = _complex_normal(key_fade, x.shape, 1.0)
    y = h * x + _complex_normal(key_noise, x.shape, no[:, None])
    h_est = h
    if config.receiver_csi_error_var > 0:
        h_est = h + _complex_normal(key_error, x.shape, config.receiver_csi_error_var)
    power = jnp.maximum(jnp.abs(h_est) ** 2, _MIN_CHANNEL_POWER)
    y_eq = y * jnp.conj(h_est) / power
    return qam.demap(y_eq, no[:, None] / power, config.bits_per_symbol)


@functools.partial(jax.jit, static_argnames="config")
def decode(llr, config):
    """Info-bit decisions ``[batch, k]`` float32 of 0/1 from LLRs ``[batch, n]``.

    Belief propagation (:func:`airinfer.phy.ldpc.decode`, ``config.num_iter``
    iterations, stopping a block early with ``config.early_stop``), or the
    signs of the LLRs uncoded.
    """
    if config.coding != "ldpc":
        return (llr > 0).astype(jnp.float32)
    code = ldpc.ldpc_code(config.k, config.codeword_length)
    decided = ldpc.decode(llr, code, num_iter=config.num_iter, early_stop=config.early_stop)
    return decided.astype(jnp.float32)
