"""Units and signal conventions shared by the whole physical layer.

* Channel symbols are complex64 baseband samples with unit average energy per
  symbol unless a power is given.
* SNR is Es/N0 per complex symbol, in dB.
* ``no`` is the noise power per complex symbol: noise is CN(0, no), that is
  ``no / 2`` per real dimension (Sionna's convention). With unit-energy symbols
  ``no = 10 ** (-snr_db / 10)``.
"""

import jax.numpy as jnp

__all__ = [
    "db_to_linear",
    "linear_to_db",
    "snr_db_to_no",
    "normalize_power",
    "reals_to_symbols",
    "symbols_to_reals",
]


def db_to_linear(x_db):
    """Power ratio in dB to linear scale: ``10 ** (x_db / 10)``."""
    return jnp.power(10.0, jnp.asarray(x_db, jnp.float32) / 10.0)


def linear_to_db(x, floor=1e-30):
    """Linear power ratio to dB, with ``x`` clipped at ``floor`` so that 0 gives a finite value."""
    return 10.0 * jnp.log10(jnp.maximum(jnp.asarray(x, jnp.float32), floor))


def snr_db_to_no(snr_db, signal_power=1.0):
    """Noise power per complex symbol for an Es/N0 of ``snr_db`` dB.

    Args:
        snr_db: Es/N0 per complex symbol in dB, any shape.
        signal_power: average energy per symbol Es (default 1).

    Returns:
        ``no = Es / 10**(snr_db/10)``: the variance of the CN(0, no) noise,
        ``no / 2`` per real dimension. Same shape as ``snr_db``, float32.
    """
    return jnp.asarray(signal_power, jnp.float32) / db_to_linear(snr_db)


def normalize_power(x, power=1.0, axis=-1, eps=1e-12):
    """Scale each block so that its average energy per symbol equals ``power``.

    Every device normalises its own block: with ``x`` of shape
    ``[batch, num_devices, n]`` and ``axis=-1`` each ``x[b, k]`` gets
    ``mean(|x|^2) = power`` over its ``n`` symbols. Works for real and complex
    ``x``; ``eps`` keeps an all-zero block at zero with a finite gradient.
    """
    # |x|^2 as re^2 + im^2: no square root, so no division by |x| in the gradient
    squared = jnp.square(x.real) + jnp.square(x.imag) if jnp.iscomplexobj(x) else jnp.square(x)
    energy = jnp.mean(squared, axis=axis, keepdims=True)
    return x * jnp.sqrt(power / (energy + eps)).astype(x.dtype)


def reals_to_symbols(x):
    """Pack ``2n`` reals into ``n`` complex channel symbols.

    Input ``[..., 2n]`` float; output ``[..., n]`` complex64, the first half
    of the last axis going to the real parts and the second half to the
    imaginary parts. An odd length gets one zero appended.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.shape[-1] % 2:
        x = jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (1,), x.dtype)], axis=-1)
    re, im = jnp.split(x, 2, axis=-1)
    return jnp.asarray(re + 1j * im, jnp.complex64)


def symbols_to_reals(s, length=None):
    """Inverse of :func:`reals_to_symbols`: ``[..., n]`` complex to ``[..., 2n]`` float32.

    ``length`` drops the padding added for an odd number of reals.
    """
    x = jnp.concatenate([jnp.real(s), jnp.imag(s)], axis=-1).astype(jnp.float32)
    return x if length is None else x[..., :length]
