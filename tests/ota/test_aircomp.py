"""Analog over-the-air aggregation: exactness, power, bias, high SNR, connectivity, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer import ota
from airinfer.phy import channels
from tests.conftest import normal
from tests.ota.conftest import member_probs

NUM_CLASSES = 10
SIMPLEX = ota.Normalization.simplex(NUM_CLASSES)


# One compiled program per configuration and shape: faster than op-by-op dispatch.
_jitted_average = jax.jit(ota.over_the_air_average, static_argnums=(3, 4))

# The statistical tests share shapes [blocks, devices, classes], so that a
# configuration they have in common (the SNR is traced) is compiled once: the
# unbiasedness and backend tests with 6 devices, the repetition and MMSE tests with 4.
STAT_BLOCKS, STAT_DEVICES, FEW_DEVICES = 20_000, 6, 4


def _average(key, values, snr_db, **config):
    return _jitted_average(key, values, snr_db, ota.AirCompConfig(**config), SIMPLEX)


# --------------------------------------------------------------------------- normalisation


def test_normalisation_round_trip_and_energy_bound():
    probs, _ = member_probs(500, 4, NUM_CLASSES)
    symbols = ota.values_to_symbols(probs, SIMPLEX)
    assert symbols.shape == (500, 4, 5)
    energy = jnp.mean(jnp.abs(symbols) ** 2, axis=-1)
    assert float(energy.max()) <= 1.0 + 1e-5
    back = ota.symbols_to_values(symbols, NUM_CLASSES, SIMPLEX)
    np.testing.assert_allclose(back, probs, atol=1e-6)
    # One-hot votes reach the bound exactly: no power is wasted.
    votes = ota.one_hot_votes(probs)
    vote_energy = jnp.mean(jnp.abs(ota.values_to_symbols(votes, SIMPLEX)) ** 2, axis=-1)
    np.testing.assert_allclose(vote_energy, 1.0, rtol=1e-5)


def test_vectors_beyond_the_bound_are_shrunk_onto_it():
    norm = ota.Normalization.box(-1.0, 1.0, 6)
    values = 5.0 * normal(0, (200, 6))
    energy = jnp.mean(jnp.abs(ota.values_to_symbols(values, norm)) ** 2, axis=-1)
    assert float(energy.max()) <= 1.0 + 1e-5
    assert float(energy.max()) >= 1.0 - 1e-5  # the large ones sit on the bound


def test_sign_votes_and_decision():
    values = jnp.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(ota.sign_votes(values), [[-1, 1, 1], [1, -1, -1]])
    np.testing.assert_array_equal(ota.decide(values), [1, 0])
    signs = ota.sign_votes(member_probs(10, 3, 4)[0])
    energy = jnp.mean(jnp.abs(ota.values_to_symbols(signs, ota.Normalization.signs(4))) ** 2, -1)
    np.testing.assert_allclose(energy, 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(
    "config",
    [
        dict(channel="awgn", backend="jax"),
        pytest.param(dict(channel="awgn", backend="sionna"), marks=pytest.mark.slow),
        dict(channel="rayleigh", precoding="full", backend="jax"),
        dict(channel="rayleigh", precoding="full", backend="sionna"),
        pytest.param(
            dict(channel="rician", k_factor=3.0, precoding="full", backend="jax"),
            marks=pytest.mark.slow,
        ),
        dict(channel="rayleigh", precoding="full", num_rx_ant=4, backend="jax"),
        dict(channel="rayleigh", precoding="truncated", threshold=1e-6, backend="jax"),
        pytest.param(dict(channel="tdl-a", precoding="full"), marks=pytest.mark.slow),
        pytest.param(
            dict(channel="tdl-a", precoding="optimal", num_rx_ant=2, combiner="lmmse"),
            marks=pytest.mark.slow,
        ),
        dict(channel="rayleigh", precoding="full", backend="jax", local_device=True),
        dict(channel="rayleigh", precoding="full", backend="jax", lmmse_denoising=True),
        # one antenna: covered by the 4-antenna case below and end to end, against the
        # closed form, by test_mse_vs_snr_over_the_air_is_the_closed_form_of_every_draw
        pytest.param(
            dict(channel="rayleigh", precoding="optimal", backend="jax"), marks=pytest.mark.slow
        ),
        dict(
            channel="rayleigh", precoding="optimal", num_rx_ant=4, combiner="lmmse", backend="jax"
        ),
    ],
    ids=lambda c: "-".join(f"{v}" for v in c.values()),
)
def test_no_noise_perfect_csi_gives_the_exact_average(key, config):
    probs, _ = member_probs(64, 5, NUM_CLASSES)
    estimate = _average(key, probs, jnp.inf, **config)  # no = 0
    expected = probs.mean(axis=-2)
    if config.get("precoding") == "truncated":
        # Everybody is above a 1e-6 threshold with probability 1 - 5e-6 per block.
        assert float(estimate.num_active.min()) == 5
    np.testing.assert_allclose(estimate.average, expected, atol=2e-5)


def test_no_noise_phase_compensation_gives_the_gain_weighted_average(key):
    probs, _ = member_probs(64, 5, NUM_CLASSES)
    cfg = ota.AirCompConfig(precoding="phase", backend="jax")
    estimate = _jitted_average(key, probs, jnp.inf, cfg, SIMPLEX)
    # Same key, same draw: |h_k| are the receiver's weights.
    key_channel = jax.random.split(key, 3)[0]
    h = channels.draw_flat_fading(key_channel, (64,), 5, backend="jax")[:, 0]
    weights = np.abs(np.asarray(h))
    expected = (weights[..., None] * probs).sum(1) / weights.sum(1, keepdims=True)
    np.testing.assert_allclose(estimate.average, expected, atol=2e-5)


# --------------------------------------------------------------------------- power constraint


@pytest.mark.parametrize("precoder", ota.PRECODINGS)
def test_precoders_meet_the_power_constraint_on_every_device_and_draw(precoder):
    power, threshold = 2.0, 0.3
    h = channels.complex_normal(jax.random.key(3), (20_000, 8, 1))
    # A few exact zeros and deep fades among the draws.
    h = h.at[:3].set(0.0).at[3:6].multiply(1e-6)
    pre = ota.precode(h, precoder, power, threshold, no=0.5)
    probs, _ = member_probs(20_000, 8, NUM_CLASSES)
    symbols = ota.values_to_symbols(probs, SIMPLEX)
    energy = jnp.mean(jnp.abs(pre.coefficients * symbols) ** 2, axis=-1)  # [draws, K]
    assert bool(jnp.all(jnp.isfinite(energy)))
    assert float(energy.max()) <= power * (1 + 1e-5)
    if precoder == "truncated":
        silent = jnp.abs(h[..., 0]) ** 2 < threshold
        assert bool(jnp.all(jnp.where(silent, energy == 0, True)))
        assert 0.2 < float(silent.mean()) < 0.3  # P(|h|^2 < 0.3) = 1 - e^-0.3 = 0.26


# --------------------------------------------------------------------------- unbiasedness

# N blocks of K devices that all hold the same values v: whoever is active, the
# estimate's mean is v. Its per-entry noise std is at most
# sigma = scale/sqrt(n) * sqrt(no/2) / (sqrt(P threshold) * K_active), K_active >= 1,
# so the sample mean over N blocks has std <= sigma / sqrt(N); 5 such standard
# errors bound a false alarm per entry below 1e-6.
UNBIASED_SIGMAS = 5.0


@pytest.mark.parametrize(
    "config",
    [
        dict(channel="awgn", backend="jax"),
        dict(channel="rayleigh", precoding="truncated", backend="jax"),
        # the same draws as test_jax_twin_and_sionna_agree_in_distribution's, compared there
        pytest.param(dict(channel="rayleigh", precoding="truncated", backend="sionna"),
                     marks=pytest.mark.slow),
        pytest.param(dict(channel="rayleigh", precoding="truncated", backend="jax",
                          num_rx_ant=2), marks=pytest.mark.slow),
    ],
    ids=lambda c: "-".join(f"{v}" for v in c.values()),
)  # fmt: skip
def test_estimator_is_unbiased(key, config):
    num_blocks, num_devices, snr_db = STAT_BLOCKS, STAT_DEVICES, 0.0
    v = member_probs(1, 1, NUM_CLASSES)[0][0, 0]
    values = jnp.broadcast_to(v, (num_blocks, num_devices, NUM_CLASSES))
    cfg = ota.AirCompConfig(**config)
    estimate = _average(key, values, snr_db, **config)
    no = float(ota.noise_power(snr_db, cfg))
    amplitude = math.sqrt(cfg.power * (cfg.threshold if cfg.channel != "awgn" else 1.0))
    n = ota.num_channel_uses(NUM_CLASSES)
    sigma = SIMPLEX.scale / math.sqrt(n) * math.sqrt(no / 2) / amplitude
    tolerance = UNBIASED_SIGMAS * sigma / math.sqrt(num_blocks)
    bias = np.abs(np.asarray(estimate.average.mean(0)) - v)
    assert bias.max() < tolerance, (bias.max(), tolerance)
    # ... and the noise is really there (the test could fail).
    assert float(estimate.average.std(0).mean()) > 0.1 * sigma / num_devices


# --------------------------------------------------------------------------- high SNR


@pytest.mark.parametrize(
    "config",
    [
        dict(channel="awgn", backend="jax"),
        dict(channel="awgn", backend="sionna"),
        pytest.param(
            dict(channel="rayleigh", precoding="full", num_rx_ant=4, backend="jax"),
            marks=pytest.mark.slow,
        ),
    ],
    ids=lambda c: "-".join(f"{v}" for v in c.values()),
)
@pytest.mark.parametrize("payload", ["belief", "vote"])
def test_at_40_db_decisions_match_the_noiseless_ensemble(key, config, payload):
    probs, _ = member_probs(3000, 16, NUM_CLASSES)
    values = ota.one_hot_votes(probs) if payload == "vote" else probs
    noiseless = values.mean(axis=-2)
    estimate = _average(key, values, 40.0, **config)
    decided = ota.decide(estimate.average)
    # A tied vote has several majority classes: any of them agrees.
    agrees = noiseless[jnp.arange(len(decided)), decided] == noiseless.max(-1)
    agreement = float(jnp.mean(agrees))
    assert agreement >= 0.997, agreement


def test_sign_vote_over_the_air_at_40_db(key):
    probs, _ = member_probs(4000, 16, NUM_CLASSES)
    signs = ota.sign_votes(probs)
    cfg = ota.AirCompConfig(channel="awgn", backend="jax")
    estimate = _jitted_average(key, signs, 40.0, cfg, ota.Normalization.signs(10))
    np.testing.assert_allclose(estimate.average, signs.mean(-2), atol=0.02)


def test_repetitions_divide_the_noise_variance(key):
    probs, _ = member_probs(STAT_BLOCKS, FEW_DEVICES, NUM_CLASSES)
    errors = []
    for repetitions in (1, 4):
        cfg = ota.AirCompConfig(channel="awgn", backend="jax", repetitions=repetitions)
        estimate = _jitted_average(key, probs, 0.0, cfg, SIMPLEX)
        errors.append(float(jnp.mean((estimate.average - probs.mean(-2)) ** 2)))
    # Variance ratio 4. The sample variance of N Gaussian entries has a relative std
    # of sqrt(2 / N) = 0.3 % (N = 200 000); the ratio's is sqrt(2) times that, 0.45 %.
    entries = STAT_BLOCKS * NUM_CLASSES
    ratio_sigma = math.sqrt(2) * math.sqrt(2 / entries)
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=6 * ratio_sigma)


def test_lmmse_denoising_shrinks_and_lowers_the_error_at_low_snr(key):
    probs, _ = member_probs(STAT_BLOCKS, FEW_DEVICES, NUM_CLASSES)
    mse = {}
    for lmmse_denoising in (False, True):
        cfg = ota.AirCompConfig(channel="awgn", backend="jax", lmmse_denoising=lmmse_denoising)
        estimate = _jitted_average(key, probs, -10.0, cfg, SIMPLEX)
        mse[lmmse_denoising] = float(jnp.mean((estimate.average - probs.mean(-2)) ** 2))
    assert mse[True] < 0.5 * mse[False]


def test_jax_twin_and_sionna_agree_in_distribution(key):
    probs, _ = member_probs(STAT_BLOCKS, STAT_DEVICES, NUM_CLASSES)
    mse = {}
    for backend in ("jax", "sionna"):
        estimate = _average(key, probs, 5.0, channel="rayleigh", backend=backend)
        mse[backend] = np.asarray(jnp.mean((estimate.average - probs.mean(-2)) ** 2, axis=-1))
    # Means of N i.i.d. per-block errors: compare within 5 standard errors of the difference.
    se = math.sqrt((mse["jax"].var() + mse["sionna"].var()) / STAT_BLOCKS)
    assert abs(mse["jax"].mean() - mse["sionna"].mean()) < 5 * se


# --------------------------------------------------------------------------- connectivity


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
# the mask is applied after the channel draws, whichever backend drew them
@pytest.mark.parametrize("backend", ["jax", pytest.param("sionna", marks=pytest.mark.slow)])
def test_p_zero_is_local_inference_exactly(key, channel, backend):
    probs, _ = member_probs(256, 6, NUM_CLASSES)
    mask = ota.participation_mask(jax.random.key(9), (256,), 6, 0.0)
    np.testing.assert_array_equal(mask[:, 0], 1.0)
    np.testing.assert_array_equal(mask[:, 1:], 0.0)
    cfg = ota.AirCompConfig(channel=channel, backend=backend, local_device=True)
    estimate = _jitted_average(key, probs, -10.0, cfg, SIMPLEX, participation=mask)
    np.testing.assert_array_equal(estimate.average, probs[:, 0])
    np.testing.assert_array_equal(estimate.num_active, 1.0)


def test_participation_frequency_and_local_device_weight(key):
    mask = ota.participation_mask(key, (50_000,), 5, 0.3)
    # Binomial std of the frequency over 200 000 neighbour draws: 0.001.
    assert float(mask[:, 1:].mean()) == pytest.approx(0.3, abs=0.005)
    # the shape of test_p_zero_is_local_inference_exactly: one compiled program for both
    probs, _ = member_probs(256, 6, NUM_CLASSES)
    full = ota.participation_mask(key, (256,), 6, 1.0)
    cfg = ota.AirCompConfig(channel="awgn", backend="jax", local_device=True)
    estimate = _jitted_average(key, probs, jnp.inf, cfg, SIMPLEX, participation=full)
    np.testing.assert_allclose(estimate.average, probs.mean(-2), atol=2e-5)
    np.testing.assert_array_equal(estimate.num_active, 6.0)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "config",
    [
        dict(channel="rayleigh", precoding="truncated", backend="jax"),
        # gradients flow through the values, not the draws: the jax case above covers it
        pytest.param(dict(channel="rayleigh", precoding="truncated", backend="sionna"),
                     marks=pytest.mark.slow),
        dict(channel="rayleigh", precoding="full", backend="jax", num_rx_ant=2),
        dict(channel="rayleigh", precoding="phase", backend="jax", device_csi_error_var=0.1,
             lmmse_denoising=True, local_device=True),
        # its precoder and combiner: test_optimal_and_lmmse_gradients_are_finite_at_zero_channels
        pytest.param(dict(channel="rayleigh", precoding="optimal", backend="jax", num_rx_ant=2,
                          combiner="lmmse", device_csi_error_var=0.1), marks=pytest.mark.slow),
        pytest.param(dict(channel="tdl-a", precoding="truncated"), marks=pytest.mark.slow),
    ],
    ids=lambda c: "-".join(f"{v}" for v in c.values()),
)  # fmt: skip
def test_gradients_are_finite_at_deep_fades(key, config):
    snr_db = jnp.array([[-40.0], [60.0]])  # batch [2, 128]: both extremes in one program
    # For truncated inversion a high threshold silences most devices and puts many
    # blocks in "deep fade"; K = 1 blocks hit the no-transmitter fallback.
    if config["precoding"] == "truncated":
        config = dict(config, threshold=3.0)
    cfg = ota.AirCompConfig(**config)
    probs, labels = member_probs(128, 3, NUM_CLASSES)
    logits = jnp.log(jnp.asarray(probs))

    def loss(logits):
        values = jax.nn.softmax(logits)
        average = ota.over_the_air_average(key, values, snr_db, cfg, SIMPLEX).average
        return -jnp.mean(jnp.log(jnp.clip(average, 1e-6))[:, jnp.arange(128), labels])

    grad = jax.jit(jax.grad(loss))(logits)
    assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad).sum()) > 0


def test_precoder_gradients_are_finite_at_zero_channels():
    g = jnp.array([[0.0 + 0.0j], [1e-20 + 0.0j], [0.5 + 0.5j]])[None]  # [1, K=3, L=1]

    for name in ota.PRECODINGS:

        def total(re, name=name):
            pre = ota.precode(re + 1j * jnp.imag(g), name, 1.0, 0.1, no=0.1)
            return jnp.sum(jnp.abs(pre.coefficients) ** 2) + jnp.sum(pre.amplitudes)

        grad = jax.grad(total)(jnp.real(g))
        assert bool(jnp.all(jnp.isfinite(grad))), name


def test_single_device():
    probs, _ = member_probs(32, 1, NUM_CLASSES)
    estimate = _average(jax.random.key(0), probs, 20.0, backend="jax")
    assert estimate.average.shape == (32, NUM_CLASSES)
    assert bool(jnp.all(jnp.isfinite(estimate.average)))


def test_broadcast_batch_dimensions(key):
    probs, _ = member_probs(100, 4, NUM_CLASSES)
    snr = jnp.array([-10.0, 0.0, 10.0])[:, None, None]  # [S, 1, 1] x values [N, K, C] batch [N]
    estimate = _average(key, probs[None, None], snr * jnp.ones((1, 7, 1)), backend="jax")
    assert estimate.average.shape == (3, 7, 100, NUM_CLASSES)
    error = jnp.mean((estimate.average - probs.mean(-2)) ** 2, axis=(1, 2, 3))
    assert float(error[0]) > float(error[1]) > float(error[2])


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "field, value",
    [
        ("power", -1.0),
        ("power", 0.0),
        ("threshold", 0.0),
        ("threshold", -0.1),
        ("channel", "rayleigh-fast"),
        ("precoding", "zero-forcing"),
        ("backend", "torch"),
        ("num_rx_ant", 0),
        ("repetitions", 0),
        ("device_csi_error_var", -1.0),
        ("combiner", "mrc"),
        ("lmmse_denoising", "yes"),
        ("lmmse_denoising", 1),
        ("local_device", "no"),
    ],
)
def test_bad_configuration_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ota.AirCompConfig(**{field: value})


@pytest.mark.parametrize(
    "config, field",
    [
        (dict(channel="rayleigh", k_factor=3.0), "k_factor"),
        (dict(channel="awgn", k_factor=1.0), "k_factor"),
        (dict(channel="rician"), "k_factor"),  # K = 0: that is Rayleigh fading
        (dict(channel="rician", k_factor=0.0), "k_factor"),
        (dict(channel="rayleigh", fft_size=64), "fft_size"),
        (dict(channel="awgn", num_ofdm_symbols=2), "num_ofdm_symbols"),
        (dict(channel="rician", k_factor=2.0, speed=3.0), "speed"),
        (dict(channel="rayleigh", delay_spread=300e-9), "delay_spread"),
        (dict(channel="rayleigh", subcarrier_spacing=15e3), "subcarrier_spacing"),
        (dict(channel="rayleigh", carrier_frequency=28e9), "carrier_frequency"),
        (dict(lmmse_prior_energy=0.5), "lmmse_prior_energy"),
        (dict(precoding="full", threshold=0.3), "threshold"),
        (dict(precoding="optimal", threshold=0.3), "threshold"),
        (dict(channel="awgn", num_rx_ant=2), "num_rx_ant"),
        (dict(channel="awgn", device_csi_error_var=0.1), "device_csi_error_var"),
        (dict(channel="rayleigh", combiner="lmmse"), "combiner"),  # one antenna
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) if isinstance(c, dict) else c,
)
def test_a_field_without_effect_is_refused_by_name(config, field):
    with pytest.raises(ValueError, match=f"{field}=.*would have no effect|{field} must be > 0"):
        ota.AirCompConfig(**config)


def test_fields_with_effect_are_accepted():
    ota.AirCompConfig(channel="rician", k_factor=3.0)
    ota.AirCompConfig(channel="tdl-a", fft_size=64, num_ofdm_symbols=2, speed=3.0)
    ota.AirCompConfig(lmmse_denoising=True, lmmse_prior_energy=0.5)
    ota.AirCompConfig(precoding="truncated", threshold=0.3)
    ota.AirCompConfig(num_rx_ant=2, combiner="lmmse", precoding="optimal")
    # precoding names the policy on every channel of a sweep: accepted (ignored) on AWGN
    ota.AirCompConfig(channel="awgn", precoding="optimal")


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="num_devices"):
        ota.participation_mask(jax.random.key(0), (4,), 0, 0.5)
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            ota.participation_mask(jax.random.key(0), (4,), 3, p)
    with pytest.raises(ValueError, match="num_devices"):
        ota.over_the_air_average(
            jax.random.key(0), jnp.zeros((4, 0, 10)), 0.0, ota.AirCompConfig(), SIMPLEX
        )
    with pytest.raises(ValueError, match="scale"):
        ota.Normalization(0.0, -1.0)
    with pytest.raises(ValueError, match="threshold"):
        ota.truncated_channel_inversion(jnp.ones((2, 1)), 1.0, 0.0)
    with pytest.raises(ValueError, match="power"):
        ota.full_channel_inversion(jnp.ones((2, 1)), -2.0)
