"""Training a CNN on the CPU under the C library's malloc, jemalloc and tcmalloc.

``python -m airinfer.benchmarks.allocator [--steps N] [--batch-size B] [--repeats R]``

XLA's CPU convolutions take scratch buffers of tens of megabytes at every
training step. glibc's malloc serves requests above its mmap threshold (at
most 32 MB) with fresh pages and unmaps them when they are freed, so each step
pays for tens of thousands of page faults; on a 2-core VM a quarter of the CPU
time went to the kernel. jemalloc (with its purging turned off) and tcmalloc
keep freed memory for the next step.

An allocator is chosen when a process starts (``LD_PRELOAD``), so each runs
in a child process: one width-1/2 CNN of the ``converged`` recipe (random
crops and flips) on random 28×28×1 images, one untimed pass (compilation),
then R timed passes of N steps, the best counting. Allocators not installed
(Debian: ``libjemalloc2``, ``libtcmalloc-minimal4``) are reported as null. Prints
one JSON line::

    {"steps": 100, "batch_size": 128, "glibc_samples_per_s": ...,
     "glibc_faults_per_step": ..., "jemalloc_samples_per_s": ..., ...,
     "jemalloc_speedup": jemalloc / glibc, "tcmalloc_speedup": ...,
     "jax_backend": ..., "devices": [...], "cpu_count": ..., "machine": ...}
"""

import argparse
import ctypes.util
import json
import os
import resource
import subprocess
import sys
import time

from airinfer.benchmarks.timing import where_it_ran

__all__ = ["ALLOCATORS", "preload_environment"]

#: allocator -> (library name for ctypes.util.find_library, settings in its environment)
ALLOCATORS = {
    "glibc": (None, {}),
    # never hand freed pages back to the kernel: the next step takes them again
    "jemalloc": ("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}),
    "tcmalloc": ("tcmalloc_minimal", {}),
}
#: the variables that choose and tune an allocator
SETTINGS = ("LD_PRELOAD", "MALLOC_CONF")


def preload_environment(allocator: str) -> dict[str, str] | None:
    """The environment variables that make a new process use ``allocator``.

    Returns None when its library is not installed; ``{}`` for ``glibc``.
    """
    library, settings = ALLOCATORS[allocator]
    if library is None:
        return {}
    found = ctypes.util.find_library(library)  # a soname, which LD_PRELOAD looks up
    return None if found is None else {"LD_PRELOAD": found, **settings}


def _child_environment(allocator: str, environ) -> dict[str, str] | None:
    """``environ`` with ``allocator``'s settings in place of those it was started with.

    None when the allocator is not installed.
    """
    settings = preload_environment(allocator)
    if settings is None:
        return None
    return {k: v for k, v in environ.items() if k not in SETTINGS} | settings


def _child(steps: int, batch_size: int, repeats: int) -> dict:
    """Time the training in this process: samples per second and page faults per step."""
    import jax
    import numpy as np

    from airinfer.models.ensemble import init_group
    from airinfer.models.recipe import TrainConfig
    from airinfer.models.train import train_group
    from airinfer.models.zoo import ModelConfig

    rng = np.random.default_rng(0)
    rows = steps * batch_size
    images = rng.standard_normal((rows, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, rows).astype(np.int32)
    group = init_group(ModelConfig("cnn", (28, 28, 1), 10, 0.5), [jax.random.key(0)])
    config = TrainConfig(epochs=1, batch_size=batch_size, shift=2, flip=True)

    def run() -> tuple[float, int]:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        trained, _, _ = train_group(
            group, images, labels, np.arange(rows)[None], config, jax.random.key(1)
        )
        jax.block_until_ready(trained.state)
        seconds = time.perf_counter() - start
        return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    run()  # compilation and warm-up
    seconds, faults = min(run() for _ in range(repeats))
    return {"samples_per_s": rows / seconds, "faults_per_step": faults / steps}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m airinfer.benchmarks.allocator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=int, default=100, help="steps per pass (default 100)")
    parser.add_argument(
        "--batch-size", type=int, default=128, help="samples per step (default 128)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes; the best counts (default 3)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.steps, args.batch_size, args.repeats)), flush=True)
        return
    result = {"steps": args.steps, "batch_size": args.batch_size}
    for allocator in ALLOCATORS:
        environment = _child_environment(allocator, os.environ)
        measured = {"samples_per_s": None, "faults_per_step": None}
        if environment is not None:
            done = subprocess.run(
                [sys.executable, "-m", __spec__.name, "--child", *(argv or sys.argv[1:])],
                env=environment, capture_output=True, text=True, check=True,
            )  # fmt: skip
            measured = json.loads(done.stdout.strip().splitlines()[-1])
        for name, value in measured.items():
            result[f"{allocator}_{name}"] = None if value is None else round(value, 1)
    for allocator in ("jemalloc", "tcmalloc"):
        rate = result[f"{allocator}_samples_per_s"]
        result[f"{allocator}_speedup"] = rate and round(rate / result["glibc_samples_per_s"], 3)
    print(json.dumps(result | where_it_ran()), flush=True)


if __name__ == "__main__":
    main()
