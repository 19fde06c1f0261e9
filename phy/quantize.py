"""Uniform scalar quantisation of real tensors into bits, for digital links.

A ``b``-bit **mid-rise** quantiser with clipping at ``±clip``: the range
``[-clip, clip]`` is cut into ``L = 2**b`` cells of width
``step = 2 clip / L``; cell ``i`` holds ``[-clip + i step, -clip + (i+1) step)``
and is reconstructed at its centre ``-clip + (i + 1/2) step``. Mid-rise means
zero is a cell *boundary*, not a level: the levels are symmetric about zero
(``±step/2, ±3 step/2, ...``), which a 1-bit quantiser needs (sign bit).
Inputs inside the clip range come back with an error of at most ``step / 2``;
inputs outside are clipped to the outer levels.

Codes are ``int32`` in ``[0, L - 1]``; bits are ``[..., b]`` of 0/1, most
significant bit first. ``bits`` and ``clip`` are Python numbers (static under
``jax.jit``); everything else is jit-able.
"""

import jax
import jax.numpy as jnp

__all__ = [
    "MAX_BITS",
    "quantization_step",
    "quantize",
    "dequantize",
    "codes_to_bits",
    "bits_to_codes",
    "quantize_to_bits",
    "bits_to_values",
    "fake_quantize",
]

#: Codes must fit in int32 with room to spare and bits per value stay practical.
MAX_BITS = 16


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in [1, {MAX_BITS}], got {bits!r}")


def _check_clip(clip):
    try:
        value = float(clip)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        raise ValueError(f"clip must be a positive Python number, got {clip!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    return value


def quantization_step(bits, clip):
    """Cell width ``2 clip / 2**bits`` of the ``bits``-bit quantiser clipping at ``±clip``."""
    _check_bits(bits)
    return 2.0 * _check_clip(clip) / 2**bits


def quantize(x, bits, clip):
    """Real values to integer codes of the mid-rise quantiser.

    Parameters:
        x: ``[...]`` float array.
        bits: int in ``[1, 16]``, bits per value.
        clip: positive float; values beyond ``±clip`` are clipped.

    Output:
        ``[...]`` int32 codes in ``[0, 2**bits - 1]``.
    """
    step = quantization_step(bits, clip)
    clip = float(clip)
    levels = 2**bits
    cell = jnp.floor((jnp.asarray(x, jnp.float32) + clip) / step)
    # x == clip falls on the upper edge of the last cell: keep it there.
    return jnp.clip(cell, 0, levels - 1).astype(jnp.int32)


def dequantize(codes, bits, clip):
    """Integer codes to the centres of their cells, ``-clip + (code + 1/2) step``.

    Input ``[...]`` integer codes; output ``[...]`` float32.
    """
    step = quantization_step(bits, clip)
    return -float(clip) + (jnp.asarray(codes, jnp.float32) + 0.5) * step


def codes_to_bits(codes, bits, dtype=jnp.float32):
    """Codes ``[...]`` to their binary digits ``[..., bits]``, most significant first.

    ``dtype`` of the 0/1 output: float32 by default, as the Sionna mapper takes it.
    """
    _check_bits(bits)
    shifts = jnp.arange(bits - 1, -1, -1, dtype=jnp.int32)
    digits = (jnp.asarray(codes, jnp.int32)[..., None] >> shifts) & 1
    return digits.astype(dtype)


def bits_to_codes(bit_array):
    """Inverse of :func:`codes_to_bits`: ``[..., b]`` of 0/1 (MSB first) to int32 codes ``[...]``.

    Any value ``>= 0.5`` counts as a one, so soft or float bits are accepted.
    """
    bit_array = jnp.asarray(bit_array)
    b = bit_array.shape[-1]
    _check_bits(b)
    ones = (bit_array >= 0.5).astype(jnp.int32)
    weights = jnp.left_shift(1, jnp.arange(b - 1, -1, -1, dtype=jnp.int32))
    return jnp.sum(ones * weights, axis=-1).astype(jnp.int32)


def quantize_to_bits(x, bits, clip, dtype=jnp.float32):
    """Quantise ``x`` ``[...]`` and flatten its codes to bits ``[..., bits]`` (MSB first)."""
    return codes_to_bits(quantize(x, bits, clip), bits, dtype)


def bits_to_values(bit_array, clip):
    """Bits ``[..., b]`` (MSB first) back to reconstructed values ``[...]`` float32."""
    return dequantize(bits_to_codes(bit_array), jnp.asarray(bit_array).shape[-1], clip)


def fake_quantize(x, bits, clip):
    """Quantise and dequantise ``x`` with a straight-through gradient.

    The forward value is ``dequantize(quantize(x))``; the gradient is that of
    ``clip(x, -clip, clip)``, so a model can be trained through the quantiser
    (the true derivative is zero almost everywhere).
    """
    clipped = jnp.clip(jnp.asarray(x, jnp.float32), -float(clip), float(clip))
    quantized = dequantize(quantize(x, bits, clip), bits, clip)
    return clipped + jax.lax.stop_gradient(quantized - clipped)
