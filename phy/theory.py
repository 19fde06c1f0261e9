"""Closed-form bit error rates and capacities of single-antenna links.

Every function takes the SNR as **Es/N0 per complex symbol in dB** (the
project convention): with unit-energy symbols the noise is CN(0, no) with
``no = 10 ** (-snr_db / 10)``, ``no / 2`` per real dimension. The bit SNR is
Eb/N0 = Es/N0 / bits-per-symbol (uncoded). For Rayleigh fading the SNR is the
*average* received Es/N0: ``y = h x + n`` with ``h ~ CN(0, 1)`` drawn i.i.d.
per symbol and known perfectly at the receiver (coherent detection).

Square QAM with Gray labelling is two independent Gray-labelled PAMs, one per
real dimension, so the bit error rate of M-QAM equals that of sqrt(M)-PAM at
the same per-dimension SNR. :func:`ber_awgn` evaluates it exactly as a sum of
Q-function terms ``sum_t c_t Q(d_t sqrt(3 snr / (M - 1)))`` built from the
decision regions (for 16QAM this is ``(3 Q(a) + 2 Q(3a) - Q(5a)) / 4`` with
``a = sqrt(snr / 5)``); :func:`ber_rayleigh` averages every term over the
exponential distribution of ``|h|^2`` in closed form,
``E[Q(sqrt(2 g))] = (1 - sqrt(gbar / (1 + gbar))) / 2``.

All functions are vectorised NumPy/SciPy (float64) and not jit-able.
"""

import functools

import numpy as np
from scipy import special

__all__ = [
    "BITS_PER_SYMBOL",
    "bits_per_symbol",
    "q_function",
    "ber_awgn",
    "ber_rayleigh",
    "ber",
    "ber_16qam_awgn",
    "capacity_awgn",
    "capacity_rayleigh",
    "capacity",
]

#: Gray-labelled square QAM constellations known to the physical layer.
BITS_PER_SYMBOL = {"qpsk": 2, "16qam": 4, "64qam": 6}

#: Channels with a closed form here.
CHANNELS = ("awgn", "rayleigh")


def bits_per_symbol(modulation):
    """Bits per symbol of ``modulation`` (``"qpsk"``, ``"16qam"`` or ``"64qam"``)."""
    if modulation not in BITS_PER_SYMBOL:
        raise ValueError(f"modulation must be one of {sorted(BITS_PER_SYMBOL)}, got {modulation!r}")
    return BITS_PER_SYMBOL[modulation]


def _snr_linear(snr_db):
    snr_db = np.asarray(snr_db, dtype=np.float64)
    if np.any(np.isnan(snr_db)):
        raise ValueError(f"snr_db must not be NaN, got {snr_db}")
    return np.power(10.0, snr_db / 10.0)


def q_function(x):
    """Gaussian tail probability ``Q(x) = P(N(0,1) > x) = erfc(x / sqrt(2)) / 2``."""
    return 0.5 * special.erfc(np.asarray(x, dtype=np.float64) / np.sqrt(2.0))


def _gray(i):
    return i ^ (i >> 1)


