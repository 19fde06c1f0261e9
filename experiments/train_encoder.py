"""``airinfer train-encoder``: train the analog split link (deep JSCC of features).

::

    airinfer train-encoder --dataset D --model M --width W --split-point P \\
                           --symbols K --channel C --snr-range LOW,HIGH \\
                           [--no-side-info] [--fine-tune-back] --epochs E \\
                           [--backend sionna|jax] --out DIR

takes the classifier ``M`` of width ``W`` trained on ``D`` (from the model
cache, trained there first if missing), cuts it at ``P`` and trains an
encoder/decoder pair (:mod:`strategies.jscc`) end to end through the channel
``C``, with SNRs drawn uniformly from ``[LOW, HIGH]`` dB. Trained codecs are
cached too (keyed by the data, the classifier's weights and the settings), so
asking again loads them. Writes into ``DIR``:

* ``checkpoint/``: the codec and its classifier (orbax, with the config);
* ``report.json``: ``accuracy`` (a list of ``{"snr_db", "accuracy"}`` on the
  test split over the training channel), ``classifier_accuracy`` (the
  classifier alone, no link), ``cost`` (channel uses, payload bits, device
  and server FLOPs per sample), ``train_seconds``, ``compile_seconds``,
  ``final_loss``, ``from_cache``, ``config`` (the resolved settings and the
  command line) and ``versions``.

SNR is Es/N0 per complex symbol in dB (noise CN(0, no), ``no = 10**(-snr/10)``).
Bad options exit 2 with one line naming the option, the value and what is
allowed. Only ``argparse`` is imported at module level: the CLI lists and helps
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

__all__ = ["add_arguments", "main", "DEFAULT_SPLIT_POINTS"]

# A cut in the middle of each model family: features smaller than the input.
DEFAULT_SPLIT_POINTS = {"cnn": "conv2", "mlp": "hidden1", "mobilenet_v2": "stage4"}
CHANNEL_CHOICES = ("awgn", "rayleigh", "tdl-a")
BACKEND_CHOICES = ("sionna", "jax")
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow", "sionna-no-rt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``train-encoder``'s options to ``parser``."""
    parser.add_argument(
        "--dataset", default="digits", help="digits (default), fashion_mnist or cifar10"
    )
    parser.add_argument("--model", default="cnn", help="cnn (default), mobilenet_v2 or mlp")
    parser.add_argument(
        "--width", type=float, default=0.5, help="classifier width multiplier (default 0.5)"
    )
    parser.add_argument(
        "--classifier-epochs",
        type=int,
        default=10,
        help="epochs of the classifier, if the cache lacks it (default 10)",
    )
    parser.add_argument(
        "--split-point",
        default=None,
        help="where the classifier is cut (default: conv2 for cnn, hidden1 for mlp, "
        "stage4 for mobilenet_v2)",
    )
    parser.add_argument(
        "--symbols", type=int, default=16, help="complex channel uses per sample k (default 16)"
    )
    parser.add_argument("--channel", default="awgn", help="awgn (default), rayleigh or tdl-a")
    parser.add_argument(
        "--snr-range",
        default="-10,20",
        metavar="LOW,HIGH",
        help="training SNRs in dB (Es/N0 per complex symbol), uniform (default -10,20)",
    )
    parser.add_argument(
        "--no-side-info",
        dest="side_info",
        action="store_false",
        help="do not give the SNR to the encoder and decoder",
    )
    parser.add_argument(
        "--fine-tune-back",
        action="store_true",
        help="train the classifier's back end with the codec (the front stays frozen)",
    )
    parser.add_argument(
        "--hidden", type=int, default=128, help="hidden units of encoder and decoder (128)"
    )
    parser.add_argument("--epochs", type=int, default=30, help="codec epochs (default 30)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per step (default 64)")
    parser.add_argument(
        "--learning-rate", type=float, default=3e-3, help="peak Adam learning rate (3e-3)"
    )
    parser.add_argument(
        "--backend",
        default="sionna",
        help="sionna (default: Sionna's channels through the bridge) or jax (the twins)",
    )
    parser.add_argument(
        "--ofdm-subcarriers",
        type=int,
        default=64,
        help="subcarriers of the tdl-a resource grid (default 64)",
    )
    parser.add_argument(
        "--test-snrs",
        default="-10,-5,0,5,10,15,20",
        metavar="LIST",
        help="comma-separated test SNRs in dB (default -10,-5,0,5,10,15,20)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split, classifier and codec (default 0)"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="results/train_encoder",
        help="output folder (default results/train_encoder)",
    )
    parser.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="train the codec afresh instead of loading it from (and storing it in) the cache",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a checkpoint already in DIR"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def _numbers(name: str, text: str) -> tuple[float, ...]:
    import math

    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInput(f"--{name}: {text!r} is not a comma-separated list of numbers") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise BadInput(f"--{name}: {text!r} is not a non-empty list of finite numbers")
    return values


