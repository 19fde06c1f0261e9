"""AWGN and the flat block-fading multiple-access channel (Rayleigh or Rician).

Conventions and backends as in :mod:`airinfer.phy.channels`. On the multiple-access
channel Sionna draws the fading and the noise, and the superposition is formed
in JAX (the same code for both backends), so that no gradient has to cross the
bridge.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.phy.bridge import bridge
from airinfer.phy.channels.base import (
    Backend,
    ChannelOutput,
    as_symbols,
    batch_noise,
    check_backend,
    check_noise,
    complex_normal,
    expand_to_rank,
    imperfect_csi,
)
from airinfer.phy.conventions import symbols_to_reals
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

__all__ = [
    "FADINGS",
    "awgn",
    "flat_fading_mac",
    "draw_flat_fading",
    "truncated_rayleigh_draws",
    "apply_mac",
    "exponential_correlation",
]

FADINGS = ("rayleigh", "rician")


def exponential_correlation(num_antennas, rho):
    """Exponential correlation matrix ``R[i, j] = rho ** |i - j|``, real ``rho`` in [0, 1)."""
    if not 0 <= rho < 1:
        raise ValueError(f"rx_correlation must be in [0, 1), got {rho}")
    idx = np.arange(num_antennas)
    return (rho ** np.abs(idx[:, None] - idx[None, :])).astype(np.complex64)


def _rician_los(uniform, shape_bk, num_rx_ant, k_factor):
    """The specular part of Rician fading: a half-wavelength ULA response with a uniform
    angle of arrival and a uniform phase per device, scaled to power K/(K+1)."""
    angle = uniform(shape_bk, -math.pi / 2, math.pi / 2)  # [batch, K]
    phase = uniform(shape_bk, 0.0, 2 * math.pi)  # [batch, K]
    m = np.arange(num_rx_ant, dtype=np.float32)[:, None]  # [M, 1]
    return angle, phase, m, math.sqrt(k_factor / (k_factor + 1))


# --------------------------------------------------------------------------- AWGN


def _awgn_tf(x, no):
    return sionna_phy().channel.AWGN()(x, no)


_awgn_sionna = bridge(_awgn_tf)


def awgn(key, x, no, *, backend: Backend = "sionna"):
    """Additive white Gaussian noise: ``y = x + n``, ``n ~ CN(0, no)``.

    Input:
        key: JAX PRNG key.
        x: ``[..., n]`` complex channel symbols (real input is cast).
        no: noise power per complex symbol, a scalar or broadcastable to the
            leading dimensions of ``x`` (Sionna's convention: ``no / 2`` per
            real dimension). ``no = 10 ** (-snr_db / 10)`` for unit-energy
            symbols at Es/N0 = ``snr_db``.
        backend: ``"sionna"`` (Sionna's ``AWGN`` via the bridge) or ``"jax"``.

    Output:
        y: ``[..., n]`` complex64.
    """
    check_backend(backend)
    check_noise(no)
    x = as_symbols(x, 1, "[..., n]")
    no = jnp.asarray(no, jnp.float32)
    if no.ndim > x.ndim:
        raise ValueError(f"no of shape {no.shape} has more dimensions than x of shape {x.shape}")
    if backend == "jax":
        return x + jnp.sqrt(expand_to_rank(no, x.ndim)) * complex_normal(key, x.shape)
    if x.ndim == 1:
        return _awgn_sionna(key, x[None], batch_noise(no, (1,)))[0]
    batch_shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    return _awgn_sionna(key, flat, batch_noise(no, batch_shape)).reshape(x.shape)


# --------------------------------------------------------------------------- flat-fading MAC


def _unit_noise_tf(shape):
    """CN(0, 1) receiver noise from Sionna's AWGN block (its noise at ``no = 1``)."""
    tf = tensorflow()
    return sionna_phy().channel.AWGN()(tf.zeros(shape, tf.complex64), 1.0)


def _mac_draw_tf(batch_size, num_devices, num_rx_ant, fading, k_factor, rx_correlation):
    """h [batch, M, K] from Sionna's flat-fading generator (Kronecker receive correlation)."""
    tf = tensorflow()
    sn = sionna_phy()
    spatial_corr = None
    if rx_correlation:
        spatial_corr = sn.channel.KroneckerModel(
            r_rx=tf.constant(exponential_correlation(num_rx_ant, rx_correlation))
        )
    h = sn.channel.GenerateFlatFadingChannel(num_devices, num_rx_ant, spatial_corr=spatial_corr)(
        batch_size
    )
    if fading == "rician":
        uniform = lambda shape, lo, hi: sn.config.tf_rng.uniform(shape, lo, hi, tf.float32)  # noqa: E731
        angle, phase, m, los_amp = _rician_los(
            uniform, [batch_size, num_devices], num_rx_ant, k_factor
        )
        arg = math.pi * m * tf.sin(angle)[:, None, :] + phase[:, None, :]  # [B, M, K]
        los = tf.complex(tf.cos(arg), tf.sin(arg))
        h = los_amp * los + math.sqrt(1 / (k_factor + 1)) * h
    return h


@functools.cache
def _sionna_mac_draw(batch_size, num_devices, num_rx_ant, fading, k_factor, rx_correlation):
    return bridge(
        functools.partial(
            _mac_draw_tf, batch_size, num_devices, num_rx_ant, fading, k_factor, rx_correlation
        )
    )


@functools.cache
def _sionna_unit_noise(shape):
    return bridge(functools.partial(_unit_noise_tf, list(shape)))


@functools.cache
def _sionna_mac_draws(batch_size, n, num_devices, num_rx_ant, fading, k_factor, rx_correlation):
    """Fading ``[B, M, K]`` and unit noise ``[B, M, n]`` in one bridged call."""

    def draws():
        h = _mac_draw_tf(batch_size, num_devices, num_rx_ant, fading, k_factor, rx_correlation)
        return h, _unit_noise_tf([batch_size, num_rx_ant, n])

    return bridge(draws)


# Sionna draws the fading and the noise; the superposition y = h x + sqrt(no) n
# is formed in JAX. Nothing differentiable then crosses the bridge, so the
# backward pass needs no TensorFlow round trip (which would redo the forward).
def _superpose(x, h, no, unit_noise):
    """y = h x + sqrt(no) n: h [..., M, K], x [..., K, n], no [...], n [..., M, n]."""
    y = jnp.einsum("...mk,...kn->...mn", h, x)
    return y + jnp.sqrt(expand_to_rank(no, y.ndim)).astype(y.dtype) * unit_noise


def _jax_mac_draw(key, batch_shape, num_devices, num_rx_ant, fading, k_factor, rx_correlation):
    key_nlos, key_angle, key_phase = jax.random.split(key, 3)
    h = complex_normal(key_nlos, (*batch_shape, num_rx_ant, num_devices))
    if rx_correlation:
        chol = jnp.asarray(np.linalg.cholesky(exponential_correlation(num_rx_ant, rx_correlation)))
        h = chol @ h
    if fading == "rician":
        keys = iter((key_angle, key_phase))
        uniform = lambda shape, lo, hi: jax.random.uniform(next(keys), shape, jnp.float32, lo, hi)  # noqa: E731
        angle, phase, m, los_amp = _rician_los(
            uniform, (*batch_shape, num_devices), num_rx_ant, k_factor
        )
        los = jnp.exp(1j * (math.pi * m * jnp.sin(angle)[..., None, :] + phase[..., None, :]))
        h = (los_amp * los + math.sqrt(1 / (k_factor + 1)) * h).astype(jnp.complex64)
    return h


def _unit_noise(key, shape, backend):
    """CN(0, 1) noise of the receiver: Sionna's AWGN block or ``jax.random``."""
    if backend == "jax":
        return complex_normal(key, shape)
    batch = math.prod(shape[:-2])
    return _sionna_unit_noise((batch, *shape[-2:]))(key).reshape(shape)


def _check_fading(fading, k_factor, num_rx_ant, rx_correlation):
    if fading not in FADINGS:
        raise ValueError(f"fading must be one of {FADINGS}, got {fading!r}")
    if not k_factor >= 0 or not math.isfinite(k_factor):
        raise ValueError(f"k_factor must be finite and >= 0, got {k_factor}")
    if fading != "rician" and k_factor != 0:
        raise ValueError(
            f"k_factor={k_factor} would have no effect: it only applies to fading='rician', "
            f"not to {fading!r}"
        )
    if not isinstance(num_rx_ant, int) or num_rx_ant < 1:
        raise ValueError(f"num_rx_ant must be a positive int, got {num_rx_ant!r}")
    exponential_correlation(num_rx_ant, rx_correlation)  # validates rx_correlation


def draw_flat_fading(
    key,
    batch_shape,
    num_devices,
    *,
    num_rx_ant=1,
    fading="rayleigh",
    k_factor=0.0,
    rx_correlation=0.0,
    backend: Backend = "sionna",
):
    """Draw flat block-fading gains of a K-device multiple-access channel.

    Rayleigh: i.i.d. CN(0, 1) entries (Sionna's ``GenerateFlatFadingChannel``),
    optionally correlated across receive antennas with the exponential model
    (Sionna's ``KroneckerModel``, ``R = L L^H``, ``h = L h_iid``). Rician adds a
    specular part of power ``K/(K+1)`` (half-wavelength ULA response, uniform
    angle of arrival and phase per device) to the diffuse part of power
    ``1/(K+1)``, so that ``E|h|^2 = 1`` either way.

    Input:
        key: JAX PRNG key.
        batch_shape: leading dimensions, e.g. ``(batch,)``.
        num_devices: K >= 1, one transmit antenna each.
        num_rx_ant: M >= 1 receive antennas.
        fading: ``"rayleigh"`` or ``"rician"``.
        k_factor: Rician K-factor (linear); only with ``fading="rician"`` (0 otherwise).
        rx_correlation: exponential correlation coefficient in [0, 1).
        backend: ``"sionna"`` or ``"jax"``.

    Output:
        h: ``[*batch_shape, num_rx_ant, num_devices]`` complex64.
    """
    check_backend(backend)
    _check_fading(fading, k_factor, num_rx_ant, rx_correlation)
    if not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be a positive int, got {num_devices!r}")
    batch_shape = tuple(batch_shape)
    params = (num_devices, num_rx_ant, fading, float(k_factor), float(rx_correlation))
    if backend == "jax":
        return _jax_mac_draw(key, batch_shape, *params)
    batch = math.prod(batch_shape)
    h = _sionna_mac_draw(batch, *params)(key)
    return h.reshape(*batch_shape, num_rx_ant, num_devices)


def _truncated_rayleigh_tf(num_blocks, num_devices, num_symbols, above):
    tf = tensorflow()
    uniform = sionna_phy().config.tf_rng.uniform([num_blocks, num_devices], 0.0, 1.0, tf.float32)
    return tf.cast(uniform < above, tf.float32), _unit_noise_tf([num_blocks, num_symbols])


@functools.cache
def _sionna_truncated_rayleigh(num_blocks, num_devices, num_symbols, above):
    return bridge(
        functools.partial(_truncated_rayleigh_tf, num_blocks, num_devices, num_symbols, above)
    )


def truncated_rayleigh_draws(
    key, num_blocks, num_devices, num_reals, threshold, *, backend: Backend = "sionna"
):
    """The random numbers of a Rayleigh block-fading MAC under truncated channel inversion.

    With ``h ~ CN(0, 1)`` known at each device, inversion cancels the gain and
    the phase: all that reaches the receiver is whether ``|h|^2 >= threshold``
    (the device transmits) or not (it stays silent). ``|h|^2 ~ Exp(1)``, so
    that event has probability ``exp(-threshold)`` and is drawn directly, one
    uniform number per device and block, instead of the two normals of ``h``.
    The receiver's noise is drawn once per received real.

    Input:
        key: JAX PRNG key.
        num_blocks: independent fading blocks (inferences).
        num_devices: K devices, one gain each per block.
        num_reals: reals per block (twice the channel uses; even).
        threshold: the truncation threshold on ``|h|^2``, > 0.
        backend: ``"sionna"`` (Sionna's generator and its ``AWGN`` block) or
            ``"jax"`` (``jax.random``: one 32-bit word per event).

    Output:
        active: ``[num_blocks, num_devices]`` float32, 1 where ``|h|^2 >= threshold``.
        noise: ``[num_blocks, num_reals]`` float32, i.i.d. N(0, 1).
    """
    check_backend(backend)
    if num_reals % 2:
        raise ValueError(f"num_reals must be even (two per channel use), got {num_reals}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    above = math.exp(-threshold)
    if backend == "sionna":
        active, unit_noise = _sionna_truncated_rayleigh(
            num_blocks, num_devices, num_reals // 2, above
        )(key)
        # CN(0, 1): each real part has variance 1/2.
        return active, math.sqrt(2.0) * symbols_to_reals(unit_noise)
    key_gain, key_noise = jax.random.split(key)
    # Flat draws, reshaped: XLA compiles each generator for one dimension.
    word = jax.random.bits(key_gain, (num_blocks * num_devices,), jnp.uint32)
    active = (word < np.uint32(min(above * 2.0**32, 2.0**32 - 1))).astype(jnp.float32)
    noise = jax.random.normal(key_noise, (num_blocks * num_reals,), jnp.float32)
    return active.reshape(num_blocks, num_devices), noise.reshape(num_blocks, num_reals)


def apply_mac(key, x, h, no, *, backend: Backend = "sionna"):
    """Apply a known multiple-access channel: ``y = sum_k h_k x_k + n``.

    Input:
        key: JAX PRNG key (the noise).
        x: ``[..., num_devices, n]`` complex symbols, device k in row k.
        h: ``[..., num_rx_ant, num_devices]`` complex gains, constant over the
            ``n`` channel uses of a block.
        no: noise power per complex symbol, broadcastable to ``x.shape[:-2]``.
        backend: ``"sionna"`` or ``"jax"``.

    Output:
        y: ``[..., num_rx_ant, n]`` complex64.
    """
    check_backend(backend)
    check_noise(no)
    x = as_symbols(x, 2, "[..., num_devices, n]")
    h = jnp.asarray(h).astype(jnp.complex64)
    batch_shape, (num_devices, n) = x.shape[:-2], x.shape[-2:]
    if h.shape[:-2] != batch_shape or h.shape[-1] != num_devices:
        raise ValueError(
            f"h must have shape [..., num_rx_ant, {num_devices}] with batch {batch_shape}, "
            f"got {h.shape} for x of shape {x.shape}"
        )
    no = batch_noise(no, batch_shape).reshape(batch_shape)
    return _superpose(x, h, no, _unit_noise(key, (*batch_shape, h.shape[-2], n), backend))


def flat_fading_mac(
    key,
    x,
    no,
    *,
    num_rx_ant=1,
    fading="rayleigh",
    k_factor=0.0,
    rx_correlation=0.0,
    receiver_csi_error_var=0.0,
    backend: Backend = "sionna",
):
    """The K-user flat block-fading multiple-access channel ``y = sum_k h_k x_k + n``.

    Each batch example is one fading block: ``h`` is drawn once (see
    :func:`draw_flat_fading`) and held over the ``n`` channel uses. For fast
    fading put the channel uses into the batch dimension and use ``n = 1``.

    Input:
        key: JAX PRNG key.
        x: ``[..., num_devices, n]`` complex symbols (one transmit antenna per
            device; powers are whatever ``x`` carries).
        no: noise power per complex symbol (CN(0, no), ``no / 2`` per real
            dimension), broadcastable to ``x.shape[:-2]``. The received SNR of
            device k is ``E|x_k|^2 E|h_k|^2 / no``.
        num_rx_ant, fading, k_factor, rx_correlation: see :func:`draw_flat_fading`.
        receiver_csi_error_var: variance of the receiver's channel-estimation error.
        backend: ``"sionna"`` or ``"jax"``.

    Output:
        :class:`ChannelOutput` with ``y`` ``[..., num_rx_ant, n]``, ``h`` and
        ``h_est`` ``[..., num_rx_ant, num_devices]``, all complex64.
    """
    check_backend(backend)
    check_noise(no)
    _check_fading(fading, k_factor, num_rx_ant, rx_correlation)
    x = as_symbols(x, 2, "[..., num_devices, n]")
    batch_shape, (num_devices, n) = x.shape[:-2], x.shape[-2:]
    if num_devices < 1:
        raise ValueError(
            f"x must carry at least one device (num_devices >= 1), got shape {x.shape}"
        )
    key_channel, key_noise, key_csi = jax.random.split(key, 3)
    params = (num_devices, num_rx_ant, fading, float(k_factor), float(rx_correlation))
    if backend == "jax":
        h = _jax_mac_draw(key_channel, batch_shape, *params)
        unit_noise = complex_normal(key_noise, (*batch_shape, num_rx_ant, n))
    else:
        h, unit_noise = _sionna_mac_draws(math.prod(batch_shape), n, *params)(key_channel)
        h = h.reshape(*batch_shape, num_rx_ant, num_devices)
        unit_noise = unit_noise.reshape(*batch_shape, num_rx_ant, n)
    no = batch_noise(no, batch_shape).reshape(batch_shape)
    y = _superpose(x, h, no, unit_noise)
    return ChannelOutput(y, h, imperfect_csi(key_csi, h, receiver_csi_error_var))
