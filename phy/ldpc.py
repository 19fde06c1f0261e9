"""5G NR LDPC coding in JAX: twins of Sionna's ``LDPC5GEncoder`` and ``LDPC5GDecoder``.

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

Decoding (:func:`decode`) is Sionna's default belief propagation: flooding,
the boxplus-φ check-node update, the sum variable-node update, messages and
channel LLRs clipped at ``llr_max``, a fixed number of iterations; its rate
recovery (punctured bits at LLR 0, filler bits known) and its pruning of the
degree-one parity nodes that nothing sent reaches. φ is computed as Sionna
writes it, ``log(exp(x) + 1) - log(exp(x) - 1)``; XLA's ``exp`` and ``log``
round differently from TensorFlow's in the last bit (on about 15 % and 40 % of
float32 arguments), and the subtractions in
φ and in the check-node sums magnify that, so the soft values drift apart over
the iterations of a block that converges to no codeword. On 5,000 blocks at
1 dB (k = 512, n = 1024) the twin decides as Sionna's decoder run eagerly on
all but 2 blocks (that no decoder decoded correctly), and as Sionna run as a
graph (``tf.function``, where TensorFlow rewrites φ with ``log1p`` and
``expm1``) on all but 9; Sionna's two modes differ on the same 9. 8 of them
no decoder decoded correctly; the ninth Sionna's graph mode alone failed.

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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LdpcCode", "ldpc_code", "encode", "decode", "parity_check_matrix"]

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
#: blocks that iterate together with early stopping on a CPU: a chunk stops with its
#: slowest block
EARLY_STOP_CHUNK = 4


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


# -------------------------------------------------------------------- decoding


class _Graph(NamedTuple):
    """The pruned Tanner graph the decoder runs on, and where the sent bits sit in it."""

    check: np.ndarray  # [E] check node of each edge
    variable: np.ndarray  # [E] variable node of each edge
    num_checks: int
    num_variables: int  # n_pruned


@functools.cache
def _decoder_graph(code: LdpcCode) -> _Graph:
    """Sionna's pruning: drop the trailing degree-one parity nodes nothing sent reaches."""
    matrix = parity_check_matrix(code)
    degree = matrix.sum(axis=0)
    last = code.n_ldpc
    for column in range(code.n_ldpc - 1, 0, -1):  # the trailing run of degree-one nodes
        if degree[column] != 1:
            break
        last = column
    punctured = code.n_ldpc - (code.k_ldpc - code.k) - code.n - 2 * code.z
    kept = max(last, code.n_ldpc - punctured)
    pruned = code.n_ldpc - kept
    matrix = matrix[: matrix.shape[0] - pruned, :kept]
    check, variable = np.nonzero(matrix)
    return _Graph(check.astype(np.int32), variable.astype(np.int32), matrix.shape[0], kept)


def _phi(x):
    """φ(x) = −log tanh(x/2), on Sionna's float32 clipping range."""
    x = jnp.clip(x, 8.5e-8, 16.635532)
    return jnp.log(jnp.exp(x) + 1) - jnp.log(jnp.exp(x) - 1)


