"""Rates of the digital link for latency models: Shannon, nominal and goodput.

Re-exported by :mod:`airinfer.phy.digital` (``digital.achievable_rate`` …); kept
apart from the link itself, which they do not run.
"""

import numpy as np

from airinfer.phy import theory

__all__ = ["achievable_rate", "nominal_rate", "goodput"]


def achievable_rate(bandwidth_hz, snr_db, channel="awgn"):
    """Shannon rate of a link in bit/s: ``bandwidth * capacity(snr)``.

    Parameters:
        bandwidth_hz: float or array, > 0 (one complex symbol per second per Hz).
        snr_db: float or array, Es/N0 per complex symbol in dB (average for Rayleigh).
        channel: ``"awgn"`` (``log2(1 + snr)``) or ``"rayleigh"`` (ergodic capacity).

    Output:
        float64 array (broadcast of the inputs), bit/s.
    """
    bandwidth_hz = np.asarray(bandwidth_hz, dtype=np.float64)
    if np.any(np.isnan(bandwidth_hz)) or np.any(bandwidth_hz <= 0):
        raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz}")
    return bandwidth_hz * theory.capacity(snr_db, channel)


def nominal_rate(config, bandwidth_hz):
    """Info bit rate of ``config`` at one symbol per second per Hz: ``B m k / n`` bit/s."""
    bandwidth_hz = np.asarray(bandwidth_hz, dtype=np.float64)
    if np.any(np.isnan(bandwidth_hz)) or np.any(bandwidth_hz <= 0):
        raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz}")
    return bandwidth_hz * config.bits_per_symbol * config.code_rate


def goodput(config, bandwidth_hz, bler):
    """Rate of correctly received info bits, ``nominal_rate * (1 - bler)``, bit/s.

    ``bler`` is the block error rate in ``[0, 1]`` (measured, e.g. by
    :func:`simulate_ber`, at the SNR of interest).
    """
    bler = np.asarray(bler, dtype=np.float64)
    if np.any(np.isnan(bler)) or np.any((bler < 0) | (bler > 1)):
        raise ValueError(f"bler must be in [0, 1], got {bler}")
    return nominal_rate(config, bandwidth_hz) * (1.0 - bler)
