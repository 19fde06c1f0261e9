"""Link adaptation: the 5G NR MCS tables and the highest MCS that meets a BLER target.

The modulation and coding schemes are those of 3GPP TS 38.214, Tables
5.1.3.1-1 (``table_index=1``, QPSK to 64QAM) and 5.1.3.1-2 (``table_index=2``,
QPSK to 256QAM), read from Sionna (``sionna.phy.nr.utils.decode_mcs_index``,
PDSCH). An entry ``(Qm, R)`` runs on :mod:`airinfer.phy.digital` as Gray
``2^Qm``-QAM with a 5G LDPC code of ``k`` info bits and the fewest whole
symbols that reach rate ``R``, ``n = Qm ceil(k / (R Qm))`` (Sionna's rule).
Sionna's LDPC encoder takes rates of at least 1/5 only (no repetition rate
matching), so the entries with ``R < 1/5`` (table 1: MCS 0-2, table 2: MCS 0-1)
are listed but not :attr:`MCS.supported`.

:func:`select_mcs` picks, for an Es/N0, the highest MCS whose block error rate
(BLER) does not exceed a target, as Sionna's ``InnerLoopLinkAdaptation`` does
(``max {MCS : BLER(MCS, SNR) <= target}``). The BLER comes from curves measured
with the project's own link, not from Sionna's ``PHYAbstraction`` tables: those
are sampled every ~1.6 dB, which puts a whole waterfall between two points
(interpolated, they reach BLER 0.1 up to 0.75 dB, on average 0.4 dB, below the
link); they stop at 2000-bit blocks and at AWGN; and they were simulated with
the 38.212 bit interleaver, which the project's link lacks (at their own grid
points they agree with it within 0.1 dB for QPSK, while 16QAM to 256QAM need
0.2 dB more on average, up to 0.5 dB, without it).

Each curve (:func:`measure_bler_curve`) is the BLER of blocks of 512 info bits
on a 0.25 dB grid of Es/N0 through :func:`airinfer.phy.digital.error_counts`,
from where every block fails to two zero-error points in a row; each point
sends batches of 100 blocks until 50 block errors or 1000 blocks. The curves of
every supported entry, for AWGN and for the link's Rayleigh fading (i.i.d. per
symbol, perfect CSI, against the average Es/N0), were measured once and ship
with the package (68 curves, 5,000-25,000 blocks each; and the two of QPSK at
rate 1/2, the strategies' default link, which :mod:`airinfer.phy.abstraction`
uses). Larger blocks use the
512-bit curves, which is conservative: at a given SNR a longer LDPC block fails
no more often once the BLER is below 0.25 (so say Sionna's tables at 500, 1000
and 2000 bits; beyond 2000 bits this is an extrapolation). Smaller blocks are
measured on first use, one to three minutes per MCS on two CPU cores, and
cached for the process.

SNR is **Es/N0 per complex symbol in dB**: unit-energy symbols, noise CN(0, no)
with ``no = 10 ** (-snr_db / 10)``; the average Es/N0 under Rayleigh fading.
"""

import functools
import math
from typing import NamedTuple

import jax
import numpy as np
from scipy import optimize

from airinfer.phy import digital, theory
from airinfer.phy.sionna_backend import tensorflow

__all__ = [
    "MCS_TABLES",
    "CHANNELS",
    "DEFAULT_MCS_TABLE",
    "TABLE_BLOCK_BITS",
    "MIN_CODE_RATE",
    "MCS",
    "BlerCurve",
    "mcs_table",
    "get_mcs",
    "link_config",
    "measure_bler_curve",
    "bler_curve",
    "shipped_curve",
    "bler",
    "select_mcs",
]

#: 38.214 MCS tables available: 1 (up to 64QAM) and 2 (up to 256QAM).
MCS_TABLES = (1, 2)
#: Channels with BLER curves: the digital link's flat ones.
CHANNELS = ("awgn", "rayleigh")
#: The table used when none is named: the one that reaches 256QAM.
DEFAULT_MCS_TABLE = 2
#: Info bits per LDPC block of the shipped BLER curves.
TABLE_BLOCK_BITS = 512
#: Lowest LDPC rate of Sionna's 5G encoder (base graph 2 without repetition).
MIN_CODE_RATE = 0.2
#: Es/N0 step (dB) of the measured BLER curves.
STEP_DB = 0.25

