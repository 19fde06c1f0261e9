"""A JAX-native twin of Sionna's 3GPP TR 38.901 TDL and CDL channels over OFDM.

Pure JAX (``vmap``-able, no TensorFlow): it draws, for each independent link from
a single-antenna device to ``num_rx_ant`` omni receive antennas, the frequency
response on the resource grid

    ``H[m, s, f] = sum_l a_l[m](t_s) exp(-j 2 pi f_k tau_l)``,

with the subcarrier frequencies ``f_k = (k - fft_size // 2) * subcarrier_spacing``
and the OFDM symbol times ``t_s = s / subcarrier_spacing`` of Sionna's
``GenerateOFDMChannel`` (cyclic prefix 0, ``normalize_channel=False``). The power
delay profiles come from ``tr38901_models.json`` (Sionna's model files, see
:mod:`~airinfer.phy.channels.make_tr38901_models`); each has unit total energy, so
``E|H|^2 = 1`` on every resource element.

What is drawn, against what Sionna 1.2 draws (``sionna.phy.channel.tr38901``):

* TDL at speed 0: tap ``l`` is ``sqrt(p_l) g``, ``g ~ CN(0, 1)``, independent
  across taps and receive antennas: the Rayleigh law that Sionna's sum of 20
  sinusoids with random phases approximates (its fourth moment is 1.95 instead
  of 2), for a tenth of the random numbers. On F < L subcarriers ``H`` is drawn
  from that same law, ``CN(0, R)`` with ``R`` the profile's frequency covariance,
  from F complex normals instead of L (so a subset of the grid is drawn anew,
  not cut out of the full grid's draw). TDL-D/E add the specular component
  ``sqrt(p_los) exp(j phi_0)`` to the first tap, ``phi_0`` uniform and shared by
  the receive antennas, as Sionna does.
* TDL at speed > 0: Sionna's sum of sinusoids (20 per tap; angles
  ``2 pi n / 20 + theta_n``, ``theta_n`` uniform in ``(-pi/20, pi/20)`` shared by
  the antennas, phases per antenna; maximum Doppler ``2 pi v f_c / c``; the
  specular component turns at ``cos(pi / 4)`` of it).
* CDL: Sionna's rays, 20 per cluster (angles spread by Table 7.5-3, coupled at
  random within a cluster), each with a uniform initial phase; uplink, omni
  vertically polarised elements, the device at the origin and the receiver a
  uniform linear array along y with half-wavelength spacing, so ray ``r`` of
  cluster ``c`` reaches antenna ``m`` with the phase
  ``pi (m - (M - 1) / 2) sin(zenith) sin(azimuth)`` of its receive angles. LoS
  models add the deterministic specular ray at the LoS angles. With speed > 0
  the device moves in a random direction (azimuth uniform in ``[0, 2 pi)``,
  zenith uniform in ``[0, pi)``, as Sionna draws it) and each ray turns at
  ``2 pi / lambda (r_hat . v) t`` with ``r_hat`` its receive direction, as in
  Sionna's ``ChannelCoefficientsGenerator``.

API (for the OFDM MAC here and the digital OFDM link):

* :func:`ofdm_response` ``(key, batch_shape, model, *, num_rx_ant, num_ofdm_symbols,
  fft_size, subcarrier_spacing, delay_spread, carrier_frequency, speed,
  subcarriers=None)`` → ``H`` ``[*batch_shape, num_rx_ant, num_ofdm_symbols,
  len(subcarriers) or fft_size]`` complex64; one independent link per batch
  entry. ``subcarriers`` picks grid indices, so that only the subcarriers a
  scheme uses are computed.
* :func:`power_delay_profile` ``(model, delay_spread)`` → :class:`Profile` (the
  taps' delays and powers and the specular power); :func:`frequency_correlation`
  its closed form ``E[H(f + df) H*(f)]``; :func:`subcarrier_frequencies` Sionna's
  grid frequencies.
"""

import functools
import importlib.resources
import json
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.phy.channels.base import complex_normal

__all__ = [
    "MODELS",
    "Profile",
    "frequency_correlation",
    "model_tables",
    "ofdm_response",
    "power_delay_profile",
    "subcarrier_frequencies",
]

MODELS = tuple(f"{family}-{letter}" for family in ("tdl", "cdl") for letter in "abcde")
SPEED_OF_LIGHT = 299792458.0  # m/s
#: Sinusoids per TDL tap (Sionna's default) and rays per CDL cluster (TR 38.901).
NUM_SINUSOIDS = 20
NUM_RAYS = 20
#: Angle of arrival of TDL-D/E's specular component (Sionna's default).
TDL_LOS_ANGLE = math.pi / 4


