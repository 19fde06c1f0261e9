"""The 5G NR MCS tables of 3GPP TS 38.214 for the PDSCH, as data.

``MCS_TABLE_ROWS[t][i]`` is ``(Qm, 1024 R)`` of MCS index ``i`` in Table
5.1.3.1-1 (``t = 1``, QPSK to 64QAM) or Table 5.1.3.1-2 (``t = 2``, QPSK to
256QAM) of 38.214: the modulation order and the target code rate times 1024,
as the standard prints them. Only the indices with a rate are listed (0-28 in
table 1, 0-27 in table 2); the remaining ones are reserved for retransmissions.

Kept as a literal table so that reading an MCS needs no TensorFlow: the same
rows as Sionna's ``sionna.phy.nr.utils.decode_mcs_index(..., is_pusch=False)``,
which the test suite checks index by index.
"""

__all__ = ["MCS_TABLE_ROWS"]

MCS_TABLE_ROWS = {
    # 38.214 Table 5.1.3.1-1: MCS index table 1 for PDSCH
    1: (
        (2, 120), (2, 157), (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526),
        (2, 602), (2, 679), (4, 340), (4, 378), (4, 434), (4, 490), (4, 553), (4, 616),
        (4, 658), (6, 438), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666), (6, 719),
        (6, 772), (6, 822), (6, 873), (6, 910), (6, 948),
    ),
    # 38.214 Table 5.1.3.1-2: MCS index table 2 for PDSCH
    2: (
        (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 434), (4, 490),
        (4, 553), (4, 616), (4, 658), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666),
        (6, 719), (6, 772), (6, 822), (6, 873), (8, 682.5), (8, 711), (8, 754), (8, 797),
        (8, 841), (8, 885), (8, 916.5), (8, 948),
    ),
}  # fmt: skip
