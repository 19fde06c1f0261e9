"""The JAX twin of the 3GPP TDL/CDL OFDM channel against its tables, its laws and Sionna."""

import functools
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from airinfer.phy import channels
from airinfer.phy.channels import make_tr38901_models, ofdm, tr38901

# Kolmogorov-Smirnov tests (one- and two-sample): a correct model falls below
# p = 1e-3 once in a thousand runs; keys are fixed, so a pass is reproducible.
KS_P_MIN = 1e-3
# Monte-Carlo tolerances: 5 standard errors.
SIGMAS = 5.0
SPACING = 30e3
DELAY_SPREAD = 300e-9  # 300 ns over 64 x 30 kHz: clearly frequency-selective
FFT_SIZE = 64
SPEED = 100.0  # m/s: at 3.5 GHz a maximum Doppler of 1.17 kHz


def _twin(key, num_links, model, **kwargs):
    kwargs = {"fft_size": FFT_SIZE, "delay_spread": DELAY_SPREAD, **kwargs}
    return np.asarray(tr38901.ofdm_response(jax.random.key(key), (num_links,), model, **kwargs))


def _sionna(key, num_links, model, num_rx_ant=1, num_ofdm_symbols=1, speed=0.0):
    """Sionna's responses ``[num_links, M, S, F]`` (through ofdm_mac with silent devices)."""
    x = jnp.zeros((num_links, 1, num_ofdm_symbols, FFT_SIZE), jnp.complex64)
    out = channels.ofdm_mac(
        jax.random.key(key), x, 0.0, model=model, num_rx_ant=num_rx_ant,
        delay_spread=DELAY_SPREAD, speed=speed, backend="sionna",
    )  # fmt: skip
    return np.asarray(out.h[:, :, 0])


def _correlation(h, a, b):
    """Estimate of E[h_a h_b^*] over the first axis and its standard error."""
    products = h[:, a] * np.conj(h[:, b])
    return products.mean(), np.sqrt(np.mean(np.abs(products) ** 2) / len(products))


# --------------------------------------------------------------------------- (a) tables


def test_tables_equal_sionna_model_files():
    shipped = tr38901.model_tables()
    assert shipped == json.loads(json.dumps(make_tr38901_models.tables()))
    assert set(shipped["models"]) == set(channels.OFDM_MODELS)
    for model in tr38901.MODELS:
        source = json.loads(make_tr38901_models.sionna_model_file(model).read_text())
        for name, value in shipped["models"][model].items():
            assert value == source[name], (model, name)


@pytest.mark.parametrize("model", ["tdl-a", "tdl-d", "tdl-e"])
def test_tdl_profile_equals_sionna_block(model):
    block = ofdm.tr38901_model(model, 1, DELAY_SPREAD, 3.5e9, 0.0)
    profile = tr38901.power_delay_profile(model, DELAY_SPREAD)
    np.testing.assert_allclose(profile.delays, block.delays.numpy(), rtol=1e-6)
    powers = profile.powers.copy()
    powers[profile.los_tap] += profile.los_power
    np.testing.assert_allclose(powers, block.mean_powers.numpy(), rtol=1e-5)
    if profile.los_power:
        np.testing.assert_allclose(profile.los_power, block.mean_power_los.numpy(), rtol=1e-5)


