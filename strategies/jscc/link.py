"""The analog link of the split: the channel the symbols cross, and the receiver's equaliser.

Channels (``channel``):

* ``awgn``: ``y = x + n`` (:func:`airinfer.phy.channels.awgn`).
* ``rayleigh``: one flat fading gain ``h ~ CN(0, 1)`` per sample, held over its
  ``k`` symbols (:func:`airinfer.phy.channels.flat_fading_mac` with one device).
* ``tdl-a``: 3GPP TDL-A over OFDM (:func:`airinfer.phy.channels.ofdm_mac`: Sionna's
  TDL block or its JAX twin), the symbols placed by :func:`ofdm_positions`.

The receiver knows the channel gains and ``no`` and equalises every symbol
with the MMSE weight ``x_hat = conj(h) y / (|h|^2 + no)``.
"""

import math

import jax.numpy as jnp
import numpy as np

from airinfer.phy import channels
from airinfer.phy.conventions import linear_to_db, snr_db_to_no
from airinfer.strategies.base import CHANNELS

__all__ = ["ofdm_positions", "analog_link"]


def ofdm_positions(symbols: int, subcarriers: int) -> tuple[tuple[int, int], np.ndarray]:
    """Where ``k`` symbols go on the resource grid of the ``tdl-a`` channel.

    The grid has ``ceil(k / subcarriers)`` OFDM symbols of ``subcarriers``
    subcarriers; the ``k`` symbols take evenly spaced resource elements
    (frequency first), so that they spread over the band.

    Returns:
        ``((num_ofdm_symbols, subcarriers), positions)``: ``positions`` ``[k]``
        int, distinct indices into the flattened grid.
    """
    num_ofdm_symbols = -(-symbols // subcarriers)
    size = num_ofdm_symbols * subcarriers
    return (num_ofdm_symbols, subcarriers), (np.arange(symbols) * size) // symbols


def analog_link(key, x, snr_db, channel: str, *, backend="sionna", ofdm_subcarriers: int = 64):
    """Send analog symbols over ``channel`` and equalise them at the receiver.

    Input:
        key: JAX PRNG key (channel and noise).
        x: ``[batch, k]`` complex64 symbols.
        snr_db: Es/N0 per complex symbol in dB, scalar or ``[batch]``; noise is
            CN(0, no) with ``no = 10**(-snr_db/10)`` (``+inf`` gives no noise).
        channel: ``awgn``, ``rayleigh`` or ``tdl-a`` (see the module docstring).
        backend: ``sionna`` or ``jax`` (the channels' JAX twins).
        ofdm_subcarriers: subcarriers of the ``tdl-a`` resource grid.

    Output:
        ``(equalised, effective_snr_db)``: ``[batch, k]`` complex64, the MMSE
        estimates ``conj(h) y / (|h|^2 + no)``, and ``[batch, k]`` float32,
        ``snr_db + 10 log10 |h|^2`` per symbol.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel: unknown {channel!r}; allowed: {', '.join(CHANNELS)}")
    if backend not in ("sionna", "jax"):
        raise ValueError(f"backend: unknown {backend!r}; allowed: sionna, jax")
    x = jnp.asarray(x).astype(jnp.complex64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape [batch, k], got {x.shape}")
    batch, k = x.shape
    snr_db = jnp.broadcast_to(jnp.asarray(snr_db, jnp.float32), (batch,))
    no = snr_db_to_no(snr_db)
    if channel == "awgn":
        y = channels.awgn(key, x, no, backend=backend)
        h = jnp.ones_like(x)
    elif channel == "rayleigh":
        out = channels.flat_fading_mac(key, x[:, None, :], no, backend=backend)
        y = out.y[:, 0, :]
        h = jnp.broadcast_to(out.h_est[:, 0, :], (batch, k))
    else:
        grid_shape, positions = ofdm_positions(k, ofdm_subcarriers)
        grid = jnp.zeros((batch, math.prod(grid_shape)), jnp.complex64).at[:, positions].set(x)
        out = channels.ofdm_mac(
            key, grid.reshape(batch, 1, *grid_shape), no, model="tdl-a", backend=backend
        )
        y = out.y[:, 0].reshape(batch, -1)[:, positions]
        h = out.h_est[:, 0, 0].reshape(batch, -1)[:, positions]
    gain = jnp.real(h) ** 2 + jnp.imag(h) ** 2
    # the floor keeps h = 0 with no = 0 (a noise-free deep fade) at 0, not NaN
    denominator = jnp.maximum(gain + no[:, None], jnp.finfo(jnp.float32).tiny)
    equalised = jnp.conj(h) * y / denominator.astype(jnp.complex64)
    effective_snr_db = snr_db[:, None] + linear_to_db(gain)
    return equalised, effective_snr_db