_MODULATION_OF = {m: name for name, m in digital.MODULATIONS.items()}
# Grid points are keyed by their index on the STEP_DB grid plus this offset, so
# that the key of a point does not depend on where its scan began (fold_in
# takes non-negative data).
_GRID_KEY_OFFSET = 4096
_LDPC_K_RANGE = (12, 8448)


class MCS(NamedTuple):
    """One entry of a 38.214 MCS table.

    Attributes:
        table_index: 1 or 2, the table it belongs to.
        index: the MCS index ``I_MCS`` in that table.
        bits_per_symbol: modulation order ``Qm`` (2, 4, 6 or 8).
        code_rate: target code rate ``R`` (38.214 lists ``1024 R``).
    """

    table_index: int
    index: int
    bits_per_symbol: int
    code_rate: float

    @property
    def modulation(self):
        """``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"``."""
        return _MODULATION_OF[self.bits_per_symbol]

    @property
    def spectral_efficiency(self):
        """``Qm R``, info bits per complex symbol (before the rounding of ``n``)."""
        return self.bits_per_symbol * self.code_rate

    @property
    def supported(self):
        """Whether the link can run it: ``R >= 1/5`` (Sionna's LDPC encoder)."""
        return self.code_rate >= MIN_CODE_RATE


class BlerCurve(NamedTuple):
    """Measured block errors on an Es/N0 grid of step :data:`STEP_DB`.

    Attributes:
        snr_db: ``[P]`` float64, increasing Es/N0 per complex symbol (dB).
        block_errors: ``[P]`` int64, blocks with any wrong info bit.
        blocks: ``[P]`` int64, blocks sent (binomial standard error of the
            BLER ``sqrt(p (1 - p) / blocks)``).

    Every block fails at the first point; the last two have no error. Below the
    grid the BLER is 1, above it 0.
    """

    snr_db: np.ndarray
    block_errors: np.ndarray
    blocks: np.ndarray

    @property
    def bler(self):
        """``[P]`` float64, ``block_errors / blocks`` made non-increasing in SNR.

        Each point is replaced by the least BLER measured at or below its SNR
        (the BLER of a decoder only falls as the SNR rises; this removes
        Monte-Carlo wiggles of at most a few standard errors).
        """
        return np.minimum.accumulate(self.block_errors / self.blocks)


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_table_index(table_index):
    if not _is_int(table_index) or table_index not in MCS_TABLES:
        raise ValueError(f"table_index must be one of {MCS_TABLES}, got {table_index!r}")


def _check_channel(channel):
    if channel not in CHANNELS:
        raise ValueError(
            f"channel must be one of {list(CHANNELS)} (the channels with BLER curves), "
            f"got {channel!r}"
        )


def _check_block_bits(block_bits):
    low, high = _LDPC_K_RANGE
    if not _is_int(block_bits) or not low <= block_bits <= high:
        raise ValueError(f"block_bits must be an int in [{low}, {high}], got {block_bits!r}")


@functools.cache
def _decoded_table(table_index):
    """``((Qm, R), ...)`` of every index of a PDSCH table, from Sionna."""
    tf = tensorflow()
    from sionna.phy.nr.utils import decode_mcs_index

    indices = tf.range(29, dtype=tf.int32)
    orders, rates = decode_mcs_index(
        indices, table_index=table_index, is_pusch=False, check_index_validity=False
    )
    entries = []
    for order, rate in zip(orders.numpy().tolist(), rates.numpy().tolist(), strict=True):
        if order < 0:  # reserved index (table 2 has 28 entries)
            break
        entries.append((int(order), float(rate)))
    return tuple(entries)


