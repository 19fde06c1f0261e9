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

Run: ``python -m airinfer.benchmarks.sweep [--devices 1,2,4] [--steps 5]``.
"""

import argparse
import json
import os

FAKE_DEVICES_FLAG = "--xla_force_host_platform_device_count"
NUM_TEST, NUM_DEVICES, NUM_CLASSES, DRAWS = 359, 16, 10, 5
SNR_DB = tuple(float(s) for s in range(-20, 31, 5))  # the quick sweep's points
TARGETS = {"agreement": "== 1.0"}


def _fake_cpu_devices(count: int) -> None:
    """Ask for ``count`` CPU devices, before JAX starts its backends (a user's flag wins)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FAKE_DEVICES_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAKE_DEVICES_FLAG}={count}".strip()


def _synthetic_probs(seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, NUM_TEST).astype(np.int32)
    logits = rng.normal(size=(NUM_TEST, NUM_DEVICES, NUM_CLASSES)).astype(np.float32)
    logits[np.arange(NUM_TEST), :, labels] += 1.6
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return (probs / probs.sum(-1, keepdims=True)).astype(np.float32), labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--devices", default="1,2,4", help="comma-separated device counts")
    parser.add_argument("--steps", type=int, default=5, help="timed curves per device count")
    args = parser.parse_args(argv)
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
    for channel in ("awgn", "rayleigh"):
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


if __name__ == "__main__":
    main()