def _validate(args) -> tuple[tuple[float, float], tuple[float, ...]]:
    """The SNR range and test SNRs; raises ``BadInput`` naming the option, value and allowed."""
    from airinfer.models.datasets import DATASETS
    from airinfer.models.zoo import MODEL_KINDS

    check_choice("dataset", args.dataset, DATASETS)
    check_choice("model", args.model, MODEL_KINDS)
    check_choice("channel", args.channel, CHANNEL_CHOICES)
    check_choice("backend", args.backend, BACKEND_CHOICES)
    if args.channel == "tdl-a" and args.backend == "jax":
        raise BadInput("--backend: 'jax' has no twin of the tdl-a channel; allowed: sionna")
    if not 0 < args.width <= 4:
        raise BadInput(f"--width: {args.width} is not in (0, 4]")
    for name in (
        "classifier_epochs", "symbols", "hidden", "epochs", "batch_size", "ofdm_subcarriers",
    ):  # fmt: skip
        if getattr(args, name) < 1:
            raise BadInput(
                f"--{name.replace('_', '-')}: {getattr(args, name)} is not an integer >= 1"
            )
    if not args.learning_rate > 0:
        raise BadInput(f"--learning-rate: {args.learning_rate} is not > 0")
    snr_range = _numbers("snr-range", args.snr_range)
    if len(snr_range) != 2 or snr_range[0] > snr_range[1]:
        raise BadInput(f"--snr-range: {args.snr_range!r} is not LOW,HIGH with LOW <= HIGH")
    return snr_range, _numbers("test-snrs", args.test_snrs)


def _versions() -> dict:
    import importlib.metadata
    import platform

    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(args: argparse.Namespace) -> int:
    """Train (or load) the codec, evaluate and save; returns the exit status (2 on bad input)."""
    from airinfer.models.zoo import ModelConfig, abstract_model

    try:
        snr_range, test_snrs = _validate(args)
        out = checkpoint_path(args.out, args.overwrite).parent
        dataset = load_dataset(args.dataset, args.seed)
        model_config = ModelConfig(args.model, dataset.image_shape, dataset.num_classes, args.width)
        split_point = args.split_point or DEFAULT_SPLIT_POINTS[args.model]
        check_choice("split-point", split_point, abstract_model(model_config).split_points)
    except BadInput as error:
        return fail(error)
    return _train_and_save(args, dataset, model_config, split_point, snr_range, test_snrs, out)