def mcs_table(table_index=DEFAULT_MCS_TABLE):
    """The entries of 38.214 MCS table ``table_index`` (1 or 2), by increasing index.

    Output:
        tuple of :class:`MCS`: 29 entries (indices 0-28) for table 1, 28 (0-27)
        for table 2; the remaining indices of 38.214 are reserved for
        retransmissions and carry no rate.
    """
    _check_table_index(table_index)
    return tuple(
        MCS(table_index, i, order, rate)
        for i, (order, rate) in enumerate(_decoded_table(table_index))
    )


def get_mcs(index, table_index=DEFAULT_MCS_TABLE):
    """The :class:`MCS` of ``index`` in 38.214 table ``table_index``."""
    table = mcs_table(table_index)
    if not _is_int(index) or not 0 <= index < len(table):
        raise ValueError(
            f"MCS index must be an int in [0, {len(table) - 1}] for table {table_index}, "
            f"got {index!r}"
        )
    return table[index]


def link_config(mcs, channel="awgn", block_bits=TABLE_BLOCK_BITS):
    """The :class:`airinfer.phy.digital.LinkConfig` that runs ``mcs``.

    Parameters:
        mcs: :class:`MCS` (see :func:`get_mcs`).
        channel: a channel of :mod:`airinfer.phy.digital`: ``"awgn"``,
            ``"rayleigh"`` (the two with BLER curves), or an OFDM model with
            the link's OFDM defaults.
        block_bits: info bits ``k`` per LDPC block.

    Output:
        ``LinkConfig(mcs.modulation, channel, "ldpc", k, n)`` with
        ``n = Qm ceil(k / (R Qm))``: the fewest whole symbols that reach rate
        ``R`` (the actual rate ``k / n`` is at most ``R``). 20 decoder iterations,
        as the BLER curves were measured.
    """
    if not isinstance(mcs, MCS):
        raise ValueError(f"mcs must be an MCS (see get_mcs), got {type(mcs).__name__}")
    if channel not in digital.CHANNELS:
        raise ValueError(f"channel must be one of {list(digital.CHANNELS)}, got {channel!r}")
    _check_block_bits(block_bits)
    if not mcs.supported:
        raise ValueError(
            f"MCS {mcs.index} of table {mcs.table_index} (rate {mcs.code_rate * 1024:g}/1024) "
            f"is below the LDPC encoder's lowest rate {MIN_CODE_RATE}: not supported"
        )
    m = mcs.bits_per_symbol
    n = m * math.ceil(round(block_bits / (mcs.code_rate * m), 9))
    try:
        return digital.LinkConfig(mcs.modulation, channel, "ldpc", block_bits, n)
    except ValueError as err:
        raise ValueError(f"MCS {mcs.index} with block_bits={block_bits}: {err}") from err


# ---------------------------------------------------------------------------
# BLER curves


def _capacity_threshold_db(spectral_efficiency, channel):
    """The Es/N0 (dB) at which the channel's capacity equals ``spectral_efficiency``."""
    if channel == "awgn":
        return 10.0 * math.log10(2.0**spectral_efficiency - 1.0)
    return optimize.brentq(
        lambda x: float(theory.capacity_rayleigh(x)) - spectral_efficiency, -40.0, 60.0
    )


def _measure_point(key, link, snr_db, min_block_errors, max_blocks, blocks_per_batch):
    errors = blocks = batch = 0
    while errors < min_block_errors and blocks < max_blocks:
        counts = digital.error_counts(
            jax.random.fold_in(key, batch), link, snr_db, blocks_per_batch
        )
        errors += int(counts.block_errors)
        blocks += counts.blocks
        batch += 1
    return errors, blocks