@pytest.mark.parametrize("model", ["cdl-a", "cdl-d"])
def test_cdl_profile_and_rays_equal_sionna_block(model):
    block = ofdm.tr38901_model(model, 2, DELAY_SPREAD, 3.5e9, 0.0)  # uplink, as ofdm_mac
    profile = tr38901.power_delay_profile(model, DELAY_SPREAD)
    np.testing.assert_allclose(profile.delays, block.delays.numpy(), rtol=1e-6)
    powers = profile.powers.copy()
    powers[profile.los_tap] += profile.los_power
    np.testing.assert_allclose(powers, block.powers.numpy(), rtol=1e-5)
    azimuth, zenith, (los_az, los_ze) = tr38901._cdl_receive_angles(model)
    np.testing.assert_allclose(azimuth, block._aoa.numpy()[0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(zenith, block._zoa.numpy()[0, 0, 0], atol=1e-6)
    if profile.los_power:
        assert los_az == pytest.approx(float(block._los_aoa.numpy().ravel()[0]), abs=1e-6)
        assert los_ze == pytest.approx(float(block._los_zoa.numpy().ravel()[0]), abs=1e-6)


# --------------------------------------------------------------------------- (b) gain law


# Slow where the default run checks the unit energy otherwise: in the gain laws below
# (Exp(1) for TDL-A/B/C, Rice of total power 1 for TDL-D/E) and in the frequency
# correlation, normalised to 1 (CDL-C/E).
_ENERGY_ELSEWHERE = ("tdl-a", "tdl-b", "tdl-c", "tdl-d", "tdl-e", "cdl-c", "cdl-e")


@pytest.mark.parametrize(
    "model",
    [pytest.param(m, marks=[pytest.mark.slow] * (m in _ENERGY_ELSEWHERE)) for m in tr38901.MODELS],
)
def test_unit_energy_per_resource_element(model):
    # One subcarrier per link: E|H|^2 = 1; std(|H|^2) <= 1 (at most Rayleigh's), so the
    # standard error is at most 1/sqrt(links). (Several antennas: in the CDL tests below.)
    links = 10_000
    gain = np.abs(_twin(0, links, model, fft_size=1)) ** 2
    assert gain.mean() == pytest.approx(1.0, abs=SIGMAS / math.sqrt(links))


@pytest.mark.parametrize("model", ["tdl-a", "tdl-b", "tdl-c"])
def test_rayleigh_tdl_gain_is_exponential(model):
    gain = np.abs(_twin(1, 5000, model, subcarriers=[17])[:, 0, 0, 0]) ** 2
    assert stats.kstest(gain, "expon").pvalue > KS_P_MIN
    # and not merely close to it: a law with a quarter of the deep fades fails
    assert stats.kstest(gain, stats.gamma(a=2, scale=0.5).cdf).pvalue < KS_P_MIN


@pytest.mark.parametrize("model", ["tdl-d", "tdl-e"])
def test_los_tdl_amplitude_is_rician(model):
    # |H| = |sqrt(p_los) e^{j phi0} + CN(0, 1 - p_los)|: Rice with nu = sqrt(p_los),
    # sigma^2 = (1 - p_los) / 2 per real dimension.
    los = tr38901.power_delay_profile(model, DELAY_SPREAD).los_power
    amplitude = np.abs(_twin(2, 5000, model, subcarriers=[5])[:, 0, 0, 0])
    sigma = math.sqrt((1 - los) / 2)
    assert stats.kstest(amplitude, stats.rice(b=math.sqrt(los) / sigma, scale=sigma).cdf).pvalue > (
        KS_P_MIN
    )
    assert stats.kstest(amplitude**2, "expon").pvalue < KS_P_MIN  # not Rayleigh


# --------------------------------------------------------------------------- (c) correlation

OFFSETS = (1, 4, 16, 40)  # subcarriers: 30 kHz … 1.2 MHz


@pytest.mark.parametrize("model", ["tdl-a", "tdl-d", "cdl-c", "cdl-e"])
def test_frequency_correlation_closed_form(model):
    h = _twin(3, 10_000, model)[:, 0, 0]  # [links, F]
    expected = tr38901.frequency_correlation(model, DELAY_SPREAD, np.asarray(OFFSETS) * SPACING)
    for offset, closed in zip(OFFSETS, expected, strict=True):
        estimate, error = _correlation(h, 10 + offset, 10)
        assert abs(estimate - closed) < SIGMAS * error, (offset, estimate, closed)
    # the profile decorrelates: the closed form itself moves away from 1 by 1.2 MHz
    assert abs(expected[-1] - 1) > 0.05


@pytest.mark.parametrize("model", ["tdl-a", "tdl-d"])
def test_narrow_band_tdl_draw_has_the_profile_covariance(model):
    # On 8 < 23 subcarriers the speed-0 TDL response comes from its covariance's square
    # root: every pair of subcarriers, and the mean (0: the LoS phase is uniform), as the
    # closed form says.
    links, fft_size = 10_000, 8
    h = _twin(12, links, model, fft_size=fft_size, delay_spread=1e-6)[:, 0, 0]
    offsets = np.arange(fft_size) * SPACING
    expected = tr38901.frequency_correlation(model, 1e-6, offsets)
    for offset in range(fft_size):
        estimate, error = _correlation(h, offset, 0)
        assert abs(estimate - expected[offset]) < SIGMAS * error, (offset, estimate)
    np.testing.assert_allclose(h.mean(0), 0, atol=SIGMAS / math.sqrt(links))
    assert abs(expected[-1] - 1) > 0.05


def test_time_correlation_is_jakes():
    # Sum of sinusoids with one random angle per sector of 2 pi / 20: E[a(t) a*(0)] = J0(w t)
    # exactly, so E[H(t) H*(0)] = J0(w_d t) on every subcarrier (TDL-A has no LoS). A fast
    # device (400 m/s: w_d = 29.3 krad/s) moves the channel within 4 OFDM symbols.
    symbols, speed = 4, 400.0
    h = _twin(5, 4000, "tdl-a", num_ofdm_symbols=symbols, speed=speed, fft_size=1)[:, 0, :, 0]
    doppler = 2 * math.pi * speed * 3.5e9 / tr38901.SPEED_OF_LIGHT
    for s in range(1, symbols):
        estimate, error = _correlation(h, s, 0)
        closed = special.j0(doppler * s / SPACING)
        assert abs(estimate - closed) < SIGMAS * error, (s, estimate, closed)
    assert special.j0(doppler * (symbols - 1) / SPACING) < 0  # the channel does move


# --------------------------------------------------------------------------- (d) vs Sionna


def _ks_against_sionna(twin, reference):
    """Two-sample KS of |H| on subcarrier 10 and of the phase step from 10 to 30."""
    for pick in (lambda h: np.abs(h[:, 10]), lambda h: np.angle(h[:, 30] * np.conj(h[:, 10]))):
        assert stats.ks_2samp(pick(twin), pick(reference)).pvalue > KS_P_MIN


def test_tdl_a_twin_against_sionna():
    reference = _sionna(7, 4000, "tdl-a")[:, 0, 0]
    _ks_against_sionna(_twin(6, 4000, "tdl-a")[:, 0, 0], reference)
    # (c) on Sionna's own draws: its frequency correlation is the closed form
    expected = tr38901.frequency_correlation("tdl-a", DELAY_SPREAD, np.asarray(OFFSETS) * SPACING)
    for offset, closed in zip(OFFSETS, expected, strict=True):
        estimate, error = _correlation(reference, 10 + offset, 10)
        assert abs(estimate - closed) < SIGMAS * error, (offset, estimate, closed)


@pytest.mark.slow  # Sionna's CDL takes some 15 s to build and compile
@pytest.mark.parametrize("model", ["cdl-c", "cdl-d"])
def test_cdl_twin_against_sionna(model):
    links = 4000
    twin = _twin(8, links, model, num_rx_ant=4)
    reference = _sionna(9, links, model, num_rx_ant=4)
    _ks_against_sionna(twin[:, 0, 0], reference[:, 0, 0])
    # The array: the correlation of antennas 0 and 1, 0 and 3 (ray angles, random coupling),
    # and the mean (the deterministic LoS ray on CDL-D) agree.
    for a in (1, 3):
        ours, error = _correlation(twin[:, :, 0, 10], a, 0)
        theirs, error_sionna = _correlation(reference[:, :, 0, 10], a, 0)
        assert abs(ours - theirs) < SIGMAS * math.hypot(error, error_sionna), (a, ours, theirs)
    mean_error = SIGMAS * math.sqrt(2 / links)
    np.testing.assert_allclose(
        twin[:, :, 0, 10].mean(0), reference[:, :, 0, 10].mean(0), atol=mean_error
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tdl-d", "cdl-b"])
def test_moving_twin_against_sionna(model):
    # The phase step over 13 OFDM symbols at 100 m/s: Doppler as Sionna draws it.
    links, symbols = 4000, 14
    twin = _twin(10, links, model, num_ofdm_symbols=symbols, speed=SPEED)[:, 0, :, 10]
    reference = _sionna(11, links, model, num_ofdm_symbols=symbols, speed=SPEED)[:, 0, :, 10]
    step = lambda h: np.angle(h[:, -1] * np.conj(h[:, 0]))  # noqa: E731
    assert stats.ks_2samp(step(twin), step(reference)).pvalue > KS_P_MIN
    ours, error = _correlation(twin, symbols - 1, 0)
    theirs, error_sionna = _correlation(reference, symbols - 1, 0)
    assert abs(ours - theirs) < SIGMAS * math.hypot(error, error_sionna)


# --------------------------------------------------------------------------- (e) ofdm_mac


def test_ofdm_mac_jax_path_shapes_and_superposition():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 4, 16)), jnp.complex64)
    args = {"model": "tdl-a", "num_rx_ant": 2, "delay_spread": 1e-6}
    out = channels.ofdm_mac(jax.random.key(1), x, 0.0, backend="jax", **args)
    # the layout of the Sionna path (checked against it in the slow test below)
    assert out.y.shape == (2, 2, 4, 16) and out.h.shape == out.h_est.shape == (2, 2, 3, 4, 16)
    assert out.y.dtype == out.h.dtype == jnp.complex64
    np.testing.assert_allclose(out.y, jnp.sum(out.h * x[:, None], axis=2), rtol=1e-5, atol=1e-5)
    # block fading at speed 0: every OFDM symbol of the slot sees the same response
    np.testing.assert_array_equal(out.h, jnp.broadcast_to(out.h[..., :1, :], out.h.shape))
    again = channels.ofdm_mac(jax.random.key(1), x, 0.0, backend="jax", **args)
    np.testing.assert_array_equal(again.h, out.h)
    other = channels.ofdm_mac(jax.random.key(2), x, 0.0, backend="jax", **args)
    assert not np.allclose(other.h, out.h)


