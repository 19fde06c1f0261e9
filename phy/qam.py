"""Gray-labelled square QAM in JAX: the mapper and the APP / max-log demapper.

The JAX-native twin of Sionna's ``Mapper("qam", m)`` and ``Demapper(method,
"qam", m)``: the same constellation (the 5G NR labelling of 3GPP TS 38.211
§5.1, unit average energy), the same bit order and the same LLR sign, so that
either can stand for the other (tests/phy/test_qam.py ties them). It needs no
TensorFlow, and it ``jit``s, ``vmap``s and differentiates like any JAX code.

Shapes follow Sionna's:

* :func:`map_bits`: bits ``[..., n * m]`` → symbols ``[..., n]``; the ``m`` bits of a
  symbol are consecutive, the first one the most significant of its label.
* :func:`demap`: symbols ``[..., n]`` and noise variance ``no`` (broadcastable
  to ``[..., n]``) → LLRs ``[..., n * m]`` with ``LLR = log P(b=1 | y) / P(b=0 | y)``,
  equiprobable bits, ``P(y | x) ∝ exp(-|y - x|² / no)``.

>>> import jax.numpy as jnp
>>> symbols = map_bits(jnp.array([0, 0, 1, 1]), 2)   # QPSK: two symbols
>>> bool(jnp.all(demap(symbols, 1e-3, 2) * (2 * jnp.array([0, 0, 1, 1]) - 1) > 0))
True
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DEMAPPING_METHODS", "qam_constellation", "bit_labels", "map_bits", "demap"]

DEMAPPING_METHODS = ("app", "maxlog")


def _check_order(num_bits_per_symbol: int) -> None:
    m = num_bits_per_symbol
    if isinstance(m, bool) or not isinstance(m, int) or m < 2 or m % 2:
        raise ValueError(f"num_bits_per_symbol: {m!r} is not an even int >= 2")


@functools.cache
def bit_labels(num_bits_per_symbol: int) -> np.ndarray:
    """``[2**m, m]`` int8: row ``i`` holds the bits of label ``i``, most significant first."""
    _check_order(num_bits_per_symbol)
    m = num_bits_per_symbol
    return ((np.arange(2**m)[:, None] >> np.arange(m - 1, -1, -1)) & 1).astype(np.int8)


def _gray_amplitude(bits: np.ndarray) -> np.ndarray:
    """Amplitudes in {±1, ±3, …} of the Gray-labelled PAM for rows of ``bits`` ``[P, k]``.

    38.211's construction: the first bit picks the sign, the rest, recursively,
    the distance from the outermost level ``2**(k-1)``, so that neighbours
    differ in one bit.
    """
    sign = 1 - 2 * bits[:, 0].astype(np.int64)
    if bits.shape[1] == 1:
        return sign
    return sign * (2 ** (bits.shape[1] - 1) - _gray_amplitude(bits[:, 1:]))


@functools.cache
def qam_constellation(num_bits_per_symbol: int) -> np.ndarray:
    """``[2**m]`` complex64 points of unit average energy; point ``i`` carries label ``i``.

    Even label bits choose the in-phase amplitude, odd ones the quadrature.
    """
    labels = bit_labels(num_bits_per_symbol)
    points = _gray_amplitude(labels[:, 0::2]) + 1j * _gray_amplitude(labels[:, 1::2])
    # the mean energy is an integer (2, 10, 42, 170): scaled in single precision
    # as Sionna does, the points are the same floats
    energy = np.float32(np.mean(np.abs(points) ** 2))
    points = points.astype(np.complex64) / np.sqrt(energy)
    points.setflags(write=False)
    return points


def map_bits(bits, num_bits_per_symbol: int) -> jax.Array:
    """Symbols ``[..., n]`` complex64 of bits ``[..., n * m]`` (0/1, any int or float dtype)."""
    _check_order(num_bits_per_symbol)
    m = num_bits_per_symbol
    bits = jnp.asarray(bits)
    if bits.shape[-1] % m:
        raise ValueError(f"bits: last axis {bits.shape[-1]} is not a multiple of {m}")
    groups = bits.reshape(*bits.shape[:-1], bits.shape[-1] // m, m).astype(jnp.int32)
    index = jnp.sum(groups << jnp.arange(m - 1, -1, -1, dtype=jnp.int32), axis=-1)
    return jnp.asarray(qam_constellation(m))[index]


def demap(y, no, num_bits_per_symbol: int, method: str = "app") -> jax.Array:
    """LLRs ``[..., n * m]`` float32 of received symbols ``y [..., n]``.

    Args:
        y: complex received symbols, already equalised.
        no: the noise variance per complex symbol, broadcastable to ``y``'s
            shape; values below the smallest positive float32 are raised to it.
        num_bits_per_symbol: ``m``.
        method: ``app`` (exact: log-sum-exp over the points of each bit value)
            or ``maxlog`` (the largest term only).
    """
    if method not in DEMAPPING_METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(DEMAPPING_METHODS)}")
    _check_order(num_bits_per_symbol)
    labels = bit_labels(num_bits_per_symbol)
    points = jnp.asarray(qam_constellation(num_bits_per_symbol))
    y = jnp.asarray(y, jnp.complex64)
    no = jnp.maximum(jnp.asarray(no, jnp.float32), np.finfo(np.float32).tiny)
    # [..., n, P]: the log-likelihood of each point, up to a constant
    exponents = -(jnp.abs(y[..., None] - points) ** 2) / no[..., None]
    reduce = jax.nn.logsumexp if method == "app" else jnp.max
    # [P/2, m]: column j lists the points whose label has bit j = 1 (0); gathered,
    # [..., n, P/2, m], then reduced over the points
    ones, zeros = (np.stack([np.flatnonzero(column == v) for column in labels.T], axis=1)
                   for v in (1, 0))  # fmt: skip
    llrs = reduce(exponents[..., ones], axis=-2) - reduce(exponents[..., zeros], axis=-2)
    return llrs.reshape(*llrs.shape[:-2], -1)