def measure_bler_curve(link, *, min_block_errors=50, max_blocks=1000, blocks_per_batch=100, seed=0):
    """Measure the BLER of ``link`` against Es/N0 across its waterfall.

    The scan starts on the :data:`STEP_DB` grid at or below the SNR where the
    channel's capacity equals the link's rate ``Qm k / n`` (every block fails
    there; if not, it restarts 1 dB lower) and climbs until two points in a row
    see no block error. Each point sends batches of ``blocks_per_batch`` blocks
    until ``min_block_errors`` block errors or ``max_blocks`` blocks.

    Parameters:
        link: :class:`airinfer.phy.digital.LinkConfig` with LDPC coding.
        min_block_errors: int >= 1.
        max_blocks: int >= 1.
        blocks_per_batch: int >= 1, blocks per jitted call.
        seed: int; grid point ``i`` (``snr_db = i * STEP_DB``) and batch ``b``
            use the key ``fold_in(fold_in(key(seed), i + 4096), b)``.

    Output:
        :class:`BlerCurve`.
    """
    if not isinstance(link, digital.LinkConfig) or link.coding != "ldpc":
        raise ValueError(f"link must be an LDPC phy.digital.LinkConfig, got {link!r}")
    _check_channel(link.channel)
    for name, value in (
        ("min_block_errors", min_block_errors),
        ("max_blocks", max_blocks),
        ("blocks_per_batch", blocks_per_batch),
    ):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    root = jax.random.key(seed)
    rate = link.bits_per_symbol * link.code_rate
    first = math.floor(_capacity_threshold_db(rate, link.channel) / STEP_DB)
    while True:
        points = []
        i = first
        while len(points) < 2 or points[-1][0] or points[-2][0]:
            key = jax.random.fold_in(root, i + _GRID_KEY_OFFSET)
            points.append(
                _measure_point(
                    key, link, i * STEP_DB, min_block_errors, max_blocks, blocks_per_batch
                )
            )
            if len(points) == 1 and points[0][0] < points[0][1]:
                break  # not every block failed at the first point: start lower
            i += 1
        if points[0][0] == points[0][1]:
            break
        first -= round(1.0 / STEP_DB)
    errors, blocks = (np.asarray(column, np.int64) for column in zip(*points, strict=True))
    snr_db = (first + np.arange(len(points))) * STEP_DB
    return BlerCurve(snr_db.astype(np.float64), errors, blocks)


def _rate_key(mcs):
    """``(Qm, 1024 R)``: how the shipped curves are keyed (both tables share entries)."""
    return mcs.bits_per_symbol, mcs.code_rate * 1024


@functools.cache
def _shipped_curves(channel):
    from airinfer.phy import _mcs_bler_data

    step = _mcs_bler_data.STEP_DB
    return {
        (order, rate_1024): BlerCurve(
            start + step * np.arange(len(errors)),
            np.asarray(errors, np.int64),
            np.asarray(blocks, np.int64),
        )
        for (chan, order, rate_1024), (start, errors, blocks) in _mcs_bler_data.CURVES.items()
        if chan == channel
    }


def shipped_curve(link):
    """The shipped :class:`BlerCurve` measured for exactly ``link`` (a
    :class:`~airinfer.phy.digital.LinkConfig`), or None if none was."""
    for order, rate_1024 in _shipped_curves(link.channel) if link.channel in CHANNELS else ():
        mcs = MCS(0, 0, order, rate_1024 / 1024)
        if link_config(mcs, link.channel, TABLE_BLOCK_BITS) == link:
            return _shipped_curves(link.channel)[order, rate_1024]
    return None


@functools.cache
def _measured_curve(bits_per_symbol, rate_1024, channel, block_bits):
    mcs = MCS(0, 0, bits_per_symbol, rate_1024 / 1024)
    return measure_bler_curve(link_config(mcs, channel, block_bits))


def bler_curve(mcs, channel="awgn", block_bits=TABLE_BLOCK_BITS):
    """The :class:`BlerCurve` that stands for ``mcs`` on ``channel`` with ``block_bits`` blocks.

    The shipped 512-bit curve for ``block_bits >= 512``; below, a curve measured
    with :func:`measure_bler_curve` on first use (cached for the process).
    """
    _check_channel(channel)
    link = link_config(mcs, channel, block_bits)  # checks the rest
    key = _rate_key(mcs)
    if block_bits >= TABLE_BLOCK_BITS:
        return _shipped_curves(channel)[key]
    return _measured_curve(*key, channel, link.k)


