"""Fair timing of variants of one workload on a noisy machine."""

import statistics
import time

__all__ = ["median_ms"]


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
