"""What every channel shares: the output type, input checks, complex Gaussian draws.

Conventions as in :mod:`airinfer.phy.channels`: complex baseband, ``no`` the noise power
per complex symbol (CN(0, no), ``no / 2`` per real dimension).
"""

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Backend",
    "BACKENDS",
    "ChannelOutput",
    "check_backend",
    "check_noise",
    "check_variance",
    "as_symbols",
    "batch_noise",
    "complex_normal",
    "expand_to_rank",
    "imperfect_csi",
]

Backend = Literal["sionna", "jax"]
BACKENDS = ("sionna", "jax")


class ChannelOutput(NamedTuple):
    """What comes out of a fading channel.

    Attributes:
        y: the received signal.
        h: the true channel realisation.
        h_est: what the receiver knows of ``h``: ``h`` itself with perfect CSI,
            else ``h + e`` with ``e ~ CN(0, receiver_csi_error_var)`` entrywise.
    """

    y: jax.Array
    h: jax.Array
    h_est: jax.Array


# --------------------------------------------------------------------------- checks


def check_backend(backend):
    """Reject a backend other than ``sionna`` or ``jax``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def check_noise(no, name="no"):
    """Reject a negative or NaN noise power when its value is known (not under ``jit``)."""
    if isinstance(no, jax.core.Tracer):
        return
    value = np.asarray(no)
    if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"{name} must be a real noise power, got dtype {value.dtype}")
    if np.any(np.isnan(value)) or np.any(value < 0):
        raise ValueError(
            f"{name} must be finite and >= 0 (noise power per complex symbol), got {value}"
        )


def check_variance(value, name):
    """Reject a negative variance when its value is known (not under ``jit``)."""
    if not isinstance(value, jax.core.Tracer) and not (np.all(np.asarray(value) >= 0)):
        raise ValueError(f"{name} must be >= 0, got {value}")


def as_symbols(x, min_ndim, what):
    """``x`` as complex64 symbols; at least ``min_ndim`` axes, else an error naming ``what``."""
    x = jnp.asarray(x)
    if x.ndim < min_ndim:
        raise ValueError(f"x must have shape {what}, got shape {x.shape}")
    return x.astype(jnp.complex64)


def batch_noise(no, batch_shape):
    """``no`` broadcast to the batch shape and flattened to ``[batch]`` (Sionna's layout)."""
    no = jnp.asarray(no, jnp.float32)
    if no.ndim > len(batch_shape):
        raise ValueError(
            f"no must broadcast to the batch dimensions {batch_shape} of x, got shape {no.shape}"
        )
    try:
        return jnp.broadcast_to(no, batch_shape).reshape(-1)
    except ValueError:
        raise ValueError(
            f"no must broadcast to the batch dimensions {batch_shape} of x, got shape {no.shape}"
        ) from None


# --------------------------------------------------------------------------- JAX helpers


def complex_normal(key, shape, variance=1.0):
    """Samples of CN(0, variance): ``variance / 2`` per real dimension, complex64."""
    parts = jax.random.normal(key, (2, *shape), jnp.float32)
    return (jnp.sqrt(jnp.asarray(variance, jnp.float32) / 2) * (parts[0] + 1j * parts[1])).astype(
        jnp.complex64
    )


def expand_to_rank(no, rank):
    """``no`` with trailing unit axes up to ``rank``: broadcasts over the last axes of ``x``."""
    return jnp.reshape(no, no.shape + (1,) * (rank - no.ndim))


def imperfect_csi(key, h, receiver_csi_error_var):
    """What the receiver knows of ``h``: ``h + e``, ``e ~ CN(0, receiver_csi_error_var)``.

    ``h`` itself when the variance is 0 (perfect CSI).
    """
    check_variance(receiver_csi_error_var, "receiver_csi_error_var")
    if isinstance(receiver_csi_error_var, (int, float)) and receiver_csi_error_var == 0:
        return h
    return h + complex_normal(key, h.shape, receiver_csi_error_var)
