"""Partial connectivity: which neighbours join an inference.

Each neighbour (devices 1..K-1) joins with probability ``p``, independently
per inference; device 0, the inferring device, always joins. With ``p = 0``
and ``local_device=True`` the aggregate is exactly device 0's own output
(local inference); with ``p = 1`` everybody joins.
"""

import math

import jax
import jax.numpy as jnp

from airinfer.ota._checks import check_positive_int, check_probability

__all__ = ["participation_mask"]


def participation_mask(key, batch_shape, num_devices, p):
    """Draw who joins each inference.

    Input:
        key: JAX PRNG key.
        batch_shape: leading dimensions, one draw per entry (per inference).
        num_devices: K >= 1.
        p: connection probability of each neighbour, in [0, 1]; a scalar or an
            array broadcastable to ``batch_shape`` (e.g. one p per sweep point).

    Output:
        ``[*batch_shape, K]`` float32 of 0/1, column 0 all ones.
    """
    check_positive_int("num_devices", num_devices)
    check_probability("p", p)
    batch_shape = tuple(batch_shape)
    p = jnp.asarray(p, jnp.float32)[..., None]
    shape = batch_shape + (num_devices,)
    # Drawn flat and reshaped: XLA compiles a one-dimensional generator much faster.
    draws = jax.random.uniform(key, (math.prod(shape),), jnp.float32).reshape(shape)
    # uniform is in [0, 1): p = 0 never joins, p = 1 always does.
    joined = (draws < p).astype(jnp.float32)
    return joined.at[..., 0].set(1.0)
