"""Early, explicit checks of configuration values (ValueError naming the field)."""

import math

import numpy as np


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name, value):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _as_float(name, value):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None


def check_positive(name, value):
    number = _as_float(name, value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


def check_nonnegative(name, value):
    number = _as_float(name, value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def check_probability(name, value, *, concrete_only=True):
    """``value`` in [0, 1]; arrays are checked entrywise when their values are known."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception:  # a tracer under jit: nothing to check
        if concrete_only:
            return
        raise
    if np.any(np.isnan(array)) or np.any((array < 0) | (array > 1)):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
