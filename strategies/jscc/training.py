"""Training the codec end to end through the channel, and the cache of trained codecs.

:func:`train_jscc` minimises the cross-entropy of the classifier's logits with
optax's Adam, the SNR drawn uniformly from ``snr_range_db`` per sample and the
channel drawn afresh every step. Trained codecs are stored as checkpoints of
:mod:`airinfer.models.checkpoint` (a JSON description and the states of the codec and
the classifier) and cached by :mod:`airinfer.models.cache` under a key of everything
that determines them (:func:`cached_train_jscc`).
"""

import functools
import pathlib
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from airinfer.models.cache import cache_root, description_key, load_or_build
from airinfer.models.checkpoint import (
    CheckpointMismatchError,
    check_format,
    field_differences,
    read_description,
    restore_state,
    save_checkpoint,
)
from airinfer.models.checkpoint import state_fingerprint as classifier_fingerprint
from airinfer.models.datasets import Dataset, epoch_batches
from airinfer.models.fit import fit
from airinfer.models.zoo import SplitClassifier, feature_shape
from airinfer.strategies.jscc.codec import JSCCCodec
from airinfer.strategies.jscc.config import JSCCConfig
from airinfer.strategies.jscc.strategy import jscc_logits

__all__ = [
    "JSCC_CHECKPOINT_FORMAT",
    "JSCCTrainReport",
    "jscc_loss",
    "jscc_optimizer",
    "train_jscc",
    "classifier_fingerprint",
    "jscc_cache_key",
    "save_jscc",
    "load_jscc",
    "cached_train_jscc",
]

JSCC_CHECKPOINT_FORMAT = 1


class JSCCTrainReport(NamedTuple):
    """What happened while training a codec.

    Attributes:
        losses: ``[steps]`` float32 training cross-entropy of every step.
        train_seconds: wall time, compilation included.
        compile_seconds: wall time of the first step (mostly compilation).
    """

    losses: np.ndarray
    train_seconds: float
    compile_seconds: float


def _check_classifier(classifier: SplitClassifier, dataset: Dataset, config: JSCCConfig):
    if config.split_point not in classifier.split_points:
        raise ValueError(
            f"split_point: unknown {config.split_point!r}; allowed: "
            f"{', '.join(classifier.split_points)}"
        )
    return feature_shape(classifier, config.split_point, dataset.image_shape)


@functools.lru_cache(maxsize=16)
def jscc_loss(classifier_def, codec_def, config: JSCCConfig) -> Callable:
    """The training loss of one architecture and config, in :func:`~airinfer.models.fit.fit`'s form.

    ``loss(trainable, classifier_state, key, images, labels) -> (loss,
    classifier_state)``: ``trainable`` is ``{"codec": state}`` (plus
    ``"classifier"`` with ``fine_tune_back``); ``key`` draws the SNRs (uniform
    in ``snr_range_db``, one per sample) and the channel. Cached, so that
    training the same architecture again reuses the compiled step.
    """
    low, high = config.snr_range_db

    def loss(trainable, classifier_state, key, images, labels):
        classifier = nnx.merge(classifier_def, trainable.get("classifier", classifier_state))
        codec = nnx.merge(codec_def, trainable["codec"])
        key_snr, key_channel = jax.random.split(key)
        snr_db = jax.random.uniform(key_snr, (images.shape[0],), jnp.float32, low, high)
        logits = jscc_logits(
            classifier, codec, key_channel, images, snr_db, config.channel, config,
            backend=config.backend,
        )  # fmt: skip
        value = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return value, classifier_state

    return loss