def decode(
    llrs,
    code: LdpcCode,
    num_iter: int = 20,
    llr_max: float = 20.0,
    early_stop: bool = False,
    return_iterations: bool = False,
):
    """Hard decisions ``[..., k]`` int32 on the information bits of received LLRs ``[..., n]``.

    Args:
        llrs: float ``log P(b=1) / P(b=0)`` of each sent bit (Sionna's logit
            convention, as :func:`airinfer.phy.qam.demap` gives them).
        code: the code of :func:`ldpc_code`.
        num_iter: belief-propagation iterations (the most, with ``early_stop``).
        llr_max: the clipping of channel LLRs and messages.
        early_stop: freeze a block once, after an iteration, its hard decisions
            on every node of the pruned graph satisfy every parity check (zero
            syndrome). Blocks iterate in chunks of :data:`EARLY_STOP_CHUNK`; a
            chunk stops once every block in it is frozen or after ``num_iter``
            iterations. A frozen block keeps the decisions of the iteration that
            converged. ``jit``- and ``vmap``-able.
        return_iterations: also return ``[...]`` int32, the iterations each
            block ran (``num_iter`` without ``early_stop``, or where it never
            converged).

    Output:
        ``[..., k]`` int32 of 0/1 (and the iterations with ``return_iterations``).
    """
    llrs = jnp.asarray(llrs, jnp.float32)
    if llrs.shape[-1] != code.n:
        raise ValueError(f"llrs: last axis {llrs.shape[-1]} is not n = {code.n}")
    graph = _decoder_graph(code)
    batch = llrs.shape[:-1]
    logits = jnp.clip(llrs.reshape(-1, code.n), -llr_max, llr_max)
    rows = logits.shape[0]
    filler = code.k_ldpc - code.k
    # the lifted codeword's logits: punctured bits unknown (0), filler bits known 0
    full = jnp.concatenate(
        [jnp.zeros((rows, 2 * code.z)), logits[:, : code.k - 2 * code.z],
         jnp.full((rows, filler), -llr_max), logits[:, code.k - 2 * code.z :]],
        axis=1,
    )  # fmt: skip
    full = jnp.pad(full, ((0, 0), (0, graph.num_variables - full.shape[1])))
    channel = -full.T  # [V, B] LLRs log P(0) / P(1), the decoder's own convention
    if not early_stop:
        posterior = _belief_propagation(channel, graph, num_iter, llr_max, False)
        iterations = jnp.full((rows,), num_iter, jnp.int32)
    else:
        # A batch iterates until its slowest block converges: in chunks, most
        # chunks stop well before the slowest block of the whole batch would. The
        # padding is the all-zero codeword, sure (+llr_max): it converges at once.
        size = _early_stop_chunk(rows)
        chunks = -(-rows // size)
        padded = jnp.pad(channel, ((0, 0), (0, chunks * size - rows)), constant_values=llr_max)
        posterior, iterations = jax.lax.map(
            lambda part: _belief_propagation(part, graph, num_iter, llr_max, True),
            padded.reshape(-1, chunks, size).transpose(1, 0, 2),
        )
        posterior = posterior.transpose(1, 0, 2).reshape(-1, chunks * size)[:, :rows]
        iterations = iterations.reshape(-1)[:rows]
    decided = (posterior[: code.k] <= 0).astype(jnp.int32).T.reshape(*batch, code.k)
    if return_iterations:
        return decided, iterations.reshape(batch)
    return decided


def _early_stop_chunk(rows: int) -> int:
    """Blocks per early-stopping chunk: small on a CPU (measured fastest at 4 of
    300 blocks), the whole batch where parallel width is cheap."""
    return min(rows, EARLY_STOP_CHUNK if jax.default_backend() == "cpu" else rows)


def _belief_propagation(channel, graph: _Graph, num_iter, llr_max, early_stop):
    """The clipped posteriors ``[V, B]`` after BP on channel LLRs ``[V, B]`` (log P(0)/P(1)),
    and with ``early_stop`` the iterations ``[B]`` int32 each block ran.

    With ``early_stop``, a block freezes (messages and posteriors) after the first
    iteration whose hard decisions on every node close every check (zero
    syndrome); the loop ends when every block is frozen or after ``num_iter``.
    """
    check, variable = jnp.asarray(graph.check), jnp.asarray(graph.variable)

    def check_update(v2c):
        sign = jnp.where(v2c < 0, -1.0, 1.0)  # sign(0) counts as +1
        node_sign = jax.ops.segment_prod(sign, check, graph.num_checks)
        magnitude = _phi(jnp.abs(v2c))
        total = jax.ops.segment_sum(magnitude, check, graph.num_checks)
        c2v = sign * node_sign[check] * _phi(total[check] - magnitude)
        return jnp.clip(c2v, -llr_max, llr_max)

    def iteration(v2c):
        c2v = check_update(v2c)
        total = jax.ops.segment_sum(c2v, variable, graph.num_variables) + channel
        extrinsic = jnp.clip(total[variable] - c2v, -llr_max, llr_max)
        return extrinsic, jnp.clip(total, -llr_max, llr_max)

    start = (channel[variable], channel)
    if not early_stop:
        _, posterior = jax.lax.fori_loop(0, num_iter, lambda _, state: iteration(state[0]), start)
        return posterior

    def satisfied(posterior):
        hard = (posterior <= 0).astype(jnp.int32)  # the decisions decode returns
        ones = jax.ops.segment_sum(hard[variable], check, graph.num_checks)
        return jnp.all(ones % 2 == 0, axis=0)

    def step(state):
        i, v2c, posterior, done, ran = state
        new_v2c, new_posterior = iteration(v2c)
        v2c = jnp.where(done, v2c, new_v2c)
        posterior = jnp.where(done, posterior, new_posterior)
        ran = ran + (~done).astype(jnp.int32)
        return i + 1, v2c, posterior, done | satisfied(posterior), ran

    def unfinished(state):
        i, _, _, done, _ = state
        return (i < num_iter) & ~jnp.all(done)

    done = jnp.zeros(channel.shape[1], bool)
    ran = jnp.zeros(channel.shape[1], jnp.int32)
    _, _, posterior, _, ran = jax.lax.while_loop(unfinished, step, (0, *start, done, ran))
    return posterior, ran
