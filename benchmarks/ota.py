"""Speed of an over-the-air SNR sweep: JAX twin, Sionna backend, NumPy reference, RNG floor.

The workload (the issue's): an ensemble of K = 16 devices classifies 10 000
test samples into 10 classes; their softmax outputs are aggregated over the
air at 26 SNR points (-20 … 30 dB) × 20 channel draws, over Rayleigh block
fading (one independent block per device and inference) with truncated
channel inversion, and the accuracy of the argmax is measured per point and
draw. The members' outputs are synthetic (softmax of random logits that lean
towards the true label), so the benchmark needs no trained models.

(a) ``jax_s``: one jitted function over all points × draws × samples, with the
    JAX twin (``ota.over_the_air_average``, ``backend="jax"``);
(b) ``sionna_s``: the same function with Sionna's channel (``backend="sionna"``);
(c) ``numpy_s``: a straightforward NumPy reference, a loop over SNR points and
    draws vectorised over samples (complex h, inversion, superposition, noise);
(d) ``floor_s``: drawing with ``jax.random`` exactly the random numbers (a)
    consumes, in the same loop structure, and nothing else.

It checks that the accuracies of (a), (b) and (c) agree within Monte-Carlo
error at every SNR point, and prints one JSON line with the four times (best
of ``--repeats`` runs after compilation) and ``speedup`` = c/a,
``floor_ratio`` = a/d, ``sionna_over_jax`` = b/a. Targets: speedup >= 3,
floor_ratio <= 1.5, sionna_over_jax <= 1.5.

Both JAX functions step through (SNR point, block of ``--draws-per-step``
draws) with ``lax.map``; the floor draws its numbers in the same steps and
shapes. The run uses JAX's default (partitionable) threefry; ``--fast-rng``
switches to the non-partitionable one, several times faster on one CPU host
but unfit for sharded sweeps. The JSON line records which ran.

Both backends draw only what truncated inversion needs
(:func:`airinfer.phy.channels.truncated_rayleigh_draws`): per device and block the
event ``|h|^2 >= threshold`` (one 32-bit word in the twin, one uniform from
Sionna's generator), per received real one noise draw (``jax.random``, or
Sionna's ``AWGN`` block). The NumPy reference draws the full complex gains.

Run: ``python -m airinfer.benchmarks.ota [--quick] [--fast-rng] [--skip-sionna]``.
"""

import argparse
import json
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from airinfer import ota

NUM_DEVICES, NUM_CLASSES = 16, 10
THRESHOLD = 0.1  # truncated inversion: devices with |h|^2 < 0.1 (about 10 %) stay silent
FULL = dict(num_samples=10_000, num_draws=20, snr_db=np.arange(-20.0, 30.1, 2.0))
QUICK = dict(num_samples=2_000, num_draws=8, snr_db=np.arange(-20.0, 30.1, 5.0))
# Accuracies of two implementations differ by their Monte-Carlo errors only; a
# point fails beyond this many standard errors of the difference (26 points:
# a false alarm at 4.5 sigma has probability ~1e-4).
AGREEMENT_SIGMAS = 4.5


