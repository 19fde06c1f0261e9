"""Confidence intervals of measured proportions (error rates, accuracies)."""

import math

__all__ = ["Z95", "wilson_interval"]

# z of a two-sided 95 % normal interval.
Z95 = 1.959963984540054


def wilson_interval(errors, trials, z=Z95):
    """Wilson score interval ``(low, high)`` of a binomial proportion ``errors / trials``.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at
    zero errors (then ``high ≈ z² / trials``).
    """
    if trials <= 0:
        return 0.0, 1.0
    p = errors / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 or `trials` errors the bound is exactly 0 or 1; rounding would leave ~1e-18.
    low = 0.0 if errors == 0 else max(0.0, centre - half)
    high = 1.0 if errors == trials else min(1.0, centre + half)
    return low, high
