"""The neighbours' heads of the ``encoder`` edge ensemble: diverse backs on shared features.

Device 0's shared encoder (:class:`~airinfer.strategies.observation.SharedEncoder`)
turns an image into features; each of the K devices runs its own
:class:`Head`, the back of a classifier of ``config``'s architecture from the
encoder's split point on (the whole classifier for the identity encoder).
:func:`train_heads` trains K heads on what an error-free link delivers
(:meth:`SharedEncoder.clean_features`), the encoder frozen, through
:func:`airinfer.models.fit.fit` with the ensemble members' loss and optimiser
(:func:`airinfer.models.train.classifier_loss`, AdamW with a cosine decay). The
heads differ by their initialisation (``init``) and, with ``bagging``, by
their bootstrap sample of the training split. :func:`cached_train_heads`
keeps them in the model cache (:mod:`airinfer.models.cache`).

Example::

    encoder = SharedEncoder(member, "conv2", clip=clip, signed=False, bits=4)
    heads = cached_train_heads(encoder, dataset, 0, member_config, 8, TrainConfig(epochs=3))
    strategy = EdgeEnsembleStrategy(heads, observation=encoder)
"""

import dataclasses
import pathlib
from collections.abc import Callable, Sequence

import jax
import numpy as np
from flax import nnx

from airinfer.models.cache import cache_root, description_key, load_or_build
from airinfer.models.checkpoint import (
    restore_state,
    save_checkpoint,
    state_fingerprint,
)
from airinfer.models.datasets import Dataset, bootstrap_indices, epoch_batches
from airinfer.models.fit import adamw_cosine, fit
from airinfer.models.recipe import TrainConfig
from airinfer.models.train import classifier_loss
from airinfer.models.zoo import (
    ModelConfig,
    SplitClassifier,
    abstract_model,
    build_model,
    feature_shape,
)
from airinfer.strategies.observation import SharedEncoder

__all__ = ["HEAD_DIVERSITY", "HEADS_CHECKPOINT_FORMAT", "Head", "train_heads", "cached_train_heads"]

HEAD_DIVERSITY = ("init", "bagging")
HEADS_CHECKPOINT_FORMAT = 1


class Head(SplitClassifier):
    """The stages of ``model`` after ``split_point``: features -> logits.

    Parameters:
        model: the classifier it is cut from (its stages are taken, not copied).
        split_point: one of ``model.split_points``, or None for the whole model.

    Input ``[B, *feature_shape]`` float32 -> logits ``[B, num_classes]``.
    """

    def __init__(self, model: SplitClassifier, split_point: str | None):
        cut = 0
        if split_point is not None:
            if split_point not in model.split_points:
                raise ValueError(
                    f"split_point: unknown {split_point!r}; allowed: "
                    f"{', '.join(model.split_points)} or None"
                )
            cut = model.stage_names.index(split_point) + 1
        self.stages = nnx.List(list(model.stages[cut:]))
        self.stage_names = model.stage_names[cut:]


def _fresh_head(config: ModelConfig, split_point, key) -> Head:
    return Head(build_model(config, key), split_point)


def _check(encoder, dataset, config, num_heads, train_config, diversity):
    if not isinstance(encoder, SharedEncoder):
        raise ValueError(f"encoder: {type(encoder).__name__} is not a SharedEncoder")
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset: {type(dataset).__name__} is not a models.datasets.Dataset")
    if not isinstance(config, ModelConfig):
        raise ValueError(f"config: {type(config).__name__} is not a models.zoo.ModelConfig")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads: {num_heads!r} is not an int >= 1")
    if not isinstance(train_config, TrainConfig):
        raise ValueError(f"train_config: {type(train_config).__name__} is not a TrainConfig")
    if diversity not in HEAD_DIVERSITY:
        raise ValueError(f"diversity: unknown {diversity!r}; allowed: {', '.join(HEAD_DIVERSITY)}")
    head = nnx.eval_shape(lambda: _fresh_head(config, encoder.split_point, jax.random.key(0)))
    expected = config.input_shape
    if encoder.split_point is not None:
        expected = feature_shape(abstract_model(config), encoder.split_point, config.input_shape)
    found = encoder.input_shape(dataset.image_shape)
    if tuple(expected) != tuple(found):
        raise ValueError(
            f"config: heads cut from {config.kind} of width {config.width} take features "
            f"{tuple(expected)}, the encoder gives {tuple(found)}"
        )
    return head


