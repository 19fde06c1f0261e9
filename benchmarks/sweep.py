"""One ota_snr curve's Monte-Carlo loop on 1, 2 and 4 devices: speed and agreement.

The workload is a curve of the quick ``ota_snr`` sweep on the JAX twins: K = 16
devices send their softmax outputs over the air (``ota_belief``, truncated
channel inversion, one block) for the 359 test images of the digits set, 5
channel draws each, at the quick sweep's 11 Es/N0 points, through
:func:`airinfer.experiments.aggregation.ota_accuracy_curve`, which shards the
11 x 5 draws over ``devices`` devices (:mod:`airinfer.experiments.sharding`).
The members' outputs are synthetic (fixed random softmax vectors): the loop
costs the same whatever they hold, and no training runs. The device counts
take turns (:func:`~airinfer.benchmarks.timing.median_ms`).

Prints one JSON line per channel (``awgn``, ``rayleigh``) with each device
count's median milliseconds per curve (``devices_N_ms``) and SNR points per
second (``points_per_s``), and ``agreement``: the share of points whose
accuracy on N devices equals the one on one device, bit for bit (target 1.0).

On a CPU the devices are fake (``--xla_force_host_platform_device_count``,
which this benchmark sets before JAX starts unless ``XLA_FLAGS`` already
names a count): they share the same cores, so only the agreement is
meaningful there, and the line says so (``timing_meaningful: false``). On a
machine with several accelerators the times compare the device counts.

The backend half times points of the full sweeps with ``backend="sionna"``
(Sionna's channels and LDPC code through the TensorFlow bridge) and
``backend="jax"`` (the twins, sharded where the experiment shards), each
after one untimed call that compiles it, ``--backend-steps`` timed calls, median:

* ``ota_tdl``: one point of the full ``ota_snr`` (its default config) on TDL-A
  at K = 16, ``ota_belief`` at 0 dB, the over-the-air block repeated to the
  orthogonal scheme's channel uses as in the sweep: 10,000 test images x 10
  draws (synthetic softmax outputs, as above). ``ota_tdl_speedup`` =
  Sionna / JAX, target >= 10.
* ``strategies``: one point of the full ``strategies_snr`` (the README's run,
  ``num_test=500``) on AWGN at 4 dB for ``cloud_digital``,
  ``split_digital_b8`` (LDPC-coded digital links) and ``edge_ensemble`` (over
  the air), through :func:`airinfer.experiments.strategy_batches.evaluate_on_devices`
  with the trained models of the model cache (trained first if absent: the
  converged server takes about an hour on two CPU cores).
  ``strategies_speedup`` = the sum of the Sionna times over the sum of the
  JAX ones, target >= 2; each strategy's times are in the line too. On the
  JAX backend the strategies' LDPC decoders stop each codeword at its first
  zero syndrome (:func:`airinfer.phy.link_adaptation.on_backend`), Sionna's
  run all 20 iterations.

The two backends draw with different generators, so their accuracies differ
by Monte-Carlo noise only; the lines carry both. On a CPU the JAX points run
on one device (fake devices would share its cores), on accelerators on all.

Run: ``python -m airinfer.benchmarks.sweep [--devices 1,2,4] [--steps 5]
[--only devices|ota_tdl|strategies] [--backend-steps 2]``.
"""

import argparse
import json
import os
import statistics
import time

FAKE_DEVICES_FLAG = "--xla_force_host_platform_device_count"
NUM_TEST, NUM_DEVICES, NUM_CLASSES, DRAWS = 359, 16, 10, 5
SNR_DB = tuple(float(s) for s in range(-20, 31, 5))  # the quick sweep's points
TARGETS = {"agreement": "== 1.0"}
OTA_TEST, OTA_DRAWS, OTA_K, OTA_SNR_DB = 10_000, 10, 16, 0.0  # the full ota_snr's sizes
STRATEGIES = ("cloud_digital", "split_digital_b8", "edge_ensemble")
STRATEGIES_TEST, STRATEGIES_SNR_DB = 500, 4.0  # the README's full strategies_snr run
PARTS = ("devices", "ota_tdl", "strategies")
BACKEND_TARGETS = {"ota_tdl_speedup": ">= 10", "strategies_speedup": ">= 2"}


