"""Early, explicit checks of configuration values (ValueError naming the field)."""

import dataclasses
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


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_bool_field(config, name):
    """Refuse a non-bool in the frozen dataclass field ``name``; store a NumPy bool as ``bool``."""
    value = getattr(config, name)
    check_bool(name, value)
    object.__setattr__(config, name, bool(value))


def check_k_factor(channel, k_factor):
    """A K-factor only on Rician fading, and a positive one there (K = 0 is Rayleigh)."""
    if channel == "rician" and not k_factor > 0:
        raise ValueError(
            f"k_factor must be > 0 on channel='rician' (k_factor=0 is Rayleigh fading: "
            f"use channel='rayleigh'), got {k_factor!r}"
        )
    if channel != "rician" and k_factor != 0:
        raise ValueError(
            f"k_factor={k_factor!r} would have no effect: it only applies to channel='rician', "
            f"not to {channel!r}"
        )


def refuse_changed(config, names, reason):
    """Refuse the dataclass fields ``names`` of ``config`` set away from their defaults.

    ``reason`` completes "... would have no effect: ", e.g. "it only applies to X".
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    changed = [name for name in names if getattr(config, name) != defaults[name]]
    if changed:
        settings = ", ".join(f"{name}={getattr(config, name)!r}" for name in changed)
        kept = ", ".join(f"{name}={defaults[name]!r}" for name in changed)
        raise ValueError(f"{settings} would have no effect: {reason} (leave it at {kept})")
