"""The digital link in pure JAX: ``LinkConfig(backend="jax")`` of :mod:`airinfer.phy.digital`.

The same link as the Sionna blocks, built from their JAX twins. On the flat
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

On the OFDM channels (the layout of :mod:`airinfer.phy.digital`)::

    symbols -> ofdm_receiver.to_grid (Sionna's ResourceGridMapper, pilots included)
      -> H = tr38901.ofdm_response, one independent draw per slot; y = H x + CN(0, no)
      -> H (perfect CSI, + CN(0, receiver_csi_error_var)) | ofdm_receiver.ls_estimate
      -> ofdm_receiver.lmmse_equalize (Sionna's LMMSEEqualizer: unbiased, no_eff)
      -> qam.demap with no_eff -> ldpc.decode

The channel draws are the TDL/CDL twin's (the same laws as Sionna's, see
:mod:`airinfer.phy.channels.tr38901`), so BLERs agree with the Sionna link within
Monte-Carlo error, not draw for draw.

Nothing here imports TensorFlow or Sionna. Every function is ``jit``- and
``vmap``-able; the public checks and the dispatch on ``config.backend`` live in
:mod:`airinfer.phy.digital`.
"""

import functools

import jax
import jax.numpy as jnp

from airinfer.phy import ldpc, ofdm_receiver, qam
from airinfer.phy.channels import tr38901
from airinfer.phy.link_config import _MIN_CHANNEL_POWER, _MIN_NOISE_POWER

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
    """Encode, map, send through the channel and demap: the decoder's input.

    Input:
        key: JAX PRNG key of the fading, the noise and the CSI error.
        bits: ``[batch, k]`` float32 of 0/1.
        no: ``[batch]`` float32, noise power per complex symbol (CN(0, no)).
        config: :class:`~airinfer.phy.link_config.LinkConfig`.

    Output:
        ``[batch, n]`` float32 LLRs ``log(p(b=1)/p(b=0))``, demapped with the
        post-equalisation noise: ``no / |h_est|^2`` flat, the LMMSE ``no_eff`` on OFDM.
    """
    key_fade, key_noise, key_error = jax.random.split(key, 3)
    x = modulate(bits, config)  # [batch, n / m]
    if config.is_ofdm:
        return _ofdm_llrs((key_fade, key_noise, key_error), x, no, config)
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


def _ofdm_llrs(keys, x, no, config):
    """The OFDM channel and receiver: symbols ``[batch, N]`` -> LLRs ``[batch, n]``."""
    key_fade, key_noise, key_error = keys
    grid = ofdm_receiver.to_grid(x, config)  # [batch, slots, S, F]
    # one independent channel per slot
    h = tr38901.ofdm_response(
        key_fade, grid.shape[:2], config.channel, num_rx_ant=1,
        num_ofdm_symbols=config.num_ofdm_symbols, fft_size=config.grid_fft_size,
        subcarrier_spacing=config.subcarrier_spacing, delay_spread=config.delay_spread,
        carrier_frequency=config.carrier_frequency, speed=config.speed,
    )[:, :, 0]  # fmt: skip
    no_slot = no[:, None, None, None]
    y = h * grid + _complex_normal(key_noise, grid.shape, no_slot)
    no_rx = jnp.maximum(no_slot, _MIN_NOISE_POWER)
    if config.csi == "ls":
        h_hat, err_var = ofdm_receiver.ls_estimate(y, no_rx[..., 0, 0], config)
    else:
        h_hat, err_var = h, jnp.zeros((), jnp.float32)
        if config.receiver_csi_error_var > 0:
            h_hat = h + _complex_normal(key_error, h.shape, config.receiver_csi_error_var)
    x_hat, no_eff = ofdm_receiver.lmmse_equalize(y, h_hat, err_var, no_rx)
    x_hat = ofdm_receiver.data_symbols(x_hat, config)
    no_eff = ofdm_receiver.data_symbols(no_eff, config)
    return qam.demap(x_hat, no_eff, config.bits_per_symbol)


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