def _fake_cpu_devices(count: int) -> None:
    """Ask for ``count`` CPU devices, before JAX starts its backends (a user's flag wins)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FAKE_DEVICES_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAKE_DEVICES_FLAG}={count}".strip()


def _synthetic_probs(seed=0, num_test=NUM_TEST, num_devices=NUM_DEVICES):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, num_test).astype(np.int32)
    logits = rng.normal(size=(num_test, num_devices, NUM_CLASSES)).astype(np.float32)
    logits[np.arange(num_test), :, labels] += 1.6
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return (probs / probs.sum(-1, keepdims=True)).astype(np.float32), labels


def _median_s(step, steps):
    """``(first result, median seconds)`` of ``steps`` timed calls after one untimed call.

    One warm-up, not :func:`~airinfer.benchmarks.timing.median_ms`'s two: a Sionna
    point of the full sweeps takes tens of seconds, and the first call compiles both.
    """
    result = step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def _real_devices():
    """All devices on accelerators; one on a CPU, whose fake devices share its cores
    (a run of the experiment sees one CPU device)."""
    import jax

    return 1 if jax.default_backend() == "cpu" else None


def _ota_tdl(steps):
    """One TDL-A point of the full ota_snr at K = 16 on both backends: the result line."""
    import dataclasses

    import jax
    import numpy as np

    from airinfer.benchmarks.timing import result_line
    from airinfer.experiments import aggregation, ota_snr

    config = ota_snr.OtaSnrConfig()
    probs, labels = _synthetic_probs(1, OTA_TEST, OTA_K)
    _, repetitions = ota_snr.channel_costs(config, OTA_K, NUM_CLASSES)
    snr = np.asarray([OTA_SNR_DB], np.float32)
    seconds, accuracy = {}, {}
    for backend in ("sionna", "jax"):
        air = ota_snr.air_config(dataclasses.replace(config, backend=backend), "tdl-a", repetitions)

        def point(air=air):
            return aggregation.ota_accuracy_curve(
                jax.random.key(0), probs, labels, snr, scheme="ota_belief", config=air,
                draws=OTA_DRAWS, devices=_real_devices(),
            )  # fmt: skip

        result, seconds[backend] = _median_s(point, steps)
        accuracy[backend] = round(float(result[0]), 4)
    workload = (
        f"one point of the full ota_snr: tdl-a, ota_belief, K={OTA_K}, {repetitions} repetitions, "
        f"{OTA_SNR_DB:g} dB, {OTA_TEST} images x {OTA_DRAWS} draws (synthetic outputs)"
    )
    ms = {backend: 1e3 * value for backend, value in seconds.items()}
    extra = {
        "ota_tdl_speedup": round(seconds["sionna"] / seconds["jax"], 2),
        "accuracy": accuracy,
        "steps": steps,
    }
    targets = {"ota_tdl_speedup": BACKEND_TARGETS["ota_tdl_speedup"]}
    return result_line("sweep_ota_tdl", workload, ms, extra=extra, targets=targets)


def _strategies(steps):
    """One AWGN point of the full strategies_snr, a few strategies, both backends."""
    import jax
    import jax.numpy as jnp

    from airinfer.benchmarks.timing import result_line
    from airinfer.experiments import strategies_snr, strategy_batches
    from airinfer.strategies.base import Link

    config = strategies_snr.StrategiesSnrConfig(
        strategies=STRATEGIES, num_test=STRATEGIES_TEST, channels=("awgn",),
        devices=_real_devices(),
    )  # fmt: skip
    _, _, _, images, labels = strategies_snr.setup(config)
    seconds, accuracy = {}, {}
    for name in STRATEGIES:
        built = strategies_snr.strategy(config, name, "awgn")
        for backend in ("sionna", "jax"):
            link = Link(snr_db=jnp.float32(STRATEGIES_SNR_DB), channel="awgn", backend=backend)

            def point(built=built, link=link):
                return strategy_batches.evaluate_on_devices(
                    built, jax.random.key(0), images, labels, link, config
                )

            (correct, _), seconds[f"{name}_{backend}"] = _median_s(point, steps)
            accuracy[f"{name}_{backend}"] = round(correct / len(labels), 4)
    total = {b: sum(seconds[f"{n}_{b}"] for n in STRATEGIES) for b in ("sionna", "jax")}
    workload = (
        f"one point of the full strategies_snr: awgn, {STRATEGIES_SNR_DB:g} dB, "
        f"{len(labels)} test images, {', '.join(STRATEGIES)} (summed); "
        "JAX LDPC with early stopping"
    )
    ms = {backend: 1e3 * value for backend, value in total.items()}
    extra = {
        "strategies_speedup": round(total["sionna"] / total["jax"], 2),
        "per_strategy_ms": {name: round(1e3 * value, 1) for name, value in seconds.items()},
        "accuracy": accuracy,
        "steps": steps,
    }
    targets = {"strategies_speedup": BACKEND_TARGETS["strategies_speedup"]}
    return result_line("sweep_strategies", workload, ms, extra=extra, targets=targets)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--devices", default="1,2,4", help="comma-separated device counts")
    parser.add_argument("--steps", type=int, default=5, help="timed curves per device count")
    parser.add_argument(
        "--only", choices=PARTS, help="one part of the benchmark (default: all three)"
    )
    parser.add_argument(
        "--backend-steps", type=int, default=2, help="timed points per backend (after one untimed)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.backend_steps < 1:
        parser.error(f"--steps, --backend-steps: {args.steps}, {args.backend_steps} must be >= 1")
    try:
        counts = [int(text) for text in args.devices.split(",")]
    except ValueError:
        parser.error(f"--devices: {args.devices!r} is not a comma-separated list of integers")
    if not counts or min(counts) < 1:
        parser.error(f"--devices: {args.devices!r} has a count below 1")
    _fake_cpu_devices(max(counts))

    # JAX only now, once XLA_FLAGS holds the device count
    import jax
    import numpy as np

    from airinfer.benchmarks.timing import median_ms, result_line
    from airinfer.experiments import aggregation, sharding
    from airinfer.ota.aircomp import AirCompConfig

    for count in counts:
        sharding.check_devices(count)
    probs, labels = _synthetic_probs()
    snr = np.asarray(SNR_DB, np.float32)
    key = jax.random.key(0)
    timing_meaningful = jax.default_backend() != "cpu"
    for channel in ("awgn", "rayleigh") if args.only in (None, "devices") else ():
        config = AirCompConfig(channel=channel, local_device=True, backend="jax")

        def curve(count, config=config):
            return aggregation.ota_accuracy_curve(
                key, probs, labels, snr, scheme="ota_belief", config=config, draws=DRAWS,
                devices=count,
            )  # fmt: skip

        accuracies = {count: curve(count) for count in counts}
        reference = accuracies[counts[0]]
        agreement = min(
            float(np.mean(accuracies[count] == reference)) for count in counts
        )  # the worst device count
        ms = median_ms(
            {f"devices_{count}": lambda i, count=count: curve(count) for count in counts},
            args.steps,
        )
        workload = (
            f"ota_snr curve on the JAX twins: {channel}, ota_belief, K={NUM_DEVICES}, "
            f"{NUM_TEST} images x {DRAWS} draws x {len(SNR_DB)} SNR points"
        )
        extra = {
            "points_per_s": {
                str(count): round(len(SNR_DB) / (ms[f"devices_{count}"] / 1e3), 2)
                for count in counts
            },
            "agreement": agreement,
            "timing_meaningful": timing_meaningful,
            "note": (
                "fake CPU devices share the same cores: only the agreement is meaningful"
                if not timing_meaningful
                else "devices are separate accelerators"
            ),
            "steps": args.steps,
        }
        print(json.dumps(result_line("sweep", workload, ms, extra=extra, targets=TARGETS)))
    if args.only in (None, "ota_tdl"):
        print(json.dumps(_ota_tdl(args.backend_steps)), flush=True)
    if args.only in (None, "strategies"):
        print(json.dumps(_strategies(args.backend_steps)), flush=True)


if __name__ == "__main__":
    main()