@functools.cache
def _pam_q_terms(num_bits_per_symbol):
    """BER of Gray square QAM as ``{distance: coefficient}`` of Q-function terms.

    The PAM of one real dimension has ``L = 2 ** (num_bits_per_symbol / 2)``
    points at ``-(L-1), ..., -1, 1, ..., L-1`` (in units of half the minimum
    distance) with Gray labels. Sending point ``i`` and deciding region ``j != i``
    happens with probability ``Q(near) - Q(far)``, where ``near`` and ``far`` are
    the distances from point ``i`` to the two boundaries of region ``j`` (``far``
    is infinite for an outer region); each such event costs
    ``hamming(label_i, label_j)`` bit errors. Averaging over points and bits
    gives the BER as a weighted sum of ``Q(d * unit)``.
    """
    bits_per_dim = num_bits_per_symbol // 2
    levels = 2**bits_per_dim
    points = np.arange(-(levels - 1), levels, 2)
    # Boundaries of region j are points[j] -/+ 1, the outer ones at infinity.
    terms = {}
    for i, xi in enumerate(points):
        for j, xj in enumerate(points):
            if i == j:
                continue
            errors = bin(_gray(i) ^ _gray(j)).count("1")
            lower, upper = xj - 1, xj + 1
            near, far = (lower - xi, upper - xi) if xj > xi else (xi - upper, xi - lower)
            is_outer = j in (0, levels - 1)
            terms[int(near)] = terms.get(int(near), 0.0) + errors
            if not is_outer:
                terms[int(far)] = terms.get(int(far), 0.0) - errors
    norm = levels * bits_per_dim
    return tuple(sorted((d, c / norm) for d, c in terms.items() if c != 0))


def _unit_gain(num_bits_per_symbol):
    """``(a / sigma)**2 / snr``: the squared Q argument per unit distance and unit Es/N0.

    Square M-QAM with unit energy has per-dimension amplitude ``a`` with
    ``Es = 2 a^2 (M - 1) / 3``; the noise is ``N0 / 2`` per dimension, so
    ``(a / sigma)^2 = 3 Es / ((M - 1) N0)``.
    """
    m = 2**num_bits_per_symbol
    return 3.0 / (m - 1)


def ber_awgn(snr_db, modulation):
    """Exact BER of Gray-mapped square QAM over AWGN.

    Parameters:
        snr_db: array-like, Es/N0 per complex symbol in dB (noise CN(0, no)).
        modulation: ``"qpsk"``, ``"16qam"`` or ``"64qam"``.

    Output:
        float64 array of ``snr_db``'s shape: the bit error probability. For
        QPSK it is ``Q(sqrt(Es/N0)) = Q(sqrt(2 Eb/N0))``.
    """
    m = bits_per_symbol(modulation)
    snr = _snr_linear(snr_db)
    unit = np.sqrt(_unit_gain(m) * snr)
    out = sum(c * q_function(d * unit) for d, c in _pam_q_terms(m))
    return np.asarray(out, dtype=np.float64)[()]


def _rayleigh_average_q(gbar):
    """``E[Q(sqrt(2 g))]`` for ``g ~ Exp(mean gbar)``, written without cancellation.

    ``(1 - sqrt(r)) / 2`` with ``r = gbar / (1 + gbar)`` loses all digits at high
    SNR; ``1 - sqrt(r) = (1 - r) / (1 + sqrt(r))`` and ``1 - r = 1 / (1 + gbar)``.
    """
    r = gbar / (1.0 + gbar)
    return 0.5 / ((1.0 + gbar) * (1.0 + np.sqrt(r)))


def ber_rayleigh(snr_db, modulation):
    """BER of Gray-mapped square QAM over Rayleigh fading with perfect CSI.

    ``y = h x + n``, ``h ~ CN(0, 1)`` i.i.d. per symbol, coherent detection:
    the AWGN BER at instantaneous SNR ``|h|^2 Es/N0`` averaged over ``|h|^2 ~
    Exp(1)``, in closed form term by term (each ``Q(d sqrt(c |h|^2 snr))``
    averages to ``(1 - sqrt(gbar / (1 + gbar))) / 2`` with ``gbar = d^2 c snr / 2``).
    For QPSK this is ``(1 - sqrt(snr / (2 + snr))) / 2``.

    Parameters:
        snr_db: array-like, average Es/N0 per complex symbol in dB.
        modulation: ``"qpsk"``, ``"16qam"`` or ``"64qam"``.

    Output:
        float64 array of ``snr_db``'s shape: the bit error probability.
    """
    m = bits_per_symbol(modulation)
    snr = _snr_linear(snr_db)
    unit = _unit_gain(m) * snr
    out = sum(c * _rayleigh_average_q(d * d * unit / 2.0) for d, c in _pam_q_terms(m))
    return np.asarray(out, dtype=np.float64)[()]


