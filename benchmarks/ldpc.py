"""Decoding 5G LDPC codewords: the JAX twin against Sionna's decoder, same LLRs.

The workload is a batch of ``--blocks`` codewords of the links' code (k = 512,
n = 1024, QPSK, AWGN), demapped once, then decoded with 20 iterations of
belief propagation by :func:`airinfer.phy.ldpc.decode` (jitted) and by
Sionna's ``LDPC5GDecoder`` (graph mode), and by the JAX decoder with early
stopping (``early_stop=True``: a block freezes at its first zero syndrome, at
most 20 iterations), each at Es/N0 of 1, 2 and 3 dB, the decoders taking turns
(:func:`~airinfer.benchmarks.timing.median_ms`). Prints one JSON line per SNR
with the information bits decoded per second of each (``jax_bits_per_s``,
``sionna_bits_per_s``, ``jax_early_stop_bits_per_s``), the ratio ``speedup``
of JAX over Sionna (target >= 2 on a CPU), ``early_stop_speedup`` (early
stopping over the full 20 iterations), the mean iterations early stopping ran,
and ``agreement`` / ``early_stop_agreement``, the share of blocks the JAX
decoder without / with early stopping decodes to Sionna's bits (target >= 0.999).
Sionna's decoder also runs once eagerly: ``eager_agreement`` is the JAX
decoder's agreement with it, ``sionna_graph_eager_agreement`` Sionna's with
itself across the two modes. The modes round differently (in graph mode
TensorFlow's optimizer rewrites φ's ``log(exp(x) + 1)`` and ``exp(x) - 1`` to
``log1p`` and ``expm1``), and the rare blocks that converge to no codeword
decode differently in the two; the twin computes φ as written, as eager
Sionna does.

Run: ``python -m airinfer.benchmarks.ldpc [--blocks 500] [--steps 5]``.
"""

import argparse
import json

import jax
import numpy as np

from airinfer.benchmarks.timing import median_ms, result_line
from airinfer.phy import ldpc, qam
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

K, N, BITS_PER_SYMBOL, ITERATIONS = 512, 1024, 2, 20
TARGETS = {"speedup": ">= 2", "agreement": ">= 0.999", "early_stop_agreement": ">= 0.999"}


def _llrs(code, blocks, es_no_db, seed=0):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (blocks, code.k))
    symbols = np.asarray(qam.map_bits(ldpc.encode(bits, code), BITS_PER_SYMBOL))
    no = 10 ** (-es_no_db / 10)
    noise = rng.standard_normal((2, *symbols.shape)) * np.sqrt(no / 2)
    received = symbols + noise[0] + 1j * noise[1]
    return np.asarray(qam.demap(received, no, BITS_PER_SYMBOL), np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--blocks", type=int, default=500)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    code = ldpc.ldpc_code(K, N)
    ours = jax.jit(lambda llrs: ldpc.decode(llrs, code, num_iter=ITERATIONS))
    early = jax.jit(
        lambda llrs: ldpc.decode(
            llrs, code, num_iter=ITERATIONS, early_stop=True, return_iterations=True
        )
    )
    fec = sionna_phy().fec.ldpc
    decoder = fec.LDPC5GDecoder(fec.LDPC5GEncoder(K, N), hard_out=True, num_iter=ITERATIONS)
    theirs = tensorflow().function(decoder)
    for es_no_db in (1.0, 2.0, 3.0):
        llrs = _llrs(code, args.blocks, es_no_db)
        constant = tensorflow().constant(llrs)
        ms = median_ms(
            {"jax": lambda i, llrs=llrs: ours(llrs).block_until_ready(),
             "sionna": lambda i, constant=constant: theirs(constant).numpy(),
             "jax_early_stop": lambda i, llrs=llrs: early(llrs)[0].block_until_ready()},
            args.steps,
        )  # fmt: skip
        reference = theirs(constant).numpy().astype(np.int32)
        decided_ours = np.asarray(ours(llrs))
        same = np.all(decided_ours == reference, axis=1)
        eager = decoder(constant).numpy().astype(np.int32)  # Sionna without tf.function
        same_eager = np.all(decided_ours == eager, axis=1)
        sionna_same = np.all(reference == eager, axis=1)
        decided, iterations = early(llrs)
        same_early = np.all(np.asarray(decided) == reference, axis=1)
        bits = args.blocks * K
        extra = {
            "es_no_db": es_no_db,
            "jax_bits_per_s": round(bits / ms["jax"] * 1e3),
            "sionna_bits_per_s": round(bits / ms["sionna"] * 1e3),
            "jax_early_stop_bits_per_s": round(bits / ms["jax_early_stop"] * 1e3),
            "speedup": round(ms["sionna"] / ms["jax"], 2),
            "early_stop_speedup": round(ms["jax"] / ms["jax_early_stop"], 2),
            "early_stop_mean_iterations": round(float(np.mean(iterations)), 2),
            "agreement": round(float(same.mean()), 4),
            "early_stop_agreement": round(float(same_early.mean()), 4),
            "eager_agreement": round(float(same_eager.mean()), 4),
            "sionna_graph_eager_agreement": round(float(sionna_same.mean()), 4),
            "blocks": args.blocks,
            "steps": args.steps,
        }
        workload = f"decode {args.blocks} QPSK blocks, k={K} n={N}, {ITERATIONS} iterations"
        print(json.dumps(result_line("ldpc", workload, ms, extra=extra, targets=TARGETS)))


if __name__ == "__main__":
    main()
