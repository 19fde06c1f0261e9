"""Channels: Sionna's models run through the bridge, with JAX-native twins.

Every function takes a JAX key first and follows the conventions of
:mod:`phy.conventions`: complex baseband symbols, ``no`` the noise power per
complex symbol (CN(0, no), ``no / 2`` per real dimension), so that the
received SNR of device k is ``P_k * E|h_k|^2 / no``.

``backend="sionna"`` (the default) runs Sionna's blocks inside the JAX program
(:func:`phy.bridge.bridge`); ``backend="jax"`` runs the pure-JAX twin, which is
``vmap``-able and needs no TensorFlow. The twins draw from the same
distributions and apply the channel identically; the tests tie them together.
On the multiple-access channel Sionna draws the fading and the noise, and the
superposition is formed in JAX (the same code for both backends), so that no
gradient has to cross the bridge.

``no`` broadcasts over the leading (batch) dimensions of ``x`` only, so SNR
points and Monte-Carlo trials can share one call: give ``x`` the shape
``[num_snr, num_trials, ...]`` and ``no`` the shape ``[num_snr, 1]``.
"""

import functools
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.phy._tf import sionna_phy, tensorflow
from airinfer.phy.bridge import bridge
from airinfer.phy.conventions import symbols_to_reals

__all__ = [
    "ChannelOutput",
    "awgn",
    "flat_fading_mac",
    "draw_flat_fading",
    "truncated_rayleigh_draws",
    "apply_mac",
    "ofdm_mac",
    "exponential_correlation",
    "complex_normal",
]

Backend = Literal["sionna", "jax"]
BACKENDS = ("sionna", "jax")
FADINGS = ("rayleigh", "rician")
OFDM_MODELS = (
    "tdl-a",
    "tdl-b",
    "tdl-c",
    "tdl-d",
    "tdl-e",
    "cdl-a",
    "cdl-b",
    "cdl-c",
    "cdl-d",
    "cdl-e",
)


class ChannelOutput(NamedTuple):
    """What comes out of a fading channel.

    Attributes:
        y: the received signal.
        h: the true channel realisation.
        h_est: what the receiver knows of ``h``: ``h`` itself with perfect CSI,
            else ``h + e`` with ``e ~ CN(0, csi_error_var)`` entrywise.
    """

    y: jax.Array
    h: jax.Array
    h_est: jax.Array


# --------------------------------------------------------------------------- checks


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _check_noise(no, name="no"):
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


def _check_variance(value, name):
    if not isinstance(value, jax.core.Tracer) and not (np.all(np.asarray(value) >= 0)):
        raise ValueError(f"{name} must be >= 0, got {value}")


def _as_symbols(x, min_ndim, what):
    x = jnp.asarray(x)
    if x.ndim < min_ndim:
        raise ValueError(f"x must have shape {what}, got shape {x.shape}")
    return x.astype(jnp.complex64)


def _batch_noise(no, batch_shape):
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


def _expand_to_rank(no, rank):
    return jnp.reshape(no, no.shape + (1,) * (rank - no.ndim))


def _imperfect_csi(key, h, csi_error_var):
    _check_variance(csi_error_var, "csi_error_var")
    if isinstance(csi_error_var, (int, float)) and csi_error_var == 0:
        return h
    return h + complex_normal(key, h.shape, csi_error_var)


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
    _check_backend(backend)
    _check_noise(no)
    x = _as_symbols(x, 1, "[..., n]")
    no = jnp.asarray(no, jnp.float32)
    if no.ndim > x.ndim:
        raise ValueError(f"no of shape {no.shape} has more dimensions than x of shape {x.shape}")
    if backend == "jax":
        return x + jnp.sqrt(_expand_to_rank(no, x.ndim)) * complex_normal(key, x.shape)
    if x.ndim == 1:
        return _awgn_sionna(key, x[None], _batch_noise(no, (1,)))[0]
    batch_shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    return _awgn_sionna(key, flat, _batch_noise(no, batch_shape)).reshape(x.shape)


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
    return y + jnp.sqrt(_expand_to_rank(no, y.ndim)).astype(y.dtype) * unit_noise


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
        k_factor: Rician K-factor (linear), ignored for Rayleigh.
        rx_correlation: exponential correlation coefficient in [0, 1).
        backend: ``"sionna"`` or ``"jax"``.

    Output:
        h: ``[*batch_shape, num_rx_ant, num_devices]`` complex64.
    """
    _check_backend(backend)
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
    _check_backend(backend)
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
    _check_backend(backend)
    _check_noise(no)
    x = _as_symbols(x, 2, "[..., num_devices, n]")
    h = jnp.asarray(h).astype(jnp.complex64)
    batch_shape, (num_devices, n) = x.shape[:-2], x.shape[-2:]
    if h.shape[:-2] != batch_shape or h.shape[-1] != num_devices:
        raise ValueError(
            f"h must have shape [..., num_rx_ant, {num_devices}] with batch {batch_shape}, "
            f"got {h.shape} for x of shape {x.shape}"
        )
    no = _batch_noise(no, batch_shape).reshape(batch_shape)
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
    csi_error_var=0.0,
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
        csi_error_var: variance of the receiver's channel-estimation error.
        backend: ``"sionna"`` or ``"jax"``.

    Output:
        :class:`ChannelOutput` with ``y`` ``[..., num_rx_ant, n]``, ``h`` and
        ``h_est`` ``[..., num_rx_ant, num_devices]``, all complex64.
    """
    _check_backend(backend)
    _check_noise(no)
    _check_fading(fading, k_factor, num_rx_ant, rx_correlation)
    x = _as_symbols(x, 2, "[..., num_devices, n]")
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
    no = _batch_noise(no, batch_shape).reshape(batch_shape)
    y = _superpose(x, h, no, unit_noise)
    return ChannelOutput(y, h, _imperfect_csi(key_csi, h, csi_error_var))