@pytest.mark.slow  # compiles Sionna's TDL for one more shape
def test_ofdm_mac_jax_path_has_the_sionna_layout():
    x = jnp.ones((2, 3, 4, 16), jnp.complex64)
    args = {"model": "tdl-d", "num_rx_ant": 2, "receiver_csi_error_var": 0.1}
    ours = channels.ofdm_mac(jax.random.key(1), x, 0.3, backend="jax", **args)
    theirs = channels.ofdm_mac(jax.random.key(1), x, 0.3, **args)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype == jnp.complex64


def test_ofdm_mac_jax_noise_power_per_batch_entry():
    # Silent devices: y is the noise alone, CN(0, no[b]); 2 x 8 x 256 samples per entry.
    no = jnp.array([0.1, 2.0])
    x = jnp.zeros((2, 1, 8, 256), jnp.complex64)
    y = channels.ofdm_mac(jax.random.key(3), x, no, model="cdl-a", num_rx_ant=2, backend="jax").y
    power = np.mean(np.abs(np.asarray(y)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(power, no, rtol=SIGMAS / math.sqrt(2 * 8 * 256))


def test_twin_vmaps_and_picks_subcarriers():
    keys = jax.random.split(jax.random.key(4), 3)

    @functools.partial(jax.jit, static_argnames="subcarriers")
    def draw(key, subcarriers=None):
        return tr38901.ofdm_response(
            key, (5,), "tdl-d", num_rx_ant=2, num_ofdm_symbols=3, fft_size=24, speed=SPEED,
            subcarriers=subcarriers,
        )  # fmt: skip

    stacked = jax.vmap(draw)(keys)
    np.testing.assert_allclose(stacked, jnp.stack([draw(k) for k in keys]), rtol=1e-5, atol=1e-6)
    picked = draw(keys[0], subcarriers=(0, 7, 23))
    np.testing.assert_allclose(picked, draw(keys[0])[..., [0, 7, 23]], rtol=1e-5, atol=1e-6)


def test_jax_path_imports_no_tensorflow():
    code = (
        "import sys, jax, jax.numpy as jnp\n"
        "from airinfer.phy import channels\n"
        "x = jnp.ones((2, 2, 1, 4), jnp.complex64)\n"
        "channels.ofdm_mac(jax.random.key(0), x, 0.1, model='tdl-d', backend='jax')\n"
        "assert 'tensorflow' not in sys.modules and 'sionna' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class _Drawn(Exception):
    """Raised by the spy once it has seen the call (nothing needs to compile)."""


@pytest.mark.parametrize("backend", ["sionna", "jax"])
def test_ota_schemes_pass_their_backend_to_ofdm_mac(monkeypatch, backend):
    from airinfer import ota

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("backend", "sionna"))
        raise _Drawn

    monkeypatch.setattr(channels, "ofdm_mac", spy)
    air = ota.AirCompConfig(channel="tdl-a", precoding="full", backend=backend)
    with pytest.raises(_Drawn):
        ota.over_the_air_average(jax.random.key(1), jnp.ones((2, 3, 4)), 10.0, air, None)
    digital = ota.OrthogonalConfig(channel="tdl-a", bits=4, backend=backend)
    with pytest.raises(_Drawn):
        ota.effective_snr_db(jax.random.key(2), jnp.full((2,), 10.0), 3, 4, digital)
    assert seen == [backend, backend]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"backend": "torch"}, "backend"),
        ({"model": "tdl-z"}, "model"),
        ({"num_rx_ant": 0}, "num_rx_ant"),
        ({"delay_spread": -1e-9}, "delay_spread"),
        ({"speed": -1.0}, "speed"),
    ],
)
def test_ofdm_mac_jax_path_refuses_bad_input(change, field):
    args = {"model": "tdl-a", "backend": "jax", **change}
    with pytest.raises(ValueError, match=field) as caught:
        channels.ofdm_mac(jax.random.key(0), jnp.ones((1, 1, 2, 8)), 0.1, **args)
    assert "\n" not in str(caught.value)


def test_twin_refuses_bad_grid():
    with pytest.raises(ValueError, match="fft_size"):
        tr38901.ofdm_response(jax.random.key(0), (1,), "tdl-a", fft_size=0)
    with pytest.raises(ValueError, match="subcarriers"):
        tr38901.ofdm_response(jax.random.key(0), (1,), "tdl-a", fft_size=4, subcarriers=[4])
