"""Closed-form BER and capacity: known values, numerical integration, edge cases."""

import numpy as np
import pytest
from scipy import integrate, special

from airinfer.phy import theory

# quad over the exponential pdf resolves these integrals to ~1e-10 relative;
# 1e-6 leaves room for its adaptive error estimate without hiding a wrong formula
# (a wrong coefficient or a missing factor 2 moves values by far more than that).
INTEGRATION_RTOL = 1e-6

MODULATIONS = ["qpsk", "16qam", "64qam"]


def test_qpsk_awgn_known_values():
    # Gray QPSK: Pb = Q(sqrt(Es/N0)); at 0 dB that is Q(1).
    assert theory.ber_awgn(0.0, "qpsk") == pytest.approx(0.15865525393145707, rel=1e-12)
    # Eb/N0 = 9.6 dB (Es/N0 = 12.6 dB) is the textbook Pb ≈ 1e-5 point.
    assert theory.ber_awgn(9.6 + 10 * np.log10(2), "qpsk") == pytest.approx(1.0e-5, rel=0.05)


def test_16qam_awgn_matches_the_written_out_erfc_form():
    snr_db = np.linspace(-10, 25, 36)
    np.testing.assert_allclose(
        theory.ber_awgn(snr_db, "16qam"), theory.ber_16qam_awgn(snr_db), rtol=1e-12
    )
    # Independent by hand at 10 dB: a = sqrt(10 / 10) = 1.
    expected = (3 * special.erfc(1.0) + 2 * special.erfc(3.0) - special.erfc(5.0)) / 8
    assert theory.ber_awgn(10.0, "16qam") == pytest.approx(expected, rel=1e-12)


def test_64qam_terms_are_the_textbook_gray_expression():
    # Pb = (7 Q(a) + 6 Q(3a) - Q(5a) + Q(9a) - Q(13a)) / 12 with a = sqrt(Es/(21 N0)).
    snr_db = np.array([5.0, 15.0, 22.0])
    a = np.sqrt(10 ** (snr_db / 10) / 21)
    q = theory.q_function
    expected = (7 * q(a) + 6 * q(3 * a) - q(5 * a) + q(9 * a) - q(13 * a)) / 12
    np.testing.assert_allclose(theory.ber_awgn(snr_db, "64qam"), expected, rtol=1e-12)


def test_qpsk_rayleigh_known_closed_form():
    snr = 10.0  # 10 dB
    assert theory.ber_rayleigh(10.0, "qpsk") == pytest.approx(
        0.5 * (1 - np.sqrt(snr / (2 + snr))), rel=1e-12
    )


@pytest.mark.parametrize("modulation", MODULATIONS)
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_rayleigh_equals_awgn_averaged_over_the_fading(modulation, snr_db):
    snr = 10 ** (snr_db / 10)

    def integrand(gain):
        # gain = |h|^2 ~ Exp(1); the instantaneous Es/N0 is gain * snr.
        return theory.ber_awgn(10 * np.log10(gain * snr), modulation) * np.exp(-gain)

    # Split at 1/snr where the integrand's scale changes, for quad's sake.
    pieces = [(1e-300, 1.0 / snr), (1.0 / snr, 1.0), (1.0, np.inf)]
    numeric = sum(integrate.quad(integrand, lo, hi, limit=200)[0] for lo, hi in pieces)
    assert theory.ber_rayleigh(snr_db, modulation) == pytest.approx(numeric, rel=INTEGRATION_RTOL)


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_ber_is_decreasing_bounded_and_finite_over_the_snr_range(modulation):
    snr_db = np.linspace(-40, 60, 201)
    for channel in ("awgn", "rayleigh"):
        ber = theory.ber(snr_db, modulation, channel)
        assert ber.shape == snr_db.shape and np.all(np.isfinite(ber))
        assert np.all(ber <= 0.5 + 1e-12) and np.all(ber >= 0)
        assert np.all(np.diff(ber) <= 1e-15)
    # Low SNR: half the bits wrong; high-SNR Rayleigh: no cancellation to 0.
    assert theory.ber_awgn(-40.0, modulation) == pytest.approx(0.5, abs=0.01)
    assert theory.ber_rayleigh(60.0, modulation) > 0


def test_rayleigh_high_snr_asymptote():
    # QPSK: Pb -> 1 / (2 snr) as snr grows; the stable form must keep the digits.
    for snr_db in (40.0, 60.0, 80.0):
        snr = 10 ** (snr_db / 10)
        assert theory.ber_rayleigh(snr_db, "qpsk") == pytest.approx(1 / (2 * snr), rel=1e-3)


def test_capacity_awgn_known_values():
    assert theory.capacity_awgn(0.0) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(
        theory.capacity_awgn(np.array([10.0, 20.0])), np.log2(1 + np.array([10.0, 100.0]))
    )


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 30.0])
def test_capacity_rayleigh_equals_numerical_average(snr_db):
    snr = 10 ** (snr_db / 10)
    numeric, _ = integrate.quad(lambda g: np.log2(1 + g * snr) * np.exp(-g), 0, np.inf)
    assert theory.capacity_rayleigh(snr_db) == pytest.approx(numeric, rel=INTEGRATION_RTOL)
    assert theory.capacity_rayleigh(snr_db) < theory.capacity_awgn(snr_db)  # Jensen


def test_capacity_rayleigh_is_finite_at_extremes_and_follows_asymptotes():
    # Low SNR: C ≈ snr / ln 2, where exp(1/snr) alone would overflow.
    for snr_db in (-60.0, -100.0, -300.0):
        snr = 10 ** (snr_db / 10)
        assert theory.capacity_rayleigh(snr_db) == pytest.approx(snr / np.log(2), rel=1e-4)
    # High SNR: C ≈ log2(snr) - Euler gamma / ln 2.
    assert theory.capacity_rayleigh(60.0) == pytest.approx(
        np.log2(1e6) - np.euler_gamma / np.log(2), rel=1e-5
    )
    grid = theory.capacity_rayleigh(np.linspace(-40, 60, 101))
    assert np.all(np.isfinite(grid)) and np.all(np.diff(grid) > 0)
    assert theory.capacity_rayleigh(-np.inf) == 0.0


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="modulation"):
        theory.ber_awgn(0.0, "8psk")
    with pytest.raises(ValueError, match="channel"):
        theory.ber(0.0, "qpsk", "rician")
    with pytest.raises(ValueError, match="channel"):
        theory.capacity(0.0, "tdl")
    with pytest.raises(ValueError, match="snr_db"):
        theory.ber_rayleigh(np.nan, "qpsk")