def member_outputs(num_samples, seed=0):
    """Synthetic softmax outputs ``[N, K, C]`` and labels ``[N]``: random logits plus a
    per-member lean towards the true class, so members are ~45 % accurate alone."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, num_samples)
    logits = rng.normal(size=(num_samples, NUM_DEVICES, NUM_CLASSES))
    lean = rng.uniform(0.5, 1.5, size=(1, NUM_DEVICES, 1))
    logits += lean * np.eye(NUM_CLASSES)[labels][:, None, :]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return (probs / probs.sum(-1, keepdims=True)).astype(np.float32), labels.astype(np.int32)


def config(backend):
    return ota.AirCompConfig(
        channel="rayleigh", precoding="truncated", threshold=THRESHOLD, backend=backend
    )


NORMALIZATION = ota.Normalization.simplex(NUM_CLASSES)


def _step_key(key, point, draw_block):
    # fold_in(root, point), then the block of draws: a point's result does not
    # depend on how many points run or in which order.
    return jax.random.fold_in(jax.random.fold_in(key, point), draw_block)


def _steps(num_snr, num_draws, draws_per_step):
    if num_draws % draws_per_step:
        raise SystemExit(f"--draws-per-step {draws_per_step} must divide {num_draws} draws")
    blocks = num_draws // draws_per_step
    index = jnp.arange(num_snr * blocks)
    return index // blocks, index % blocks


def make_sweep(backend, num_snr, num_draws, draws_per_step):
    """The jitted sweep: accuracies ``[num_snr, num_draws]``.

    One ``lax.map`` step per SNR point and block of draws, over a ``[samples,
    draws_per_step]`` batch: the members' outputs are normalised once and enter
    as ``[N, 1, K, C]``, so each sample's values are read once per step and
    reused from cache by its draws; blocks of draws keep the step's random
    numbers in cache.
    """
    cfg = config(backend)
    points, draw_blocks = _steps(num_snr, num_draws, draws_per_step)

    @jax.jit
    def sweep(key, probs, labels, snr_db):
        # The members' outputs are the same at every point and draw: normalise once.
        normalized = ota.normalize(probs, NORMALIZATION)[:, None]  # [N, 1, K, C]

        def step(index):
            point, draw_block = index
            estimate = ota.over_the_air_average(
                _step_key(key, point, draw_block), normalized,
                jnp.full((1, draws_per_step), snr_db[point]),  # batch [N, draws_per_step]
                cfg, None,
            )  # fmt: skip
            correct = ota.decide(estimate.average) == labels[:, None]
            return jnp.mean(correct, axis=0, dtype=jnp.float32)  # [draws_per_step]

        return jax.lax.map(step, (points, draw_blocks)).reshape(num_snr, num_draws)

    return sweep


def make_floor(num_samples, num_snr, num_draws, draws_per_step, num_values=NUM_CLASSES):
    """Draw exactly what the JAX twin draws per step (the key derivation, one 32-bit
    word per device and block for the fading event, one normal per received real),
    reduced to a scalar so that nothing else is computed or stored."""
    reals = 2 * ota.num_channel_uses(num_values)
    points, draw_blocks = _steps(num_snr, num_draws, draws_per_step)
    batch = (num_samples, draws_per_step)

    @jax.jit
    def floor(key):
        def step(index):
            key_gain, key_noise = jax.random.split(_step_key(key, *index))
            # Flat, as the twin draws them (then reshapes, which is free).
            words = jax.random.bits(key_gain, (math.prod(batch) * NUM_DEVICES,), jnp.uint32)
            noise = jax.random.normal(key_noise, (math.prod(batch) * reals,), jnp.float32)
            return jnp.sum(noise) + jnp.sum((words >> 31).astype(jnp.float32))

        return jax.lax.map(step, (points, draw_blocks))

    return floor


def numpy_reference(probs, labels, snr_db, num_draws, seed=0):
    """The loop published over-the-air code runs: per SNR point and draw, complex
    Rayleigh gains, truncated inversion, superposition, complex noise, scaling, argmax."""
    rng = np.random.default_rng(seed)
    num_samples = probs.shape[0]
    n = math.ceil(NUM_CLASSES / 2)
    centred = (probs - NORMALIZATION.offset) * (math.sqrt(n) / NORMALIZATION.scale)
    x = centred[..., :n] + 1j * centred[..., n:]  # [N, K, n] unit-energy symbols
    amplitude = math.sqrt(THRESHOLD)  # sqrt(P threshold), P = 1
    accuracy = np.empty((len(snr_db), num_draws))
    for i, snr in enumerate(snr_db):
        no = 10 ** (-snr / 10)
        for d in range(num_draws):
            h = (rng.standard_normal((num_samples, NUM_DEVICES))
                 + 1j * rng.standard_normal((num_samples, NUM_DEVICES))) / math.sqrt(2)  # fmt: skip
            active = np.abs(h) ** 2 >= THRESHOLD
            b = np.where(active, amplitude / np.where(active, h, 1), 0)
            noise = math.sqrt(no / 2) * (rng.standard_normal((num_samples, n))
                                         + 1j * rng.standard_normal((num_samples, n)))  # fmt: skip
            y = np.einsum("sk,skn->sn", h * b, x) + noise
            count = active.sum(-1)
            u = y / (amplitude * np.maximum(count, 1))[:, None]
            estimate = NORMALIZATION.offset + np.concatenate([u.real, u.imag], -1) * (
                NORMALIZATION.scale / math.sqrt(n)
            )
            estimate = np.where((count > 0)[:, None], estimate, probs[:, 0])
            accuracy[i, d] = np.mean(estimate.argmax(-1) == labels)
    return accuracy


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def agreement(name_a, acc_a, name_b, acc_b):
    """Largest per-point gap in standard errors; raises if beyond :data:`AGREEMENT_SIGMAS`."""
    se = np.sqrt(acc_a.var(1, ddof=1) / acc_a.shape[1] + acc_b.var(1, ddof=1) / acc_b.shape[1])
    gap = np.abs(acc_a.mean(1) - acc_b.mean(1)) / np.maximum(se, 1e-6)
    if np.any(gap > AGREEMENT_SIGMAS):
        raise SystemExit(
            f"{name_a} and {name_b} disagree beyond {AGREEMENT_SIGMAS} standard errors: "
            f"{name_a}={acc_a.mean(1).round(4)}, {name_b}={acc_b.mean(1).round(4)}"
        )
    return float(gap.max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 000 samples, 11 points, 8 draws")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sionna", action="store_true", help="where TensorFlow is absent")
    parser.add_argument("--draws-per-step", type=int, default=4)
    parser.add_argument(
        "--fast-rng", action="store_true",
        help="non-partitionable threefry: several times faster on one CPU host, unfit for sharding",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # JAX's default threefry is partitionable (sharded sweeps need it); on one CPU
    # host the non-partitionable one draws several times faster. The JSON line
    # records which ran.
    jax.config.update("jax_threefry_partitionable", not args.fast_rng)
    workload = QUICK if args.quick else FULL
    num_samples, num_draws = workload["num_samples"], workload["num_draws"]
    snr_db = workload["snr_db"].astype(np.float32)
    probs_np, labels_np = member_outputs(num_samples)
    probs, labels, snr = jnp.asarray(probs_np), jnp.asarray(labels_np), jnp.asarray(snr_db)
    key = jax.random.key(0)

    results = {}
    steps = (len(snr_db), num_draws, args.draws_per_step)
    jax_sweep = make_sweep("jax", *steps)
    start = time.perf_counter()
    acc_jax = np.asarray(jax_sweep(key, probs, labels, snr))
    compile_jax = time.perf_counter() - start
    results["jax_s"] = best_time(lambda: jax_sweep(key, probs, labels, snr), args.repeats)

    floor = make_floor(num_samples, *steps)
    floor(key).block_until_ready()
    results["floor_s"] = best_time(lambda: floor(key), args.repeats)

    start = time.perf_counter()
    acc_numpy = numpy_reference(probs_np, labels_np, snr_db, num_draws)
    results["numpy_s"] = time.perf_counter() - start
    gaps = {"jax_vs_numpy_sigmas": agreement("jax", acc_jax, "numpy", acc_numpy)}

    if not args.skip_sionna:
        sionna_sweep = make_sweep("sionna", *steps)
        acc_sionna = np.asarray(sionna_sweep(key, probs, labels, snr))
        results["sionna_s"] = best_time(
            lambda: sionna_sweep(key, probs, labels, snr), max(1, args.repeats - 1)
        )
        gaps["sionna_vs_numpy_sigmas"] = agreement("sionna", acc_sionna, "numpy", acc_numpy)
        gaps["sionna_vs_jax_sigmas"] = agreement("sionna", acc_sionna, "jax", acc_jax)

    line = {
        "workload": {
            "num_devices": NUM_DEVICES,
            "num_classes": NUM_CLASSES,
            "num_samples": num_samples,
            "num_snr": len(snr_db),
            "num_draws": num_draws,
            "channel": "rayleigh",
            "precoding": "truncated",
            "threshold": THRESHOLD,
        },
        **{k: round(v, 4) for k, v in results.items()},
        "jax_compile_s": round(compile_jax, 2),
        "threefry_partitionable": not args.fast_rng,
        "draws_per_step": args.draws_per_step,
        "speedup": round(results["numpy_s"] / results["jax_s"], 2),
        "floor_ratio": round(results["jax_s"] / results["floor_s"], 3),
        **(
            {"sionna_over_jax": round(results["sionna_s"] / results["jax_s"], 2)}
            if "sionna_s" in results
            else {}
        ),
        **{k: round(v, 2) for k, v in gaps.items()},
        "accuracy_jax": [round(float(a), 4) for a in acc_jax.mean(1)],
        "device": jax.devices()[0].device_kind,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
