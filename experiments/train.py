"""``airinfer train``: train a diverse ensemble and write what post-hoc studies need.

::

    airinfer train --dataset D --model M --width W --members K --diversity X \\
                   --epochs E [--seed S] --out DIR

writes into ``DIR``:

* ``checkpoint/``: the members (orbax, with a JSON of their architectures);
* ``metrics.json``: on the test split, ``member_accuracy`` (list of K),
  ``mean_member_accuracy``, ``ensemble_accuracy`` (argmax of the averaged
  softmax outputs), ``majority_vote_accuracy``, all fractions in [0, 1];
  ``params_per_member`` and ``flops_per_member`` (lists of K: one inference
  of one image, XLA's count), ``train_seconds``, ``formulations``,
  ``val_member_accuracy`` (on the validation split; empty when loaded from
  the cache), ``from_cache``;
* ``test_logits.npz``: ``logits`` ``[K, N, C]`` float32 and ``labels`` ``[N]``;
* ``config.json``: the resolved settings and the command line.

Only ``argparse`` is imported at module level: the CLI lists and helps
without loading JAX.
"""

import argparse
import sys

from airinfer.experiments.commands import (
    PROG,
    BadInput,
    check_choice,
    checkpoint_path,
    fail,
    load_dataset,
)

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``train``'s options to ``parser``."""
    parser.add_argument(
        "--dataset", default="digits", help="digits (default), fashion_mnist or cifar10"
    )
    parser.add_argument("--model", default="cnn", help="cnn (default), mobilenet_v2 or mlp")
    parser.add_argument(
        "--width", type=float, default=1.0, help="width multiplier in (0, 4] (default 1.0)"
    )
    parser.add_argument("--members", type=int, default=4, help="ensemble size K >= 1 (default 4)")
    parser.add_argument(
        "--diversity",
        default="bagging",
        help="init, bagging (default), shards, widths, architectures, distillation or quantization",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per member (default 3)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split, init and batches (default 0)"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="results/train",
        help="output folder (default results/train)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=128, help="samples per member per step (default 128)"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=3e-3, help="peak AdamW learning rate (default 3e-3)"
    )
    parser.add_argument(
        "--widths",
        default="",
        help="for --diversity widths: comma-separated widths (default W/2,W,2W)",
    )
    parser.add_argument(
        "--architectures",
        default="",
        help="for --diversity architectures: comma-separated KIND:WIDTH "
        "(default M:W and the other of cnn/mlp at W)",
    )
    parser.add_argument(
        "--teacher-width", type=float, default=1.0, help="for distillation (default 1.0)"
    )
    parser.add_argument(
        "--bits", type=int, default=4, help="for quantization: bits per weight (default 4)"
    )
    parser.add_argument(
        "--formulation", default="auto", help="auto (default: per backend and model), loop or vmap"
    )
    parser.add_argument(
        "--cache",
        action="store_true",
        help="reuse members from the model cache, or store them there",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a checkpoint already in DIR"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def _validate(args) -> tuple:
    """Configs from ``args``; raises ``BadInput`` naming the option, value and what is allowed."""
    from airinfer.models.datasets import DATASETS
    from airinfer.models.ensemble import DIVERSITY_KINDS
    from airinfer.models.train import FORMULATIONS
    from airinfer.models.zoo import MODEL_KINDS

    check_choice("dataset", args.dataset, DATASETS)
    check_choice("model", args.model, MODEL_KINDS)
    check_choice("diversity", args.diversity, DIVERSITY_KINDS)
    check_choice("formulation", args.formulation, FORMULATIONS)
    if not 0 < args.width <= 4:
        raise BadInput(f"--width: {args.width} is not in (0, 4]")
    for name in ("members", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise BadInput(
                f"--{name.replace('_', '-')}: {getattr(args, name)} is not an integer >= 1"
            )
    if not 2 <= args.bits <= 16:
        raise BadInput(f"--bits: {args.bits} is not in [2, 16]")
    if not 0 < args.teacher_width <= 4:
        raise BadInput(f"--teacher-width: {args.teacher_width} is not in (0, 4]")
    if not args.learning_rate > 0:
        raise BadInput(f"--learning-rate: {args.learning_rate} is not > 0")
    try:
        widths = tuple(float(w) for w in args.widths.split(",") if w.strip())
    except ValueError:
        raise BadInput(
            f"--widths: {args.widths!r} is not a comma-separated list of numbers"
        ) from None
    if any(not 0 < w <= 4 for w in widths):
        raise BadInput(f"--widths: {args.widths!r} has a width outside (0, 4]")
    architectures = []
    for entry in filter(None, (e.strip() for e in args.architectures.split(","))):
        kind, _, width = entry.partition(":")
        check_choice("architectures", kind, MODEL_KINDS)
        try:
            architectures.append((kind, float(width)))
        except ValueError:
            raise BadInput(f"--architectures: {entry!r} is not KIND:WIDTH") from None
        if not 0 < architectures[-1][1] <= 4:
            raise BadInput(f"--architectures: {entry!r} has a width outside (0, 4]")
    return widths, tuple(architectures)


def main(args: argparse.Namespace) -> int:
    """Train, evaluate and save; returns the exit status (2 on bad input)."""
    try:
        widths, architectures = _validate(args)
        checkpoint = checkpoint_path(args.out, args.overwrite)
        dataset = load_dataset(args.dataset, args.seed)
    except BadInput as error:
        return fail(error)
    return _train_and_save(args, widths, architectures, dataset, checkpoint.parent)


def _train_and_save(args, widths, architectures, dataset, out) -> int:
    import dataclasses
    import json
    import shutil
    import time

    import jax
    import numpy as np
    from tqdm import tqdm

    from airinfer.models.cache import cached_train_ensemble
    from airinfer.models.checkpoint import save_ensemble
    from airinfer.models.ensemble import EnsembleConfig, ensemble_metrics
    from airinfer.models.train import (
        TrainConfig,
        ensemble_logits,
        planned_member_steps,
        train_ensemble,
    )
    from airinfer.models.zoo import ModelConfig, count_params, flops

    model_config = ModelConfig(args.model, dataset.image_shape, dataset.num_classes, args.width)
    config = EnsembleConfig(
        model_config,
        args.members,
        args.diversity,
        widths=widths,
        architectures=architectures,
        teacher_width=args.teacher_width,
        quantization_bits=args.bits,
    )
    train_config = TrainConfig(args.epochs, args.batch_size, args.learning_rate, seed=args.seed)
    total = planned_member_steps(len(dataset.train_labels), config, train_config)
    bar = tqdm(
        total=total, unit="step", desc="training", disable=not args.progress, file=sys.stderr
    )
    start = time.perf_counter()
    if args.cache:
        ensemble, report, cached_at = cached_train_ensemble(
            dataset,
            args.seed,
            config,
            train_config,
            formulation=args.formulation,
            on_step=bar.update,
        )
    else:
        ensemble, report = train_ensemble(
            dataset, config, train_config, formulation=args.formulation, on_step=bar.update
        )
        cached_at = None
    bar.close()
    train_seconds = report.train_seconds if report is not None else time.perf_counter() - start

    logits = ensemble_logits(ensemble, dataset.test_images)
    metrics = ensemble_metrics(logits, dataset.test_labels)
    members = [ensemble.member(k) for k in range(ensemble.size)]
    metrics |= {
        "params_per_member": [count_params(m) for m in members],
        "flops_per_member": [flops(m, dataset.image_shape) for m in members],
        "train_seconds": train_seconds,
        "formulations": report.formulations if report is not None else [],
        "val_member_accuracy": report.val_accuracy if report is not None else [],
        "from_cache": report is None,
    }

    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint"
    if checkpoint.exists():
        shutil.rmtree(checkpoint)
    resolved = {
        "dataset": dataset.name,
        "ensemble": config.to_dict(),
        "train": dataclasses.asdict(train_config),
        "formulation": args.formulation,
        "argv": sys.argv[1:],
    }
    save_ensemble(checkpoint, ensemble, resolved)
    np.savez(out / "test_logits.npz", logits=logits.astype(np.float32), labels=dataset.test_labels)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    resolved |= {"backend": jax.default_backend(), "cache": str(cached_at) if cached_at else None}
    (out / "config.json").write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")
    print(
        f"{PROG}: {ensemble.size} members, "
        f"mean member accuracy {metrics['mean_member_accuracy']:.4f}, "
        f"ensemble {metrics['ensemble_accuracy']:.4f}, "
        f"majority vote {metrics['majority_vote_accuracy']:.4f} "
        f"({train_seconds:.0f} s); results in {out}/ (metrics.json, test_logits.npz, checkpoint/)"
    )
    return 0