# --------------------------------------------------------------------------- OFDM (TDL / CDL)


@functools.cache
def _sionna_ofdm(
    model, num_devices, num_rx_ant, num_ofdm_symbols, fft_size, subcarrier_spacing,
    delay_spread, carrier_frequency, speed,
):  # fmt: skip
    sn = sionna_phy()
    tf = tensorflow()
    family, letter = model.split("-")
    # Sionna's resource grid and 3GPP models assert on tensors in their
    # constructors: build them eagerly here, the bridge inlines their constants.
    grid = sn.ofdm.ResourceGrid(num_ofdm_symbols, fft_size, subcarrier_spacing)
    if family == "tdl":
        channel_model = sn.channel.tr38901.TDL(
            letter.upper(), delay_spread, carrier_frequency,
            min_speed=speed, max_speed=speed, num_rx_ant=num_rx_ant,
        )  # fmt: skip
    else:
        array = sn.channel.tr38901.AntennaArray
        channel_model = sn.channel.tr38901.CDL(
            letter.upper(), delay_spread, carrier_frequency,
            ut_array=array(1, 1, "single", "V", "omni", carrier_frequency),
            bs_array=array(1, num_rx_ant, "single", "V", "omni", carrier_frequency),
            direction="uplink", min_speed=speed, max_speed=speed,
        )  # fmt: skip
    generate = sn.channel.GenerateOFDMChannel(channel_model, grid, normalize_channel=True)

    def draw_and_apply(x, no):
        batch = x.shape[0]
        # One independent link per device: devices ride in Sionna's batch axis.
        h = generate(batch * num_devices)  # [B*K, 1, M, 1, 1, S, F]
        h = tf.reshape(h, [batch, num_devices, num_rx_ant, num_ofdm_symbols, fft_size])
        h = tf.transpose(h, [0, 2, 1, 3, 4])  # [B, M, K, S, F]
        y = tf.reduce_sum(h * x[:, None], axis=2)
        return sn.channel.AWGN()(y, no), h

    return bridge(draw_and_apply)


def ofdm_mac(
    key,
    x,
    no,
    *,
    model="tdl-a",
    num_rx_ant=1,
    subcarrier_spacing=30e3,
    delay_spread=100e-9,
    carrier_frequency=3.5e9,
    speed=0.0,
    csi_error_var=0.0,
):
    """A K-device multiple-access channel over OFDM with 3GPP TDL or CDL fading (Sionna).

    Each device sees its own independent link drawn from the 3GPP model
    (TR 38.901 TDL or CDL, uplink, single-antenna devices), normalised to unit
    average energy per resource element; the receiver gets the superposition
    ``y[s, f] = sum_k h_k[s, f] x_k[s, f] + n`` on every resource element (no
    inter-symbol interference: cyclic prefix assumed long enough).

    Input:
        key: JAX PRNG key.
        x: ``[batch, num_devices, num_ofdm_symbols, fft_size]`` complex symbols
            on the resource grid.
        no: noise power per complex symbol, scalar or ``[batch]``.
        model: one of ``"tdl-a"`` … ``"tdl-e"``, ``"cdl-a"`` … ``"cdl-e"``.
        num_rx_ant: receive antennas (CDL: a uniform linear array).
        subcarrier_spacing: Hz. delay_spread: s. carrier_frequency: Hz.
        speed: device speed in m/s (Doppler over the OFDM symbols).
        csi_error_var: variance of the receiver's channel-estimation error.

    Output:
        :class:`ChannelOutput`: ``y`` ``[batch, num_rx_ant, num_ofdm_symbols,
        fft_size]``; ``h`` and ``h_est`` ``[batch, num_rx_ant, num_devices,
        num_ofdm_symbols, fft_size]``, complex64.
    """
    _check_noise(no)
    if model not in OFDM_MODELS:
        raise ValueError(f"model must be one of {OFDM_MODELS}, got {model!r}")
    x = _as_symbols(x, 4, "[batch, num_devices, num_ofdm_symbols, fft_size]")
    if x.ndim != 4:
        raise ValueError(
            f"x must have shape [batch, num_devices, num_ofdm_symbols, fft_size], got {x.shape}"
        )
    batch, num_devices, num_ofdm_symbols, fft_size = x.shape
    if num_devices < 1:
        raise ValueError(
            f"x must carry at least one device (num_devices >= 1), got shape {x.shape}"
        )
    for name, value in (("subcarrier_spacing", subcarrier_spacing), ("delay_spread", delay_spread),
                        ("carrier_frequency", carrier_frequency)):  # fmt: skip
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not speed >= 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    key_channel, key_csi = jax.random.split(key)
    channel = _sionna_ofdm(
        model, num_devices, num_rx_ant, num_ofdm_symbols, fft_size,
        float(subcarrier_spacing), float(delay_spread), float(carrier_frequency), float(speed),
    )  # fmt: skip
    y, h = channel(key_channel, x, _batch_noise(no, (batch,)))
    return ChannelOutput(y, h, _imperfect_csi(key_csi, h, csi_error_var))