def train_heads(
    encoder: SharedEncoder,
    dataset: Dataset,
    config: ModelConfig,
    num_heads: int,
    train_config: TrainConfig,
    diversity: str = "bagging",
    *,
    checkpoint: pathlib.Path | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Head]:
    """Train ``num_heads`` heads on the shared encoder's error-free features.

    With ``checkpoint`` (a folder) head ``k``'s run is saved in ``head-<k>``
    after every epoch and resumed from there: a cut training continues.

    Keys follow :func:`airinfer.models.train.train_ensemble`: ``root =
    key(train_config.seed)``; head ``k`` is initialised with
    ``fold_in(fold_in(root, 0), k)``, bagging draws with ``fold_in(root, 1)``,
    head ``k``'s batches in epoch ``e`` with ``fold_in(fold_in(fold_in(root,
    2), k), e)``.

    Parameters:
        encoder: the frozen :class:`SharedEncoder`.
        dataset: its ``train_images`` and ``train_labels`` are used.
        config: the architecture the heads are cut from at ``encoder.split_point``
            (``input_shape`` that of the images).
        num_heads: K >= 1.
        train_config: epochs, batch size, AdamW's rate and decay, seed.
        diversity: ``"init"`` (all rows) or ``"bagging"`` (a bootstrap sample each).
        on_step: called with the steps just taken (a progress bar).

    Output:
        ``num_heads`` :class:`Head` s in inference mode.
    """
    _check(encoder, dataset, config, num_heads, train_config, diversity)
    root = jax.random.key(train_config.seed)
    init_key, data_key, batch_key = (jax.random.fold_in(root, i) for i in range(3))
    n = len(dataset.train_labels)
    if diversity == "bagging":
        index_sets = bootstrap_indices(data_key, n, num_heads)
    else:
        index_sets = [np.arange(n)] * num_heads
    batch_size = min(train_config.batch_size, n)
    total_steps = train_config.epochs * (n // batch_size)
    optimizer = adamw_cosine(train_config.learning_rate, train_config.weight_decay, total_steps)
    heads = [
        _fresh_head(config, encoder.split_point, jax.random.fold_in(init_key, k))
        for k in range(num_heads)
    ]
    graphdef = nnx.graphdef(heads[0])
    head_loss = classifier_loss(graphdef)

    def loss(params, rest, key, images, labels):
        features = jax.lax.stop_gradient(encoder.clean_features(images))
        return head_loss(params, rest, key, features, labels)

    trained = []
    for k, head in enumerate(heads):
        params, rest = nnx.split_state(nnx.state(head), nnx.Param, ...)
        keys = jax.random.fold_in(batch_key, k)
        fitted = fit(
            loss,
            params,
            optimizer,
            (dataset.train_images, dataset.train_labels),
            lambda epoch, keys=keys, rows=index_sets[k]: epoch_batches(
                jax.random.fold_in(keys, epoch), rows, batch_size
            ),
            epochs=train_config.epochs,
            state=rest,
            on_step=on_step,
            checkpoint=None if checkpoint is None else pathlib.Path(checkpoint) / f"head-{k}",
        )
        model = nnx.merge(graphdef, nnx.merge_state(fitted.params, fitted.state))
        model.eval()
        trained.append(model)
    return trained


def _encoder_description(encoder: SharedEncoder) -> dict:
    return {
        "model_sha256": None if encoder.model is None else state_fingerprint(encoder.model),
        "split_point": encoder.split_point,
        "bottleneck_sha256": (
            None if encoder.bottleneck is None else state_fingerprint(encoder.bottleneck)
        ),
        "analog": encoder.analog,
        "quantizer": (None if encoder.quantizer is None else dataclasses.asdict(encoder.quantizer)),
    }


def cached_train_heads(
    encoder: SharedEncoder,
    dataset: Dataset,
    split_seed: int,
    config: ModelConfig,
    num_heads: int,
    train_config: TrainConfig,
    diversity: str = "bagging",
    *,
    root=None,
    on_step: Callable[[int], None] | None = None,
) -> list[Head]:
    """:func:`train_heads`, or the heads stored in the model cache by an earlier call.

    The key covers the data set and ``split_seed``, the encoder's weights,
    split point, bottleneck and quantiser, ``config``, ``num_heads``,
    ``train_config`` and ``diversity``; entries live in ``root / "heads-<key>"``,
    ``root`` defaulting to :func:`airinfer.models.cache.cache_root`.
    """
    head = _check(encoder, dataset, config, num_heads, train_config, diversity)
    description = {
        "format": HEADS_CHECKPOINT_FORMAT,
        "dataset": dataset.name,
        "split_seed": split_seed,
        "encoder": _encoder_description(encoder),
        "config": config.to_dict(),
        "num_heads": num_heads,
        "train": train_config.key_fields(),
        "diversity": diversity,
    }
    root = pathlib.Path(root) if root is not None else cache_root()
    graphdef, abstract = nnx.split(head)

    def load(path):
        pure = nnx.to_pure_dict(abstract)
        restored = restore_state(path, {str(k): pure for k in range(num_heads)}, "heads")
        return [_merged(graphdef, abstract, restored[str(k)]) for k in range(num_heads)]

    def build(partial):
        return train_heads(
            encoder, dataset, config, num_heads, train_config, diversity,
            checkpoint=partial, on_step=on_step,
        )  # fmt: skip

    def save(path, heads: Sequence[Head]):
        state = {str(k): nnx.to_pure_dict(nnx.state(h)) for k, h in enumerate(heads)}
        save_checkpoint(path, description, state)

    heads, _ = load_or_build(root / f"heads-{description_key(description)}", load, build, save)
    return heads


def _merged(graphdef, abstract, pure) -> Head:
    state = jax.tree.map(lambda leaf: leaf, abstract)
    nnx.replace_by_pure_dict(state, pure)
    model = nnx.merge(graphdef, state)
    model.eval()
    return model
