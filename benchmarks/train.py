"""Training K ensemble members: a loop of jitted steps vs one vmapped step vs the automatic choice.

``python -m airinfer.benchmarks.train [--steps N] [--members K] [--batch-size B] [--repeats R]``

For a CNN (width 0.25) and an MLP (width 1.0) on 28×28×1 images (and, with
``--models mobilenet_v2``, MobileNetV2 width 0.5 on 32×32×3), trains K
members for N steps each through :func:`airinfer.models.train.train_group` with
``formulation`` ``"loop"``, ``"vmap"`` and ``"auto"``. Each formulation is run
once untimed first (compilation and warm-up), then R timed rounds, each
running the three in rotated order; the best run of each counts. Prints one JSON line per
model kind::

    {"model": "cnn", "backend": "cpu", "members": 8, "steps": 10, "batch_size": 128,
     "loop_samples_per_s": ..., "vmap_samples_per_s": ..., "auto_samples_per_s": ...,
     "speedup": auto / loop, "chosen": "loop"}

The images are random: speed does not depend on their content.
"""

import argparse
import json
import time

import jax
import numpy as np

from airinfer.models.ensemble import init_group
from airinfer.models.inference import choose_formulation
from airinfer.models.recipe import TrainConfig
from airinfer.models.train import train_group
from airinfer.models.zoo import ModelConfig

# kind -> (width, image shape); MobileNetV2 only on request (slow to compile on a CPU)
MODELS = {"cnn": (0.25, (28, 28, 1)), "mlp": (1.0, (28, 28, 1)), "mobilenet_v2": (0.5, (32, 32, 3))}
DEFAULT_MODELS = "cnn,mlp"


def benchmark_kind(
    kind: str, width: float, members: int, steps: int, batch_size: int, repeats: int
) -> dict:
    """Samples per second of the three formulations for one model kind."""
    rng = np.random.default_rng(0)
    rows = steps * batch_size
    image_shape = MODELS[kind][1]
    images = rng.standard_normal((rows, *image_shape), dtype=np.float32)
    labels = rng.integers(0, 10, rows).astype(np.int32)
    index_sets = np.broadcast_to(np.arange(rows, dtype=np.int32), (members, rows))
    config = ModelConfig(kind, image_shape, 10, width)
    group = init_group(config, jax.random.split(jax.random.key(0), members))
    train_config = TrainConfig(epochs=1, batch_size=batch_size)

    def run(formulation: str) -> float:
        start = time.perf_counter()
        trained, _, _ = train_group(
            group,
            images,
            labels,
            index_sets,
            train_config,
            jax.random.key(1),
            formulation=formulation,
        )
        jax.block_until_ready(trained.state)
        return time.perf_counter() - start

    formulations = ("loop", "vmap", "auto")
    for formulation in formulations:
        run(formulation)  # compile and warm up
    # Rounds in rotated order, best of each: other load on a shared machine
    # slows whichever run it hits, not one formulation systematically.
    best = dict.fromkeys(formulations, float("inf"))
    for round_ in range(repeats):
        for i in range(len(formulations)):
            formulation = formulations[(round_ + i) % len(formulations)]
            best[formulation] = min(best[formulation], run(formulation))
    samples = members * steps * batch_size
    rates = {f: samples / best[f] for f in formulations}
    return {
        "model": kind,
        "width": width,
        "backend": jax.default_backend(),
        "members": members,
        "steps": steps,
        "batch_size": batch_size,
        "loop_samples_per_s": round(rates["loop"], 1),
        "vmap_samples_per_s": round(rates["vmap"], 1),
        "auto_samples_per_s": round(rates["auto"], 1),
        "speedup": round(rates["auto"] / rates["loop"], 3),
        "chosen": choose_formulation(kind, members),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m airinfer.benchmarks.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="training steps per member (default 10)"
    )
    parser.add_argument("--members", type=int, default=8, help="ensemble size K (default 8)")
    parser.add_argument(
        "--batch-size", type=int, default=128, help="samples per member per step (default 128)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=10,
        help="timed runs per formulation; best counts (default 10)",
    )
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help=f"comma-separated kinds of {', '.join(MODELS)} (default {DEFAULT_MODELS})",
    )
    args = parser.parse_args(argv)
    for kind in args.models.split(","):
        if kind not in MODELS:
            parser.error(f"--models: unknown {kind!r}; allowed: {', '.join(MODELS)}")
        result = benchmark_kind(
            kind, MODELS[kind][0], args.members, args.steps, args.batch_size, args.repeats
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
