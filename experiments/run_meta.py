"""What a results folder's ``meta.json`` records about the run that filled it.

Versions of the numerical stack (looked up, never imported), the JAX backend and
its devices (and how many of them shared the sweep, over how many processes),
the seed, the git revision of the checkout the package runs from, the
timings, with the first point (JIT compilation included) apart, and the host.
"""

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import jax

__all__ = ["META_FILE", "git_revision", "run_meta"]

META_FILE = "meta.json"

# Distributions whose versions meta.json records (looked up, never imported).
_VERSIONED = ("jax", "jaxlib", "flax", "tensorflow", "sionna-no-rt", "numpy")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_revision(source: Path) -> dict | None:
    """Commit and dirty flag of the checkout holding ``source``, or None if there is none."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(source), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # Like `git describe --dirty`: changes to tracked files count, untracked files do not.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def _utc(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def run_meta(
    seed: int,
    started: float,
    finished: float,
    first_point_s: float | None,
    computed: int,
    resumed: int,
    sharded_devices: int,
) -> dict:
    """The ``meta.json`` of a run, as a JSON-ready dict.

    Parameters:
        seed: the config's seed.
        started, finished: the run's wall-clock bounds (``time.time()``).
        first_point_s: seconds of the first point computed in this process
            (JIT compilation included), or None if none was.
        computed, resumed: points computed by this run, and found in the folder.
        sharded_devices: how many JAX devices shared the sweep's Monte-Carlo loops.
    """
    return {
        "versions": {
            "python": platform.python_version(),
            **{name: _version(name) for name in _VERSIONED},
        },
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(device) for device in jax.devices()],
        # how many of them shared the sweeps' JAX Monte-Carlo loops, over how many processes
        "sharded_devices": sharded_devices,
        "process_count": jax.process_count(),
        "seed": seed,
        "git": git_revision(Path(__file__).resolve().parent),
        "started_utc": _utc(started),
        "finished_utc": _utc(finished),
        "wall_time_s": round(finished - started, 3),
        # The first point computed in this process includes JIT compilation.
        "first_point_s": None if first_point_s is None else round(first_point_s, 3),
        "points_computed": computed,
        "points_resumed": resumed,
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
        },
    }