@functools.cache
def model_tables():
    """The shipped tables: ``{"models": {model: fields}, "ray_offsets": [20 floats]}``."""
    source = importlib.resources.files("airinfer.phy.channels").joinpath("tr38901_models.json")
    return json.loads(source.read_text())


class Profile(NamedTuple):
    """A power delay profile of unit total energy (``sum(powers) + los_power == 1``).

    Attributes:
        delays: ``[L]`` float64, the taps' (clusters') delays in s.
        powers: ``[L]`` float64, their diffuse (Rayleigh-faded) powers.
        los_power: the specular component's power (0 without line of sight); it
            rides on tap ``los_tap`` (delay 0).
        los_tap: index of that tap.
    """

    delays: np.ndarray
    powers: np.ndarray
    los_power: float
    los_tap: int


def _check_model(model):
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def power_delay_profile(model, delay_spread):
    """The taps of ``model`` at RMS delay spread ``delay_spread`` (s), as Sionna scales them.

    TDL: powers normalised with the specular one to unit sum. CDL: diffuse powers
    normalised to unit sum, then scaled by ``1 / (K + 1)`` and the specular power
    ``K / (K + 1)`` with ``K`` its power over the diffuse total (Sionna's reading of
    step 11 of TR 38.901 7.5).
    """
    _check_model(model)
    params = model_tables()["models"][model]
    delays = np.asarray(params["delays"], np.float64)
    powers = 10.0 ** (np.asarray(params["powers"], np.float64) / 10.0)
    scaled = params.get("scale_delays", True)
    delays = delays * delay_spread if scaled else delays * 1e-9
    los_power = 0.0
    if model.startswith("tdl"):
        if params["los"]:
            los_power, powers, delays = powers[0], powers[1:], delays[1:]
        total = powers.sum() + los_power
        los_power, powers = los_power / total, powers / total
        los_tap = 0  # Sionna adds the specular component to the first tap as listed
    else:
        powers = powers / powers.sum()
        if params["los"]:
            los_raw, powers, delays = powers[0], powers[1:], delays[1:]
            k_factor = los_raw / powers.sum()
            powers = powers / powers.sum() / (k_factor + 1)
            los_power = k_factor / (k_factor + 1)
        los_tap = int(np.argmin(delays))  # Sionna sorts the clusters by delay first
    return Profile(delays, powers, float(los_power), los_tap)


def frequency_correlation(model, delay_spread, frequency_offsets):
    """``E[H(f + df) H*(f)] = sum_l p_l exp(-j 2 pi df tau_l)`` (specular power at its tap).

    Input: frequency_offsets ``[n]`` Hz. Output: ``[n]`` complex128.
    """
    profile = power_delay_profile(model, delay_spread)
    powers = profile.powers.copy()
    powers[profile.los_tap] += profile.los_power
    df = np.asarray(frequency_offsets, np.float64)[..., None]
    return np.sum(powers * np.exp(-2j * np.pi * df * profile.delays), axis=-1)


def subcarrier_frequencies(fft_size, subcarrier_spacing):
    """Sionna's subcarrier frequencies ``[fft_size]``: ``(k - fft_size // 2) * spacing``."""
    return (np.arange(fft_size) - fft_size // 2) * float(subcarrier_spacing)


def _cdl_receive_angles(model):
    """Rays' receive azimuths and zeniths ``[C, R]`` (rad) and the LoS ones (uplink: the
    receiver is the base station, whose angles the tables list as departures)."""
    params = model_tables()["models"][model]
    offsets = np.asarray(model_tables()["ray_offsets"], np.float64)
    azimuth = np.asarray(params["aod"], np.float64)
    zenith = np.asarray(params["zod"], np.float64)
    los = (np.deg2rad(azimuth[0]), np.deg2rad(zenith[0])) if params["los"] else (0.0, 0.0)
    if params["los"]:
        azimuth, zenith = azimuth[1:], zenith[1:]
    rays_az = np.deg2rad(azimuth[:, None] + params["cASD"] * offsets)
    rays_ze = np.deg2rad(zenith[:, None] + params["cZSD"] * offsets)
    return rays_az, rays_ze, los


def _tdl_block_fading(key, batch_shape, profile, num_rx_ant, kernel):
    """TDL at speed 0: ``H`` ``[*batch, M, 1, F]`` from its Gaussian law on the F subcarriers.

    With Gaussian taps ``H = kernel diag(sqrt(p)) g``, ``g ~ CN(0, I_L)``; on fewer
    subcarriers than taps the same law ``CN(0, R)``, ``R = kernel diag(p) kernel^H``,
    comes from F draws through a square root of ``R``: fewer random numbers, which is
    what such a draw costs.
    """
    mix = kernel * np.sqrt(profile.powers)  # [F, L]
    if mix.shape[0] < mix.shape[1]:
        eigenvalues, vectors = np.linalg.eigh(mix @ mix.conj().T)
        mix = vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))  # [F, F]
    key_taps, key_los = jax.random.split(key)
    g = complex_normal(key_taps, (*batch_shape, num_rx_ant, 1, mix.shape[1]))
    h = g @ jnp.asarray(mix.T, jnp.complex64)
    if profile.los_power > 0:  # the specular tap's phase is shared by the antennas
        phi0 = jax.random.uniform(key_los, (*batch_shape, 1, 1, 1), minval=-math.pi, maxval=math.pi)
        specular = math.sqrt(profile.los_power) * kernel[:, profile.los_tap]  # [F]
        h = h + jnp.exp(1j * phi0) * jnp.asarray(specular, jnp.complex64)
    return h.astype(jnp.complex64)


