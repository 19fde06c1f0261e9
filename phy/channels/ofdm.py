"""A multiple-access channel over OFDM with 3GPP TDL or CDL fading.

Conventions and backends as in :mod:`airinfer.phy.channels`: ``backend="sionna"`` runs
Sionna's TDL/CDL blocks through the bridge; ``backend="jax"`` draws the responses with
the pure-JAX twin of :mod:`airinfer.phy.channels.tr38901` (no TensorFlow import).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.phy.bridge import bridge
from airinfer.phy.channels import tr38901
from airinfer.phy.channels.base import (
    Backend,
    ChannelOutput,
    as_symbols,
    batch_noise,
    check_backend,
    check_noise,
    complex_normal,
    imperfect_csi,
)
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

__all__ = ["OFDM_MODELS", "ofdm_mac", "tr38901_model"]

OFDM_MODELS = tr38901.MODELS


def tr38901_model(model, num_rx_ant, delay_spread, carrier_frequency, speed):
    """Sionna's 3GPP TR 38.901 TDL or CDL block of ``model``, uplink from one antenna.

    Built eagerly (the blocks assert on tensors in their constructors); the bridge
    inlines their constants. The power delay profiles have unit total energy.

    Parameters:
        model: one of :data:`OFDM_MODELS`.
        num_rx_ant: receive antennas (CDL: a uniform linear array of omni elements).
        delay_spread: s. carrier_frequency: Hz. speed: device speed in m/s.
    """
    sn = sionna_phy()
    family, letter = model.split("-")
    if family == "tdl":
        return sn.channel.tr38901.TDL(
            letter.upper(), delay_spread, carrier_frequency,
            min_speed=speed, max_speed=speed, num_rx_ant=num_rx_ant,
        )  # fmt: skip
    array = sn.channel.tr38901.AntennaArray
    return sn.channel.tr38901.CDL(
        letter.upper(), delay_spread, carrier_frequency,
        ut_array=array(1, 1, "single", "V", "omni", carrier_frequency),
        bs_array=array(1, num_rx_ant, "single", "V", "omni", carrier_frequency),
        direction="uplink", min_speed=speed, max_speed=speed,
    )  # fmt: skip


@functools.cache
def _sionna_ofdm(
    model, num_devices, num_rx_ant, num_ofdm_symbols, fft_size, subcarrier_spacing,
    delay_spread, carrier_frequency, speed,
):  # fmt: skip
    sn = sionna_phy()
    tf = tensorflow()
    # Sionna's resource grid and 3GPP models assert on tensors in their
    # constructors: build them eagerly here, the bridge inlines their constants.
    grid = sn.ofdm.ResourceGrid(num_ofdm_symbols, fft_size, subcarrier_spacing)
    channel_model = tr38901_model(model, num_rx_ant, delay_spread, carrier_frequency, speed)
    # Not normalised per draw: that would scale every draw to unit energy over the
    # grid and, on a narrow band, take the fading away. The power delay profiles
    # have unit total energy, so the gain is 1 on average over draws.
    generate = sn.channel.GenerateOFDMChannel(channel_model, grid, normalize_channel=False)

    def draw_and_apply(x, no):
        batch = x.shape[0]
        # One independent link per device: devices ride in Sionna's batch axis.
        h = generate(batch * num_devices)  # [B*K, 1, M, 1, 1, S, F]
        h = tf.reshape(h, [batch, num_devices, num_rx_ant, num_ofdm_symbols, fft_size])
        h = tf.transpose(h, [0, 2, 1, 3, 4])  # [B, M, K, S, F]
        y = tf.reduce_sum(h * x[:, None], axis=2)
        return sn.channel.AWGN()(y, no), h

    return bridge(draw_and_apply)


def _jax_ofdm(key, x, no, model, num_rx_ant, subcarrier_spacing, delay_spread,
              carrier_frequency, speed):  # fmt: skip
    """The twin's draws and the superposition: ``(y [B, M, S, F], h [B, M, K, S, F])``."""
    batch, num_devices, num_ofdm_symbols, fft_size = x.shape
    key_h, key_noise = jax.random.split(key)
    h = tr38901.ofdm_response(
        key_h, (batch, num_devices), model, num_rx_ant=num_rx_ant,
        num_ofdm_symbols=num_ofdm_symbols, fft_size=fft_size,
        subcarrier_spacing=subcarrier_spacing, delay_spread=delay_spread,
        carrier_frequency=carrier_frequency, speed=speed,
    )  # fmt: skip
    h = jnp.moveaxis(h, 2, 1)  # [B, M, K, S, F]
    noise = complex_normal(key_noise, (batch, num_rx_ant, num_ofdm_symbols, fft_size))
    y = jnp.sum(h * x[:, None], axis=2) + jnp.sqrt(no)[:, None, None, None] * noise
    return y, h


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
    receiver_csi_error_var=0.0,
    backend: Backend = "sionna",
):
    """A K-device multiple-access channel over OFDM with 3GPP TDL or CDL fading.

    Each device sees its own independent link drawn from the 3GPP model
    (TR 38.901 TDL or CDL, uplink, single-antenna devices), of unit average
    energy per resource element over draws (each draw keeps its own fading: a
    Rayleigh-faded tap sum on every subcarrier); the receiver gets the superposition
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
        receiver_csi_error_var: variance of the receiver's channel-estimation error.
        backend: ``"sionna"`` (Sionna's TDL/CDL blocks through the bridge) or
            ``"jax"`` (the twin of :mod:`airinfer.phy.channels.tr38901`: the same
            distributions, TDL taps at speed 0 Gaussian instead of Sionna's sum
            of 20 sinusoids; ``vmap``-able, no TensorFlow).

    Output:
        :class:`ChannelOutput`: ``y`` ``[batch, num_rx_ant, num_ofdm_symbols,
        fft_size]``; ``h`` and ``h_est`` ``[batch, num_rx_ant, num_devices,
        num_ofdm_symbols, fft_size]``, complex64.
    """
    check_backend(backend)
    check_noise(no)
    if model not in OFDM_MODELS:
        raise ValueError(f"model must be one of {OFDM_MODELS}, got {model!r}")
    x = as_symbols(x, 4, "[batch, num_devices, num_ofdm_symbols, fft_size]")
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
    if not (isinstance(num_rx_ant, (int, np.integer)) and num_rx_ant >= 1):
        raise ValueError(f"num_rx_ant must be an integer >= 1, got {num_rx_ant!r}")
    key_channel, key_csi = jax.random.split(key)
    if backend == "jax":
        y, h = _jax_ofdm(
            key_channel, x, batch_noise(no, (batch,)), model, num_rx_ant,
            float(subcarrier_spacing), float(delay_spread), float(carrier_frequency), float(speed),
        )  # fmt: skip
        return ChannelOutput(y, h, imperfect_csi(key_csi, h, receiver_csi_error_var))
    channel = _sionna_ofdm(
        model, num_devices, num_rx_ant, num_ofdm_symbols, fft_size,
        float(subcarrier_spacing), float(delay_spread), float(carrier_frequency), float(speed),
    )  # fmt: skip
    y, h = channel(key_channel, x, batch_noise(no, (batch,)))
    return ChannelOutput(y, h, imperfect_csi(key_csi, h, receiver_csi_error_var))
