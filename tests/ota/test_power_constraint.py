"""The power constraint as a convention: truncated inversion under a peak and an average budget,
against their closed forms (received amplitude, participation, average transmit power)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from airinfer import ota
from tests.conftest import complex_normal

POWER, THRESHOLD = 2.0, 0.1
DRAWS = 1_000_000
_precode = jax.jit(
    ota.precode, static_argnums=(1, 2, 3), static_argnames=("power_constraint", "mean_gain")
)
_jitted_average = jax.jit(ota.over_the_air_average, static_argnums=(3, 4))


def exponential_integral(x):
    """E1(x) = ∫_x^∞ e^-t / t dt by quadrature (independent of scipy.special.exp1)."""
    return integrate.quad(lambda t: math.exp(-t) / t, x, np.inf)[0]


def test_amplitudes_are_the_closed_forms():
    peak = ota.truncated_inversion_amplitude(POWER, THRESHOLD, "peak")
    average = ota.truncated_inversion_amplitude(POWER, THRESHOLD, "average")
    assert peak == pytest.approx(math.sqrt(POWER * THRESHOLD), rel=1e-12)
    assert average == pytest.approx(math.sqrt(POWER / exponential_integral(THRESHOLD)), rel=1e-9)
    # 7.4 dB more received power at threshold 0.1 (E1(0.1) = 1.823)
    assert 20 * math.log10(average / peak) == pytest.approx(7.39, abs=0.01)
    # an estimate |g|^2 ~ Exp(mean m): rho = P m / E1(threshold / m)
    m = 1.5
    assert ota.truncated_inversion_amplitude(POWER, THRESHOLD, "average", m) == pytest.approx(
        math.sqrt(POWER * m / exponential_integral(THRESHOLD / m)), rel=1e-9
    )


@pytest.mark.parametrize("constraint", ota.POWER_CONSTRAINTS)
def test_truncated_inversion_meets_its_budget(constraint):
    g = complex_normal(0, (DRAWS, 1, 1))  # |g|^2 ~ Exp(1)
    pre = _precode(g, "truncated", POWER, THRESHOLD, power_constraint=constraint)
    rho = ota.truncated_inversion_amplitude(POWER, THRESHOLD, constraint) ** 2
    active = np.asarray(jnp.abs(g) ** 2 >= THRESHOLD)
    # Received amplitude: every active device arrives with sqrt(rho) exactly.
    received = np.asarray(jnp.abs(g * pre.coefficients))
    np.testing.assert_allclose(received[active], math.sqrt(rho), rtol=1e-5)
    assert np.all(received[~active] == 0)
    np.testing.assert_allclose(np.asarray(pre.amplitudes)[active], math.sqrt(rho), rtol=1e-6)
    # Participation: P(|g|^2 >= threshold) = e^-threshold; binomial std 3e-4, 5 std.
    assert active.mean() == pytest.approx(math.exp(-THRESHOLD), abs=5 * 3e-4)
    power = np.asarray(jnp.abs(pre.coefficients) ** 2, np.float64)
    tolerance = 5 * power.std() / math.sqrt(DRAWS)  # 5 standard errors of the mean
    if constraint == "peak":
        assert power.max() <= POWER * (1 + 1e-5)  # on every draw
        # its average: P threshold E[1/|g|^2; |g|^2 >= threshold] = P threshold E1(threshold)
        expected = POWER * THRESHOLD * exponential_integral(THRESHOLD)
        assert power.mean() == pytest.approx(expected, abs=tolerance)
    else:
        assert power.mean() == pytest.approx(POWER, abs=tolerance)
        assert power.max() > 4 * POWER  # single blocks far above P: up to P / (threshold E1)


def test_average_budget_with_device_csi_errors_over_the_pipeline():
    """The general flat-fading path (imperfect CSI): the devices' estimates have
    |g + e|^2 ~ Exp(1 + var); the received noise on the estimate, the participation and
    the amplitude follow the closed forms with that mean."""
    var, no, blocks = 0.5, 0.1, 200_000
    config = ota.AirCompConfig(
        channel="rayleigh", power=POWER, power_constraint="average", device_csi_error_var=var,
        backend="jax",
    )  # fmt: skip
    norm = ota.Normalization.simplex(10)
    values = jnp.full((blocks, 1, 10), 0.1)  # at the offset: the symbols are zero
    snr_db = 10 * math.log10(POWER / no)
    estimate = _jitted_average(jax.random.key(5), values, snr_db, config, norm)
    active = np.asarray(estimate.num_active) > 0
    m = 1 + var
    assert active.mean() == pytest.approx(math.exp(-THRESHOLD / m), abs=5 * 6e-4)
    amplitude = ota.truncated_inversion_amplitude(POWER, THRESHOLD, "average", m)
    expected = float(ota.aggregate_channel_noise_variance(no, amplitude, norm, 10))
    measured = np.var(np.asarray(estimate.average)[active])
    # sample variance of ~1.4e6 Gaussian entries: relative std 0.12 %; 5 std
    assert measured == pytest.approx(expected, rel=0.006)


@pytest.mark.parametrize("constraint", ota.POWER_CONSTRAINTS)
def test_the_receiver_divides_by_the_constraints_amplitude(constraint):
    """Rayleigh shortcut path: the estimate's noise, over the blocks where the one device
    got through, is scale^2 no / (2 n a^2) with a the constraint's amplitude."""
    no, blocks = 0.1, 200_000
    config = ota.AirCompConfig(
        channel="rayleigh", power=POWER, power_constraint=constraint, backend="jax"
    )
    norm = ota.Normalization.simplex(10)
    values = jnp.full((blocks, 1, 10), 0.1)
    estimate = _jitted_average(jax.random.key(6), values, 10 * math.log10(POWER / no), config, norm)
    active = np.asarray(estimate.num_active) > 0
    assert active.mean() == pytest.approx(math.exp(-THRESHOLD), abs=5 * 6.6e-4)
    amplitude = ota.truncated_inversion_amplitude(POWER, THRESHOLD, constraint)
    expected = float(ota.aggregate_channel_noise_variance(no, amplitude, norm, 10))
    assert np.var(np.asarray(estimate.average)[active]) == pytest.approx(expected, rel=0.006)


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(precoding="optimal"), "Cao et al"),
        (dict(precoding="full"), "precoding='full'"),
        (dict(precoding="phase"), "average = peak"),
        (dict(channel="awgn"), "channel='awgn'"),
        (dict(channel="rician", k_factor=2.0), "channel='rician'"),
        (dict(channel="tdl-a"), "channel='tdl-a'"),
        (dict(num_rx_ant=2), "num_rx_ant=2"),
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) if isinstance(c, dict) else None,
)
def test_average_budget_is_refused_where_it_does_not_apply(config, message):
    with pytest.raises(ValueError, match=f"power_constraint='average'.*{message}"):
        ota.AirCompConfig(power_constraint="average", **config)


def test_bad_power_constraint_names_the_field():
    with pytest.raises(ValueError, match="power_constraint"):
        ota.AirCompConfig(power_constraint="mean")
    with pytest.raises(ValueError, match="power_constraint"):
        ota.truncated_inversion_amplitude(1.0, 0.1, "per-symbol")
    # the default is the peak budget, for every precoder
    assert ota.AirCompConfig().power_constraint == "peak"