def _tdl_taps(key, batch_shape, profile, num_rx_ant, times, max_doppler):
    """TDL when moving: Sionna's sum of sinusoids, tap amplitudes ``[*batch, M, S, L]``."""
    num_taps = len(profile.delays)
    amplitude = jnp.asarray(np.sqrt(profile.powers), jnp.float32)
    key_taps, key_angles, key_los = jax.random.split(key, 3)
    n = NUM_SINUSOIDS
    theta = jax.random.uniform(
        key_angles, (*batch_shape, 1, num_taps, n), minval=-math.pi / n, maxval=math.pi / n
    )
    alpha = 2 * math.pi / n * jnp.arange(1, n + 1, dtype=jnp.float32) + theta
    phi = jax.random.uniform(
        key_taps, (*batch_shape, num_rx_ant, num_taps, n), minval=-math.pi, maxval=math.pi
    )
    t = jnp.asarray(times, jnp.float32)[:, None, None]  # [S, 1, 1]
    arg = max_doppler * t * jnp.cos(alpha)[..., None, :, :] + phi[..., None, :, :]
    taps = amplitude / math.sqrt(n) * jnp.sum(jnp.exp(1j * arg), axis=-1)  # [..., M, S, L]
    if profile.los_power > 0:
        los_phase = max_doppler * math.cos(TDL_LOS_ANGLE) * jnp.asarray(times, jnp.float32)
        phi0 = jax.random.uniform(key_los, (*batch_shape, 1, 1), minval=-math.pi, maxval=math.pi)
        specular = math.sqrt(profile.los_power) * jnp.exp(1j * (los_phase + phi0))  # [..., 1, S]
        taps = taps.at[..., profile.los_tap].add(specular)
    return taps.astype(jnp.complex64)


def _shuffled(key, angles, batch_shape):
    """``angles`` ``[C, R]`` permuted at random within each cluster, per link: ``[*batch, C, R]``
    (TR 38.901 step 8, random coupling of the rays)."""
    order = jnp.argsort(jax.random.uniform(key, (*batch_shape, *angles.shape)), axis=-1)
    return jnp.asarray(angles, jnp.float32)[jnp.arange(angles.shape[0])[:, None], order]


def _cdl_clusters(key, batch_shape, model, profile, num_rx_ant, times, speed, wavelength):
    """Cluster amplitudes ``[*batch, M, S, C]`` (``S = 1`` at speed 0) from Sionna's rays."""
    rays_az, rays_ze, (los_az, los_ze) = _cdl_receive_angles(model)
    num_clusters = rays_az.shape[0]
    key_phase, key_az, key_ze, key_velocity = jax.random.split(key, 4)
    phase = jax.random.uniform(
        key_phase, (*batch_shape, 1, 1, num_clusters, NUM_RAYS), minval=-math.pi, maxval=math.pi
    )
    position = np.arange(num_rx_ant, dtype=np.float32) - (num_rx_ant - 1) / 2  # [M], lambda/2
    moving = speed > 0
    if num_rx_ant > 1 or moving:
        azimuth = _shuffled(key_az, rays_az, batch_shape)[..., None, None, :, :]
        zenith = _shuffled(key_ze, rays_ze, batch_shape)[..., None, None, :, :]
        array = jnp.pi * position[:, None, None, None] * jnp.sin(zenith) * jnp.sin(azimuth)
        phase = phase + array  # [..., M, 1, C, R]
    los_phase = jnp.asarray(math.pi * position * math.sin(los_ze) * math.sin(los_az))[:, None]
    if moving:
        v_az, v_ze = (
            jax.random.uniform(k, (*batch_shape, 1, 1, 1, 1), maxval=bound)
            for k, bound in zip(jax.random.split(key_velocity), (2 * math.pi, math.pi), strict=True)
        )
        t = jnp.asarray(times, jnp.float32)[:, None, None]  # [S, 1, 1]
        rate = 2 * math.pi / wavelength * speed

        def doppler(ze, az):  # 2 pi / lambda (r_hat . v) t
            r_dot_u = jnp.sin(ze) * jnp.sin(v_ze) * jnp.cos(az - v_az) + jnp.cos(ze) * jnp.cos(v_ze)
            return rate * r_dot_u * t

        phase = phase + doppler(zenith, azimuth)  # [..., M, S, C, R]
        los_phase = los_phase + doppler(los_ze, los_az)[..., 0, 0]  # [..., M, S]
    amplitude = jnp.asarray(np.sqrt(profile.powers / NUM_RAYS), jnp.float32)
    clusters = amplitude * jnp.sum(jnp.exp(1j * phase), axis=-1)
    clusters = jnp.broadcast_to(clusters, (*batch_shape, num_rx_ant, *clusters.shape[-2:]))
    if profile.los_power > 0:
        specular = math.sqrt(profile.los_power) * jnp.exp(1j * los_phase)
        clusters = clusters.at[..., profile.los_tap].add(specular)
    return clusters.astype(jnp.complex64)