def _train_and_save(args, dataset, model_config, split_point, snr_range, test_snrs, out) -> int:
    import json
    import shutil
    import time

    import jax
    import numpy as np
    from tqdm import tqdm

    from airinfer.models.cache import cached_train_ensemble
    from airinfer.models.ensemble import EnsembleConfig
    from airinfer.models.train import TrainConfig, ensemble_logits, planned_member_steps
    from airinfer.strategies.jscc import (
        JSCCConfig,
        JSCCSplitStrategy,
        accuracy_vs_snr,
        cached_train_jscc,
        save_jscc,
        train_jscc,
    )

    ensemble_config = EnsembleConfig(model_config, 1, "init")
    classifier_train = TrainConfig(epochs=args.classifier_epochs, seed=args.seed)
    config = JSCCConfig(
        split_point=split_point,
        symbols=args.symbols,
        channel=args.channel,
        snr_range_db=snr_range,
        side_info=args.side_info,
        hidden=args.hidden,
        fine_tune_back=args.fine_tune_back,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        backend=args.backend,
        ofdm_subcarriers=args.ofdm_subcarriers,
    )
    progress = {"file": sys.stderr, "disable": not args.progress, "unit": "step"}
    total = planned_member_steps(len(dataset.train_labels), ensemble_config, classifier_train)
    with tqdm(total=total, desc="classifier", **progress) as bar:
        ensemble, _, _ = cached_train_ensemble(
            dataset, args.seed, ensemble_config, classifier_train, on_step=bar.update
        )
        bar.update(total - bar.n)  # loaded from the cache: nothing to train
    classifier = ensemble.member(0)
    classifier.eval()

    steps = args.epochs * (
        len(dataset.train_labels) // min(args.batch_size, len(dataset.train_labels))
    )
    start = time.perf_counter()
    with tqdm(total=steps, desc=f"codec over {args.channel} ({args.backend})", **progress) as bar:
        if args.cache:
            codec, trained, report, cached_at = cached_train_jscc(
                classifier, dataset, args.seed, config, on_step=bar.update
            )
        else:
            codec, trained, report = train_jscc(classifier, dataset, config, on_step=bar.update)
            cached_at = None
        bar.update(steps - bar.n)
    train_seconds = report.train_seconds if report is not None else time.perf_counter() - start

    strategy = JSCCSplitStrategy(trained, codec, config)
    accuracies = accuracy_vs_snr(
        strategy,
        jax.random.key(args.seed + 1),
        dataset.test_images,
        dataset.test_labels,
        test_snrs,
        channel=args.channel,
        backend=args.backend,
    )
    clean_logits = ensemble_logits(ensemble, dataset.test_images)[0]
    cost = strategy.cost(dataset.image_shape)
    resolved = {
        "dataset": dataset.name,
        "classifier": {"model": model_config.to_dict(), "epochs": args.classifier_epochs},
        "jscc": config.to_dict(),
        "cache": str(cached_at) if cached_at else None,
        "argv": sys.argv[1:],
    }
    report_json = {
        "accuracy": [
            {"snr_db": float(snr), "accuracy": float(a)}
            for snr, a in zip(test_snrs, accuracies, strict=True)
        ],
        "classifier_accuracy": float((clean_logits.argmax(-1) == dataset.test_labels).mean()),
        "test_samples": int(len(dataset.test_labels)),
        "cost": {
            "channel_uses": cost.channel_uses,
            "payload_bits": cost.payload_bits,
            "device_flops": cost.device_flops,
            "server_flops": cost.server_flops,
        },
        "train_seconds": train_seconds,
        "compile_seconds": report.compile_seconds if report is not None else None,
        "final_loss": float(np.mean(report.losses[-10:])) if report is not None else None,
        "from_cache": report is None,
        "config": resolved,
        "versions": _versions() | {"jax_backend": jax.default_backend()},
    }

    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint"
    if checkpoint_path.exists():
        shutil.rmtree(checkpoint_path)
    save_jscc(checkpoint_path, codec, trained, config, resolved)
    (out / "report.json").write_text(json.dumps(report_json, indent=2) + "\n", encoding="utf-8")
    summary = ", ".join(
        f"{snr:g} dB: {a:.3f}" for snr, a in zip(test_snrs, accuracies, strict=True)
    )
    print(
        f"{PROG}: split at {split_point}, {args.symbols} symbols over {args.channel}; "
        f"accuracy {summary} ({train_seconds:.0f} s); results in {out}/ "
        "(report.json, checkpoint/)"
    )
    return 0