@functools.lru_cache(maxsize=16)
def jscc_optimizer(learning_rate: float, total_steps: int) -> optax.GradientTransformation:
    """Adam, its peak rate cosine-decayed towards 0 over ``total_steps`` (cached, as the loss)."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, max(1, total_steps)))


def train_jscc(
    classifier: SplitClassifier,
    dataset: Dataset,
    config: JSCCConfig,
    *,
    checkpoint: pathlib.Path | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[JSCCCodec, SplitClassifier, JSCCTrainReport]:
    """Train a codec end to end through the channel on ``dataset``'s training split.

    Each step draws a batch, one SNR per sample uniformly from
    ``config.snr_range_db`` and a fresh channel realisation, and takes an Adam
    step on the cross-entropy of the classifier's logits. The classifier runs
    in eval mode (BatchNorm statistics fixed); its front is frozen, its back
    is trained too when ``config.fine_tune_back``.

    Keys: ``root = key(config.seed)``; the codec is initialised with
    ``fold_in(root, 0)``; epoch ``e`` shuffles with ``fold_in(fold_in(root,
    1), e)``; step ``s`` draws SNRs and channel with ``fold_in(fold_in(root,
    2), s)``.

    Args:
        classifier: a trained :class:`~airinfer.models.zoo.SplitClassifier` (not modified).
        dataset: the data (``train_images`` ``[N, H, W, C]``, ``train_labels``).
        config: the link and training settings.
        checkpoint: a folder where the run is saved after every epoch, and
            resumed from: a cut training continues where it stopped.
        on_step: called with 1 after every step (a progress bar).

    Returns:
        ``(codec, classifier, report)``: the trained codec, the classifier (a
        copy in eval mode, its back fine-tuned if asked) and a
        :class:`JSCCTrainReport`.
    """
    start = time.perf_counter()
    features = _check_classifier(classifier, dataset, config)
    root = jax.random.key(config.seed)
    codec = JSCCCodec.from_config(config, features, jax.random.fold_in(root, 0))
    classifier = nnx.clone(classifier)
    classifier.eval()
    classifier_def, classifier_state = nnx.split(classifier)
    codec_def, codec_state = nnx.split(codec)

    n = len(dataset.train_labels)
    batch_size = min(config.batch_size, n)
    rows = np.arange(n, dtype=np.int32)
    trainable = {"codec": codec_state}
    if config.fine_tune_back:
        trainable["classifier"] = classifier_state
    batch_root = jax.random.fold_in(root, 1)
    fitted = fit(
        jscc_loss(classifier_def, codec_def, config),
        trainable,
        jscc_optimizer(config.learning_rate, config.epochs * (n // batch_size)),
        (dataset.train_images, dataset.train_labels),
        lambda epoch: epoch_batches(jax.random.fold_in(batch_root, epoch), rows, batch_size),
        epochs=config.epochs,
        state=classifier_state,
        key=jax.random.fold_in(root, 2),
        on_step=on_step,
        checkpoint=checkpoint,
    )
    trainable = fitted.params
    codec = nnx.merge(codec_def, trainable["codec"])
    classifier = nnx.merge(classifier_def, trainable.get("classifier", classifier_state))
    report = JSCCTrainReport(fitted.losses, time.perf_counter() - start, fitted.compile_seconds)
    return codec, classifier, report


# --------------------------------------------------------------------------- checkpoints and cache


def jscc_cache_key(
    dataset_name: str, split_seed: int, classifier: SplitClassifier, config: JSCCConfig
) -> str:
    """Hex SHA-256 identifying the codec these settings train (the classifier by its weights)."""
    return description_key(
        {
            "dataset": dataset_name,
            "split_seed": split_seed,
            "classifier": classifier_fingerprint(classifier),
            "jscc": config.to_dict(),
            "checkpoint_format": JSCC_CHECKPOINT_FORMAT,
        }
    )


def save_jscc(
    path,
    codec: JSCCCodec,
    classifier: SplitClassifier,
    config: JSCCConfig,
    metadata: dict | None = None,
) -> pathlib.Path:
    """Write a codec and its classifier to the checkpoint folder ``path`` (must not exist).

    The checkpoint (:func:`airinfer.models.checkpoint.save_checkpoint`) has two items:
    ``description`` (JSON: format, config, feature shape, the classifier's
    fingerprint, ``metadata``) and ``state`` (``{"codec": ..., "classifier":
    ...}``; the classifier is stored whole, so a fine-tuned back end comes
    back with it).

    Returns:
        ``path`` as an absolute ``pathlib.Path``.
    """
    description = {
        "format": JSCC_CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "feature_shape": list(codec.feature_shape),
        "classifier_sha256": classifier_fingerprint(classifier),
        "metadata": metadata or {},
    }
    state = {
        "codec": nnx.to_pure_dict(nnx.state(codec)),
        "classifier": nnx.to_pure_dict(nnx.state(classifier)),
    }
    return save_checkpoint(path, description, state)


def load_jscc(
    path, classifier: SplitClassifier, expected_config: JSCCConfig | None = None
) -> tuple[JSCCCodec, SplitClassifier, JSCCConfig, dict]:
    """Read a checkpoint written by :func:`save_jscc`.

    Args:
        path: the checkpoint folder.
        classifier: a classifier of the stored architecture (its weights are
            replaced by the stored ones; it is not modified).
        expected_config: the config the caller expects, or None to accept
            what is stored.

    Returns:
        ``(codec, classifier, config, metadata)``.

    Raises:
        CheckpointMismatchError: other format, or a config field differs
            (named in the message), or the classifier's architecture differs.
    """
    path = pathlib.Path(path).absolute()
    description = read_description(path)
    check_format(path, description, JSCC_CHECKPOINT_FORMAT)
    config = JSCCConfig(**description["config"])
    if expected_config is not None and config != expected_config:
        raise CheckpointMismatchError(
            f"{path}: config differs: {field_differences(config, expected_config)}"
        )
    shape = tuple(description["feature_shape"])
    codec_def, codec_state = nnx.split(
        nnx.eval_shape(lambda: JSCCCodec.from_config(config, shape, jax.random.key(0)))
    )
    classifier = nnx.clone(classifier)
    classifier_def, classifier_state = nnx.split(classifier)
    abstract = {
        "codec": nnx.to_pure_dict(codec_state),
        "classifier": nnx.to_pure_dict(classifier_state),
    }
    restored = restore_state(path, abstract, "classifier or codec")
    nnx.replace_by_pure_dict(codec_state, restored["codec"])
    nnx.replace_by_pure_dict(classifier_state, restored["classifier"])
    codec = nnx.merge(codec_def, codec_state)
    classifier = nnx.merge(classifier_def, classifier_state)
    classifier.eval()
    return codec, classifier, config, description["metadata"]


def cached_train_jscc(
    classifier: SplitClassifier,
    dataset: Dataset,
    split_seed: int,
    config: JSCCConfig,
    *,
    root=None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[JSCCCodec, SplitClassifier, JSCCTrainReport | None, pathlib.Path]:
    """Load the codec from the cache, or train it with :func:`train_jscc` and store it there.

    The key (:func:`jscc_cache_key`) covers the data set and split seed, the
    classifier's weights and the whole :class:`JSCCConfig` (backend included:
    the two backends draw different channels). Entries live in
    ``root / "jscc-<key>"``, ``root`` defaulting to :func:`airinfer.models.cache.cache_root`.

    Returns:
        ``(codec, classifier, report or None when loaded, checkpoint path)``.
    """
    root = pathlib.Path(root) if root is not None else cache_root()
    _check_classifier(classifier, dataset, config)
    path = root / f"jscc-{jscc_cache_key(dataset.name, split_seed, classifier, config)}"

    def load(path):
        codec, trained, _, _ = load_jscc(path, classifier, config)
        return codec, trained, None

    def train(partial):
        return train_jscc(classifier, dataset, config, checkpoint=partial, on_step=on_step)

    def save(path, trained):
        codec, model, report = trained
        metadata = {
            "dataset": dataset.name,
            "split_seed": split_seed,
            "train_seconds": report.train_seconds,
            "final_loss": float(report.losses[-1]) if len(report.losses) else None,
        }
        save_jscc(path, codec, model, config, metadata)

    (codec, trained, report), _ = load_or_build(path, load, train, save)
    return codec, trained, report, path
