"""What the benchmarks share: the ``--variants`` option, fair timing and the result line."""

import os
import platform
import statistics
import time

import jax

__all__ = ["parse_args", "median_ms", "result_line", "where_it_ran"]

VARIANTS = ("bridge", "jax", "tf")
TARGETS = {"bridge_over_jax": "<= 1.5", "tf_over_bridge": ">= 1.0"}


def parse_args(parser, argv=None):
    """``parser.parse_args(argv)`` with a ``--variants`` option added last.

    Returns ``(args, variants)``: the variants to time, a list of ``"bridge"``,
    ``"jax"`` and ``"tf"`` (all three by default); an unknown one is a usage
    error (``parser.error``).
    """
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of bridge,jax,tf (jax alone needs no TensorFlow)",
    )
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    return args, variants


def median_ms(steps, num_steps, settle_s=0.005):
    """Median milliseconds per step of each ``steps[name](i)``, the variants taking turns.

    Each variant runs twice untimed (compilation, warm-up); then every round
    times one step of each, so that a machine's drift hits them alike. Two
    guards keep one variant's leftovers from slowing the next: the order
    rotates every round, and each timed step starts after ``settle_s`` of
    sleep, once the previous step's worker threads have gone idle
    (TensorFlow's spin-waiting pool slowed whichever JAX step came right after
    it by 25-40 %).
    """
    for step in steps.values():
        step(0)
        step(1)
    names = list(steps)
    times = {name: [] for name in names}
    for i in range(num_steps):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(settle_s)
            start = time.perf_counter()
            steps[name](i + 2)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def result_line(benchmark, workload, ms, *, digits=2, extra=None, targets=None):
    """The dict a benchmark prints as its one JSON line.

    Parameters:
        benchmark: the benchmark's name.
        workload: one line describing what a step does.
        ms: ``{variant: median milliseconds}`` (:func:`median_ms`) of the
            variants ``"bridge"``, ``"jax"`` and ``"tf"`` timed.
        digits: decimals the medians are rounded to.
        extra: keys that go after ``targets`` (such as the number of steps).
        targets: the benchmark's own targets (default: those of the
            bridge/jax/tf ratios).

    Returns:
        ``benchmark``, ``workload``, ``<variant>_ms`` of each variant, the
        ratios ``bridge_over_jax`` and ``tf_over_bridge`` where both of their
        variants ran (3 decimals), ``targets``, ``extra``, then where it ran:
        ``jax_backend``, ``devices``, ``cpu_count`` and ``machine``.
    """
    result = {
        "benchmark": benchmark,
        "workload": workload,
        **{f"{name}_ms": round(value, digits) for name, value in ms.items()},
    }
    if {"bridge", "jax"} <= ms.keys():
        result["bridge_over_jax"] = round(ms["bridge"] / ms["jax"], 3)
    if {"bridge", "tf"} <= ms.keys():
        result["tf_over_bridge"] = round(ms["tf"] / ms["bridge"], 3)
    return result | {
        "targets": dict(TARGETS if targets is None else targets),
        **(extra or {}),
        **where_it_ran(),
    }


def where_it_ran() -> dict:
    """``jax_backend``, ``devices``, ``cpu_count`` and ``machine``: the end of a result line."""
    return {
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
