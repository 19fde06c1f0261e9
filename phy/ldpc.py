"""5G NR LDPC encoding in JAX: the twin of Sionna's ``LDPC5GEncoder(k, n)``.

The code is that of 3GPP TS 38.212 §5.2.2 and §5.3.2 with one code block and
no CRC: the base graph chosen from ``k`` and the rate (BG2 for short blocks or
low rates, else BG1), the smallest lifting size ``Z`` of Table 5.3.2-1 whose
``k_b · Z`` holds ``k``, the base graph's shifts for that ``Z``'s set lifted to
``Z × Z`` circulant permutations. Rate matching follows Sionna's encoder: the
filler bits between ``k`` and ``k_ldpc`` and the first ``2Z`` systematic bits
are left out, then the first ``n`` bits are kept. The base graphs are package
data (``ldpc_base_graphs.json``: per base graph the row, the column and the
eight sets' shift values of every non-zero entry).

Encoding is one matrix product over GF(2): the parity bits are ``P · s mod 2``
with ``P`` precomputed once per ``(k, n)`` from the parity-check matrix's
structure (the 4Z core solved with its inverse, the extension rows read off
their identity diagonal). Batched, ``jit``-able and ``vmap``-able; no TensorFlow.

>>> import numpy as np
>>> code = ldpc_code(512, 1024)
>>> code.base_graph, code.z, code.n
('bg2', 64, 1024)
>>> codeword = np.asarray(encode(np.zeros((2, 512), np.int32), code))
>>> codeword.shape, int(codeword.sum())
((2, 1024), 0)
"""

import dataclasses
import functools
import importlib.resources
import json

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LdpcCode", "ldpc_code", "encode", "parity_check_matrix"]

# 38.212 Table 5.3.2-1: the lifting sizes of each set index i_LS
LIFTING_SETS = (
    (2, 4, 8, 16, 32, 64, 128, 256),
    (3, 6, 12, 24, 48, 96, 192, 384),
    (5, 10, 20, 40, 80, 160, 320),
    (7, 14, 28, 56, 112, 224),
    (9, 18, 36, 72, 144, 288),
    (11, 22, 44, 88, 176, 352),
    (13, 26, 52, 104, 208),
    (15, 30, 60, 120, 240),
)
#: systematic columns of each base graph (k_ldpc = columns · Z)
SYSTEMATIC_COLUMNS = {"bg1": 22, "bg2": 10}
CORE_ROWS = 4  # the double-diagonal core of both base graphs, 4 block rows


@functools.cache
def _base_graphs() -> dict:
    text = importlib.resources.files("airinfer.phy").joinpath("ldpc_base_graphs.json").read_text()
    return json.loads(text)


def _choose_base_graph(k: int, rate: float) -> str:
    """38.212 §7.2.2 (as Sionna applies it): BG2 for short blocks or low rates."""
    if k <= 292 or (k <= 3824 and rate <= 0.67) or rate <= 0.25:
        base_graph = "bg2"
    else:
        base_graph = "bg1"
    if k > {"bg1": 8448, "bg2": 3840}[base_graph]:
        raise ValueError(f"k: {k} is longer than {base_graph} takes in one code block")
    if rate < {"bg1": 1 / 3, "bg2": 1 / 5}[base_graph]:
        raise ValueError(f"n: the rate {rate:.3f} is below what {base_graph} reaches")
    return base_graph


def _lifting(k: int, base_graph: str) -> tuple[int, int]:
    """``(Z, i_LS)``: the smallest lifting size with ``k_b · Z >= k`` (38.212 §5.2.2)."""
    if base_graph == "bg1":
        k_b = 22
    else:
        k_b = 10 if k > 640 else 9 if k > 560 else 8 if k > 192 else 6
    z, set_index = min((z, i) for i, sizes in enumerate(LIFTING_SETS) for z in sizes
                       if k_b * z >= k)  # fmt: skip
    return z, set_index


def _lift(entries, rows: range, columns: range, z: int, set_index: int) -> np.ndarray:
    """The dense 0/1 block ``[len(rows) Z, len(columns) Z]`` of the lifted base graph."""
    block = np.zeros((len(rows) * z, len(columns) * z), np.uint8)
    i = np.arange(z)
    for row, column, *shifts in entries:
        if row in rows and column in columns:
            r, c = (row - rows.start) * z, (column - columns.start) * z
            block[r + i, c + (i + shifts[set_index]) % z] = 1
    return block