def bler(mcs, snr_db, channel="awgn", block_bits=TABLE_BLOCK_BITS):
    """BLER of ``mcs`` at ``snr_db``, interpolated linearly in dB on its curve.

    Parameters:
        mcs: :class:`MCS`, supported.
        snr_db: float or array, Es/N0 per complex symbol in dB (average for
            Rayleigh); must be finite.
        channel: ``"awgn"`` or ``"rayleigh"``.
        block_bits: info bits per LDPC block (see :func:`bler_curve`).

    Output:
        float64 array of ``snr_db``'s shape, in [0, 1]: 1 below the curve's
        grid, 0 above it.
    """
    snr = np.asarray(snr_db, dtype=np.float64)
    if not np.all(np.isfinite(snr)):
        raise ValueError(f"snr_db must be finite, got {snr_db!r}")
    curve = bler_curve(mcs, channel, block_bits)
    return np.interp(snr, curve.snr_db, curve.bler, left=1.0, right=0.0)[()]


def select_mcs(
    snr_db,
    target_bler=0.1,
    *,
    channel="awgn",
    table_index=DEFAULT_MCS_TABLE,
    block_bits=TABLE_BLOCK_BITS,
    num_blocks=1,
):
    """The highest MCS whose error rate at ``snr_db`` does not exceed ``target_bler``.

    ``max {MCS : 1 - (1 - BLER(MCS, snr_db)) ** num_blocks <= target_bler}``
    over the supported entries of the table, as Sionna's inner-loop link
    adaptation chooses (with ``num_blocks`` code blocks per transport block).
    Non-decreasing in ``snr_db``.

    Parameters:
        snr_db: float, Es/N0 per complex symbol in dB (average for Rayleigh),
            finite; a concrete number (the MCS is a static configuration).
        target_bler: float in (0, 1). The curves send at most 1000 blocks per
            point, so a point without errors only bounds the BLER by ~0.003
            (95 %): targets below ~0.01 ask more than the curves resolve.
        channel: ``"awgn"`` or ``"rayleigh"``.
        table_index: 1 or 2 (38.214 tables 5.1.3.1-1 and -2).
        block_bits: info bits per LDPC block (see :func:`bler_curve`).
        num_blocks: int >= 1, blocks that must all be right.

    Output:
        :class:`MCS`, or ``None`` when not even the lowest supported MCS meets
        the target (the caller chooses the fallback: the lowest MCS, local
        decisions, ...).
    """
    if isinstance(snr_db, jax.core.Tracer):
        raise ValueError(
            "snr_db must be a concrete number, got a traced value: choose the MCS outside jit"
        )
    try:
        snr = float(snr_db)
    except (TypeError, ValueError):
        raise ValueError(f"snr_db must be a finite number, got {snr_db!r}") from None
    if not math.isfinite(snr):
        raise ValueError(f"snr_db must be finite, got {snr_db!r}")
    if not (isinstance(target_bler, int | float | np.floating) and 0 < target_bler < 1):
        raise ValueError(f"target_bler must be a number in (0, 1), got {target_bler!r}")
    if not _is_int(num_blocks) or num_blocks < 1:
        raise ValueError(f"num_blocks must be an int >= 1, got {num_blocks!r}")
    _check_channel(channel)
    _check_block_bits(block_bits)
    # The block error rate that keeps num_blocks blocks within the target.
    per_block = -math.expm1(math.log1p(-target_bler) / num_blocks)
    for mcs, curve in reversed(_table_curves(table_index, channel, block_bits)):
        if np.interp(snr, curve.snr_db, curve.bler, left=1.0, right=0.0) <= per_block:
            return mcs
    return None


@functools.cache
def _table_curves(table_index, channel, block_bits):
    """``((MCS, BlerCurve), ...)`` of the supported entries of a table, by index."""
    return tuple(
        (mcs, bler_curve(mcs, channel, block_bits))
        for mcs in mcs_table(table_index)
        if mcs.supported
    )