def ber(snr_db, modulation, channel):
    """:func:`ber_awgn` or :func:`ber_rayleigh` by ``channel`` (``"awgn"`` | ``"rayleigh"``).

    ``snr_db`` is Es/N0 per complex symbol in dB (average for Rayleigh).
    """
    if channel == "awgn":
        return ber_awgn(snr_db, modulation)
    if channel == "rayleigh":
        return ber_rayleigh(snr_db, modulation)
    raise ValueError(f"channel must be one of {list(CHANNELS)}, got {channel!r}")


def ber_16qam_awgn(snr_db):
    """Textbook closed form of Gray 16QAM over AWGN, written out.

    ``(3 erfc(sqrt(g/10)) + 2 erfc(3 sqrt(g/10)) - erfc(5 sqrt(g/10))) / 8`` with
    ``g`` the linear Es/N0 per complex symbol (``snr_db`` in dB). Exact, the same
    value as ``ber_awgn(snr_db, "16qam")``; kept as an independent check.
    """
    root = np.sqrt(_snr_linear(snr_db) / 10.0)
    out = (3 * special.erfc(root) + 2 * special.erfc(3 * root) - special.erfc(5 * root)) / 8.0
    return np.asarray(out, dtype=np.float64)[()]


def capacity_awgn(snr_db):
    """Shannon capacity ``log2(1 + snr)`` in bit/s/Hz (per complex symbol).

    ``snr_db`` is Es/N0 per complex symbol in dB; float64 array of its shape.
    """
    return np.asarray(np.log1p(_snr_linear(snr_db)) / np.log(2.0), dtype=np.float64)[()]


def _exp_e1(x):
    """``exp(x) E1(x)`` for ``x >= 0``, finite for large ``x`` where both factors over/underflow.

    Below ``x = 40`` the product is evaluated directly; above, the asymptotic
    series ``sum_k (-1)^k k! / x^(k+1)`` (12 terms: relative error < 12!/40^12 ≈ 3e-11).
    """
    x = np.asarray(x, dtype=np.float64)
    direct = np.exp(np.minimum(x, 40.0)) * special.exp1(np.clip(x, 1e-300, 40.0))
    safe = np.maximum(x, 40.0)
    series = np.zeros_like(safe)
    term = 1.0 / safe
    for k in range(12):
        series = series + term
        term = -term * (k + 1) / safe
    return np.where(x <= 40.0, direct, series)


def capacity_rayleigh(snr_db):
    """Ergodic capacity ``E[log2(1 + |h|^2 snr)]`` of Rayleigh fading, bit/s/Hz.

    Closed form ``exp(1/snr) E1(1/snr) / ln 2`` with ``snr`` the average Es/N0
    (``snr_db`` in dB, per complex symbol) and ``h ~ CN(0, 1)`` known at the
    receiver. Finite from -inf dB (0) to very high SNR.
    """
    snr = _snr_linear(snr_db)
    with np.errstate(divide="ignore"):
        inverse = np.where(snr > 0, 1.0 / np.maximum(snr, 1e-300), np.inf)
    out = np.where(np.isinf(inverse), 0.0, _exp_e1(np.where(np.isinf(inverse), 1.0, inverse)))
    return np.asarray(out / np.log(2.0), dtype=np.float64)[()]


def capacity(snr_db, channel):
    """:func:`capacity_awgn` or :func:`capacity_rayleigh` by ``channel``; bit/s/Hz.

    ``snr_db`` is Es/N0 per complex symbol in dB (average for Rayleigh).
    """
    if channel == "awgn":
        return capacity_awgn(snr_db)
    if channel == "rayleigh":
        return capacity_rayleigh(snr_db)
    raise ValueError(f"channel must be one of {list(CHANNELS)}, got {channel!r}")
