"""The 5G NR MCS tables of 3GPP TS 38.214 and the digital link that runs an entry.

The modulation and coding schemes are those of 3GPP TS 38.214, Tables
5.1.3.1-1 (``table_index=1``, QPSK to 64QAM) and 5.1.3.1-2 (``table_index=2``,
QPSK to 256QAM), PDSCH, shipped as data (:mod:`airinfer.phy.mcs_tables`; the
tests check them against Sionna's ``sionna.phy.nr.utils.decode_mcs_index``), so
that reading an MCS needs no TensorFlow. An entry ``(Qm, R)`` runs on
:mod:`airinfer.phy.digital` as Gray ``2^Qm``-QAM with a 5G LDPC code of ``k``
info bits and the fewest whole symbols that reach rate ``R``,
``n = Qm ceil(k / (R Qm))`` (Sionna's rule). Sionna's LDPC encoder takes rates of
at least 1/5 only (no repetition rate matching), so the entries with ``R < 1/5``
(table 1: MCS 0-2, table 2: MCS 0-1) are listed but not :attr:`MCS.supported`.

:func:`link_config` builds that link; :mod:`airinfer.phy.link_adaptation` measures
the entries' BLER curves and picks the highest MCS that meets a BLER target.
"""

import math
from typing import NamedTuple

import numpy as np

from airinfer.phy import digital
from airinfer.phy.mcs_tables import MCS_TABLE_ROWS

__all__ = [
    "MCS_TABLES",
    "DEFAULT_MCS_TABLE",
    "TABLE_BLOCK_BITS",
    "MIN_CODE_RATE",
    "MCS",
    "mcs_table",
    "get_mcs",
    "link_config",
    "check_block_bits",
]

#: 38.214 MCS tables available: 1 (up to 64QAM) and 2 (up to 256QAM).
MCS_TABLES = tuple(MCS_TABLE_ROWS)
#: The table used when none is named: the one that reaches 256QAM.
DEFAULT_MCS_TABLE = 2
#: Info bits per LDPC block when none is given: the blocks of the shipped BLER curves.
TABLE_BLOCK_BITS = 512
#: Lowest LDPC rate of Sionna's 5G encoder (base graph 2 without repetition).
MIN_CODE_RATE = 0.2

_MODULATION_OF = {m: name for name, m in digital.MODULATIONS.items()}
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


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_table_index(table_index):
    if not _is_int(table_index) or table_index not in MCS_TABLES:
        raise ValueError(f"table_index must be one of {MCS_TABLES}, got {table_index!r}")


def check_block_bits(block_bits):
    """Refuse ``block_bits`` unless it is an int ``k`` the 5G LDPC code takes (12 to 8448)."""
    low, high = _LDPC_K_RANGE
    if not _is_int(block_bits) or not low <= block_bits <= high:
        raise ValueError(f"block_bits must be an int in [{low}, {high}], got {block_bits!r}")


def mcs_table(table_index=DEFAULT_MCS_TABLE):
    """The entries of 38.214 MCS table ``table_index`` (1 or 2), by increasing index.

    Output:
        tuple of :class:`MCS`: 29 entries (indices 0-28) for table 1, 28 (0-27)
        for table 2; the remaining indices of 38.214 are reserved for
        retransmissions and carry no rate.
    """
    _check_table_index(table_index)
    return tuple(
        MCS(table_index, i, order, rate_1024 / 1024)
        for i, (order, rate_1024) in enumerate(MCS_TABLE_ROWS[table_index])
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
    check_block_bits(block_bits)
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
