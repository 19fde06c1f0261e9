"""Checks and shapes of the arrays the aggregation functions take (values, SNRs).

Shared by :func:`~airinfer.ota.aircomp.over_the_air_average`,
:func:`~airinfer.ota.ensemble.ensemble_over_the_air` and
:func:`~airinfer.ota.orthogonal.orthogonal_average`, so that the three read
their inputs the same way: values ``[..., K, C]`` with the devices second to
last (checked against ``num_devices`` when given), an SNR that is a scalar, a
1-D sweep or an array broadcastable to the batch, and no NaN or inf where the
arrays are concrete (under ``jit`` the estimate's ``decision`` flags them).
"""

import jax.numpy as jnp

from airinfer.ota._checks import check_positive_int
from airinfer.ota.encoding import check_finite

SWEEP_LAYOUT = "a scalar, a 1-D sweep [S] or an array broadcastable to the batch"


def device_values(values, num_devices=None, name="values"):
    """``values`` as float32 ``[..., K, C]``, finite where concrete, K = ``num_devices`` if given.

    The devices axis of a mix-up such as members' outputs ``[K, N, C]`` passed
    for ``[N, K, C]`` is only detectable against the number of devices, so an
    explicit ``num_devices`` is checked here.
    """
    check_finite(name, values)
    values = jnp.asarray(values, jnp.float32)
    if values.ndim < 2:
        raise ValueError(f"{name} must have shape [..., K, C] (K devices), got {values.shape}")
    if num_devices is not None:
        check_positive_int("num_devices", num_devices)
        if values.shape[-2] != num_devices:
            raise ValueError(
                f"{name}: expected shape [..., K={num_devices}, C] (devices second to last), "
                f"got {values.shape}; members' outputs [K, N, C] go in as "
                "np.moveaxis(outputs, 0, 1)"
            )
    check_positive_int(f"num_devices (K, {name}.shape[-2])", values.shape[-2])
    check_positive_int(f"num_values (C, {name}.shape[-1])", values.shape[-1])
    return values


def sweep(values, snr_db, name="snr_db"):
    """``(values, snr_db)`` with a 1-D ``snr_db`` [S] made a sweep over the whole batch.

    Input:
        values: ``[..., K, C]`` float32.
        snr_db: scalar, ``[S]`` (a sweep) or an array of two or more dimensions
            that broadcasts with ``values.shape[:-2]``; refused if NaN or
            -inf where concrete (+inf dB is a noiseless link).

    Output:
        ``(values, snr_db)``: for a sweep, values ``[1, ..., K, C]`` and snr_db
        ``[S, 1, ..., 1]``, so that the batch becomes ``[S, ...]``; otherwise
        both as given (float32).
    """
    check_finite(name, snr_db, allow_posinf=True)
    snr_db = jnp.asarray(snr_db, jnp.float32)
    if snr_db.ndim != 1:
        return values, snr_db
    return values[None], snr_db.reshape(snr_db.shape + (1,) * (values.ndim - 2))


def broadcast_batch(values, snr_db, participation=None, name="snr_db"):
    """The batch: ``values`` [..., K, C], ``snr_db`` and ``participation`` [..., K] broadcast.

    Raises:
        ValueError: one line naming the shapes that do not broadcast.
    """
    shapes = [values.shape[:-2], jnp.shape(snr_db)]
    if participation is not None:
        mask = jnp.shape(participation)
        if len(mask) < 1 or mask[-1] != values.shape[-2]:
            raise ValueError(
                f"participation: expected shape [..., K={values.shape[-2]}] (one entry per "
                f"device of values {values.shape}), got {mask}"
            )
        shapes.append(mask[:-1])
    try:
        return jnp.broadcast_shapes(*shapes)
    except ValueError:
        given = f"values {values.shape}, {name} {jnp.shape(snr_db)}"
        if participation is not None:
            given += f", participation {jnp.shape(participation)}"
        raise ValueError(
            f"{name} must be {SWEEP_LAYOUT} {values.shape[:-2]}; got {given}"
        ) from None