def ofdm_response(
    key,
    batch_shape,
    model,
    *,
    num_rx_ant=1,
    num_ofdm_symbols=1,
    fft_size=1,
    subcarrier_spacing=30e3,
    delay_spread=100e-9,
    carrier_frequency=3.5e9,
    speed=0.0,
    subcarriers=None,
):
    """Independent 3GPP TDL/CDL frequency responses on an OFDM grid (pure JAX).

    Input:
        key: JAX PRNG key.
        batch_shape: tuple (or int) of independent links.
        model: one of :data:`MODELS`.
        num_rx_ant: receive antennas M (independent for TDL; a ULA for CDL).
        num_ofdm_symbols, fft_size: the grid (Sionna's ``ResourceGrid``, no cyclic prefix).
        subcarrier_spacing: Hz. delay_spread: RMS delay spread in s.
        carrier_frequency: Hz. speed: device speed in m/s (0: block fading over the slot).
        subcarriers: optional grid indices in ``[0, fft_size)`` to compute; all by default.

    Output:
        h: ``[*batch_shape, num_rx_ant, num_ofdm_symbols, num_subcarriers]`` complex64,
        ``E|h|^2 = 1``.
    """
    _check_model(model)
    batch_shape = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
    for name, value in (("num_rx_ant", num_rx_ant), ("num_ofdm_symbols", num_ofdm_symbols),
                        ("fft_size", fft_size)):  # fmt: skip
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("subcarrier_spacing", subcarrier_spacing), ("delay_spread", delay_spread),
                        ("carrier_frequency", carrier_frequency)):  # fmt: skip
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(f"speed must be finite and >= 0, got {speed}")
    frequencies = subcarrier_frequencies(fft_size, subcarrier_spacing)
    if subcarriers is not None:
        subcarriers = np.asarray(subcarriers)
        if subcarriers.ndim != 1 or np.any((subcarriers < 0) | (subcarriers >= fft_size)):
            raise ValueError(f"subcarriers must be a 1-D list of indices in [0, {fft_size})")
        frequencies = frequencies[subcarriers]
    profile = power_delay_profile(model, delay_spread)
    times = np.arange(num_ofdm_symbols) / float(subcarrier_spacing)
    max_doppler = 2 * math.pi * speed * carrier_frequency / SPEED_OF_LIGHT
    if speed == 0:
        times = times[:1]  # block fading: one draw for the whole slot
    # The delay terms in float64 on the host: f * tau reaches hundreds of turns.
    kernel = np.exp(-2j * np.pi * frequencies[:, None] * profile.delays[None, :])  # [F, L]
    if model.startswith("tdl") and speed == 0:
        h = _tdl_block_fading(key, batch_shape, profile, num_rx_ant, kernel)
    else:
        if model.startswith("tdl"):
            taps = _tdl_taps(key, batch_shape, profile, num_rx_ant, times, max_doppler)
        else:
            wavelength = SPEED_OF_LIGHT / carrier_frequency
            taps = _cdl_clusters(
                key, batch_shape, model, profile, num_rx_ant, times, speed, wavelength
            )
        h = taps @ jnp.asarray(kernel.T, jnp.complex64)  # [..., M, S or 1, F]
    return jnp.broadcast_to(h, (*batch_shape, num_rx_ant, num_ofdm_symbols, len(frequencies)))