def _gf2_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse over GF(2) of a square 0/1 matrix (Gauss–Jordan)."""
    size = len(matrix)
    work = np.concatenate([matrix.astype(bool), np.eye(size, dtype=bool)], axis=1)
    for column in range(size):
        pivot = column + np.flatnonzero(work[column:, column])[0]
        work[[column, pivot]] = work[[pivot, column]]
        others = np.flatnonzero(work[:, column])
        others = others[others != column]
        work[others] ^= work[column]
    return work[:, size:].astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class LdpcCode:
    """One 5G NR LDPC code with its rate matching.

    Attributes:
        k, n: information bits in, codeword bits out.
        base_graph: ``bg1`` or ``bg2``.
        z: the lifting size; ``set_index`` its set i_LS.
        k_ldpc, n_ldpc: systematic and total bits of the lifted code.
        parity: ``[n - k + 2Z, k_ldpc]`` uint8: the parity bits that are sent
            are ``parity · s mod 2``, ``s`` the systematic bits (filler bits 0).
    """

    k: int
    n: int
    base_graph: str
    z: int
    set_index: int
    k_ldpc: int
    n_ldpc: int
    parity: np.ndarray = dataclasses.field(repr=False, compare=False)


def parity_check_matrix(code: LdpcCode) -> np.ndarray:
    """The dense ``[n_ldpc - k_ldpc, n_ldpc]`` 0/1 parity-check matrix of the lifted code."""
    graph = _base_graphs()[code.base_graph]
    return _lift(graph["entries"], range(graph["rows"]), range(graph["columns"]),
                 code.z, code.set_index)  # fmt: skip


@functools.cache
def ldpc_code(k: int, n: int) -> LdpcCode:
    """The code Sionna's ``LDPC5GEncoder(k, n)`` uses, with its encoding matrices."""
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {value!r} is not an int >= 1")
    if n <= k:
        raise ValueError(f"n: {n} is not above k = {k}")
    base_graph = _choose_base_graph(k, k / n)
    z, set_index = _lifting(k, base_graph)
    graph = _base_graphs()[base_graph]
    k_b = SYSTEMATIC_COLUMNS[base_graph]
    k_ldpc, n_ldpc = k_b * z, graph["columns"] * z
    if n > n_ldpc - 2 * z - (k_ldpc - k):
        raise ValueError(f"n: {n} is more than the {base_graph} code of k = {k} sends")

    def block(row_blocks, column_blocks):
        # float32: BLAS products, exact while sums stay below 2**24
        return _lift(graph["entries"], row_blocks, column_blocks, z, set_index).astype(np.float32)

    systematic, core = range(k_b), range(k_b, k_b + CORE_ROWS)
    # core rows: A s + B p_core = 0; extension rows: C1 s + C2 p_core + p_ext = 0
    core_parity = _gf2_inverse(block(range(CORE_ROWS), core)) @ block(range(CORE_ROWS), systematic)
    core_parity %= 2
    # sent: the information bits after the first 2Z, then the first parity bits up to n;
    # only the extension rows of those parity bits are needed
    sent_parity = n - (k - 2 * z)
    extension = range(CORE_ROWS, max(CORE_ROWS, -(-sent_parity // z)))
    extension_parity = (block(extension, systematic) + block(extension, core) @ core_parity) % 2
    parity = np.concatenate([core_parity, extension_parity])[:sent_parity].astype(np.uint8)
    return LdpcCode(k, n, base_graph, z, set_index, k_ldpc, n_ldpc, parity)


def encode(bits, code: LdpcCode) -> jax.Array:
    """Codewords ``[..., n]`` int32 of information bits ``[..., k]`` (0/1)."""
    bits = jnp.asarray(bits)
    if bits.shape[-1] != code.k:
        raise ValueError(f"bits: last axis {bits.shape[-1]} is not k = {code.k}")
    # the filler bits between k and k_ldpc are 0: their columns drop out; a float32
    # product is exact (sums of at most k ones) and runs as a plain matrix product
    weights = jnp.asarray(code.parity[:, : code.k], jnp.float32)
    parity = (bits.astype(jnp.float32) @ weights.T) % 2
    return jnp.concatenate([bits[..., 2 * code.z :].astype(jnp.int32), parity.astype(jnp.int32)],
                           axis=-1)  # fmt: skip
