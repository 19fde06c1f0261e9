"""Training of ensemble members with optax.

Members of one architecture (a :class:`~airinfer.models.ensemble.MemberGroup`) train
in one of two formulations that give the same result for the same seeds, a loop of
single-member steps or one step vmapped over the members; :mod:`airinfer.models.inference`
chooses the faster for the backend (:func:`~airinfer.models.inference.choose_formulation`).

Both formulations read batches by index from the whole training set, which is
put on the device once; each step gathers its ``[B]`` (or ``[K, B]``) rows inside
the jitted function. Member ``k`` in epoch ``e`` shuffles its own index set
with ``fold_in(fold_in(batch_key, k), e)``, so it sees the same batches in
either formulation and whatever the number of members.
"""

import dataclasses
import functools
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from airinfer.models.datasets import Dataset, bootstrap_indices, disjoint_shards, epoch_batches
from airinfer.models.ensemble import (
    Ensemble,
    EnsembleConfig,
    MemberGroup,
    init_group,
    stochastic_quantize,
)
from airinfer.models.fit import adamw_cosine, fit
from airinfer.models.inference import (
    FORMULATIONS,
    choose_formulation,
    ensemble_logits,
    group_logits,
    jitted_logits,
)
from airinfer.models.recipe import Augmentation, Distillation, TrainConfig
from airinfer.models.zoo import ModelConfig

__all__ = [
    "cross_entropy_loss",
    "distillation_loss",
    "classifier_loss",
    "train_group",
    "TrainReport",
    "planned_member_steps",
    "train_ensemble",
]


def cross_entropy_loss(logits, labels):
    """Mean softmax cross-entropy of ``logits [B, C]`` against int ``labels [B]``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def distillation_loss(logits, teacher_logits, temperature: float):
    """Mean KL(teacher ‖ student) of the temperature-softened outputs, scaled by T².

    The T² keeps the soft-target gradients on the scale of the hard-label ones
    as T changes (Hinton et al.).
    """
    teacher = jax.nn.softmax(teacher_logits / temperature)
    student_log = jax.nn.log_softmax(logits / temperature)
    kl = jnp.sum(teacher * (jnp.log(jnp.clip(teacher, 1e-12)) - student_log), axis=-1)
    return temperature**2 * kl.mean()


@functools.lru_cache(maxsize=32)
def classifier_loss(
    graphdef: nnx.GraphDef,
    distillation: Distillation | None = None,
    augmentation: Augmentation | None = None,
) -> Callable:
    """The training loss of one member, in :func:`~airinfer.models.fit.fit`'s form.

    ``loss(params, rest, key, images, labels[, soft_logits]) -> (loss, rest)``:
    ``params`` the member's ``nnx.Param`` state, ``rest`` its other state
    (BatchNorm statistics, updated by the training-mode forward pass),
    ``soft_logits`` the teacher's logits with ``distillation``; with
    ``augmentation`` the images are first cropped and flipped with ``key``.
    Cached per architecture, so that fit reuses its compiled step.
    """

    def loss(params, rest, key, images, labels, soft_logits=None):
        if augmentation is not None:
            images = augmentation(key, images)
        # a copy: the statistics were created outside this trace and cannot be updated in place
        model = nnx.merge(graphdef, params, rest, copy=True)
        model.train()
        logits = model(images)
        value = cross_entropy_loss(logits, labels)
        if distillation is not None:
            soft = distillation_loss(logits, soft_logits, distillation.temperature)
            value = (1 - distillation.weight) * value + distillation.weight * soft
        return value, nnx.state(model, nnx.Not(nnx.Param))

    return loss


def _validation_loss(graphdef, images, labels, members: bool, chunk_size: int = 1000):
    """``validate(params, rest) -> float``: the mean cross-entropy on ``images``, ``labels``.

    With ``members`` the parameters carry a member axis and the mean runs over
    the members too.
    """
    logits = jitted_logits(graphdef, members)
    images, labels = jnp.asarray(images), jnp.asarray(labels)

    def validate(params, rest):
        state = nnx.merge_state(params, rest)
        total = 0.0
        for start in range(0, len(labels), chunk_size):
            chunk = logits(state, images[start : start + chunk_size])  # [(K,) n, C]
            rows = jnp.broadcast_to(labels[start : start + chunk_size], chunk.shape[:-1])
            total += float(optax.softmax_cross_entropy_with_integer_labels(chunk, rows).sum())
        return total / (labels.size * (jax.tree.leaves(params)[0].shape[0] if members else 1))

    return validate


def _member_batches(
    batch_key, index_sets: np.ndarray, member_ids, epoch: int, batch_size: int
) -> np.ndarray:
    """``[K, steps, B]`` row indices of one epoch for members ``member_ids``."""
    return np.stack(
        [
            epoch_batches(
                jax.random.fold_in(jax.random.fold_in(batch_key, k), epoch), index_set, batch_size
            )
            for k, index_set in zip(member_ids, index_sets, strict=True)
        ]
    )


def train_group(
    group: MemberGroup,
    images,
    labels,
    index_sets: np.ndarray,
    config: TrainConfig,
    batch_key,
    *,
    member_ids=None,
    formulation: str = "auto",
    soft_logits=None,
    distillation: Distillation | None = None,
    validation: tuple | None = None,
    augment_key=None,
    checkpoint: pathlib.Path | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[MemberGroup, np.ndarray, str]:
    """Train every member of ``group`` on its own index set.

    Args:
        group: the members, stacked ``[K, ...]``.
        images: ``[N, H, W, C]`` float32 training images (numpy or jax).
        labels: ``[N]`` int32.
        index_sets: ``[K, M]`` int32 rows each member trains on.
        config: epochs, batch size, optimiser settings.
        batch_key: key of the batch order; member ``k`` uses ``fold_in(batch_key, member_ids[k])``.
        member_ids: global member numbers of the group (default ``0..K-1``).
        formulation: ``"auto"`` (:func:`choose_formulation`), ``"loop"`` or ``"vmap"``.
        soft_logits: ``[N, C]`` teacher logits, with ``distillation``.
        distillation: soft-target loss settings, or None.
        validation: ``(images, labels)`` of the validation split; needed when
            ``config.patience`` asks for early stopping.
        augment_key: key of ``config.augmentation``'s draws (step ``s`` uses
            ``fold_in(augment_key, s)``; members share them, their batches
            differ); default ``key(0)``.
        checkpoint: a folder: each member's run (each vmapped run) is saved
            there after every epoch, in ``member-<id>`` (``members-<first>-<last>``),
            and resumed from it when it is there.
        on_step: called with the number of member-steps just done (K for a
            vmapped step, 1 for a looped one), e.g. to tick a progress bar.

    Returns:
        ``(trained group, losses [K, steps], formulation used)``; a member that
        stopped early has NaN after its last step.
    """
    if formulation not in FORMULATIONS:
        raise ValueError(
            f"formulation: unknown {formulation!r}; allowed: {', '.join(FORMULATIONS)}"
        )
    if formulation == "auto":
        formulation = choose_formulation(group.config.kind, group.size)
    if config.patience and (validation is None or not len(validation[1])):
        raise ValueError(f"patience: {config.patience} needs a validation split, and there is none")
    member_ids = list(range(group.size)) if member_ids is None else list(member_ids)
    index_sets = np.asarray(index_sets)
    batch_size = min(config.batch_size, index_sets.shape[1])
    total_steps = config.epochs * (index_sets.shape[1] // batch_size)
    # on the device once for every member
    data = tuple(
        jnp.asarray(array)
        for array in ((images, labels) if distillation is None else (images, labels, soft_logits))
    )

    def train(params, rest, members: slice, vmapped: bool):
        """Fit the members ``members`` (a slice of the group) as one vmapped run or one member."""
        validate = None
        if config.patience:
            validate = _validation_loss(group.graphdef, *validation, members=vmapped)
        ids = member_ids[members]
        name = f"members-{ids[0]}-{ids[-1]}" if vmapped else f"member-{ids[0]}"
        fitted = fit(
            classifier_loss(group.graphdef, distillation, config.augmentation),
            params,
            adamw_cosine(config.learning_rate, config.weight_decay, total_steps),
            data,
            lambda epoch: _member_batches(
                batch_key, index_sets[members], member_ids[members], epoch, batch_size
            )[slice(None) if vmapped else 0],
            epochs=config.epochs,
            state=rest,
            key=augment_key,
            validate=validate,
            patience=config.patience,
            members=vmapped,
            on_step=on_step,
            checkpoint=None if checkpoint is None else pathlib.Path(checkpoint) / name,
        )
        return fitted.params, fitted.state, fitted.losses

    params, rest = nnx.split_state(group.state, nnx.Param, ...)
    if formulation == "vmap":
        params, rest, losses = train(params, rest, slice(None), vmapped=True)
    else:
        trained = [
            train(*jax.tree.map(lambda leaf, k=k: leaf[k], (params, rest)), slice(k, k + 1), False)
            for k in range(group.size)
        ]
        params, rest = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[t[:2] for t in trained])
        # members that stopped early took fewer steps: NaN after their last
        losses = np.full((group.size, max(len(t[2]) for t in trained)), np.nan, np.float32)
        for k, (_, _, member_losses) in enumerate(trained):
            losses[k, : len(member_losses)] = member_losses
    state = nnx.merge_state(params, rest)
    return MemberGroup(group.config, group.graphdef, state), np.asarray(losses), formulation


@dataclasses.dataclass
class TrainReport:
    """What happened while training an ensemble.

    Attributes:
        losses: per member, the training loss of every step (list of K arrays).
        formulations: the formulation used for each group.
        train_seconds: wall time of the training, compilation included.
        val_accuracy: per member, accuracy on the validation split (empty
            when the data set has none); measured after training.
        teacher_config: the teacher's architecture (distillation only).
        epochs_run: per member, the epochs it was trained (fewer than asked
            when early stopping ended its run).
    """

    losses: list
    formulations: list
    train_seconds: float
    val_accuracy: list
    teacher_config: ModelConfig | None = None
    epochs_run: list = dataclasses.field(default_factory=list)


def planned_member_steps(num_train: int, config: EnsembleConfig, train_config: TrainConfig) -> int:
    """Member-steps :func:`train_ensemble` will take (the total for a progress bar)."""
    members = config.members

    def steps(rows: int, count: int) -> int:
        batch_size = min(train_config.batch_size, rows)
        return count * train_config.epochs * (rows // batch_size)

    if config.diversity == "quantization":
        return steps(num_train, 1)
    rows = num_train // members if config.diversity == "shards" else num_train
    teacher = steps(num_train, 1) if config.diversity == "distillation" else 0
    return teacher + steps(rows, members)


def _blocks_of_equal(items) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal consecutive items: the stackable groups."""
    blocks, start = [], 0
    for i in range(1, len(items) + 1):
        if i == len(items) or items[i] != items[start]:
            blocks.append((start, i))
            start = i
    return blocks


def train_ensemble(
    dataset: Dataset,
    config: EnsembleConfig,
    train_config: TrainConfig,
    *,
    formulation: str = "auto",
    checkpoint: pathlib.Path | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[Ensemble, TrainReport]:
    """Train a diverse ensemble on ``dataset``'s training split.

    Keys: ``root = key(train_config.seed)``; member ``k`` is initialised with
    ``fold_in(fold_in(root, 0), k)``; bagging/shards draw with
    ``fold_in(root, 1)``; batch order uses ``fold_in(root, 2)``; the teacher
    ``fold_in(root, 3)``; quantisation ``fold_in(fold_in(root, 4), k)``;
    augmentation ``fold_in(root, 5)``.

    Args:
        dataset: the data; training uses ``train_images``/``train_labels``.
        config: members, architecture, diversity kind.
        train_config: optimisation settings and seed.
        formulation: ``"auto"``, ``"loop"`` or ``"vmap"`` (see :func:`choose_formulation`).
        checkpoint: a folder where every member's run is saved after each epoch,
            and resumed from: a cut training continues where it stopped.
        on_step: progress callback, called with member-steps done.

    Returns:
        ``(ensemble, report)``.
    """
    start = time.perf_counter()
    root = jax.random.key(train_config.seed)
    init_key, data_key, batch_key = (jax.random.fold_in(root, i) for i in range(3))
    n = len(dataset.train_labels)
    members = config.members
    all_rows = np.broadcast_to(np.arange(n, dtype=np.int32), (members, n))
    index_sets = {
        "bagging": lambda: bootstrap_indices(data_key, n, members),
        "shards": lambda: disjoint_shards(data_key, n, members),
    }.get(config.diversity, lambda: all_rows)()

    # what every train_group call shares: early stopping's split, augmentation's draws, progress
    fit_options = {
        "validation": (dataset.val_images, dataset.val_labels),
        "augment_key": jax.random.fold_in(root, 5),
        "checkpoint": checkpoint,
        "on_step": on_step,
    }
    member_configs = config.member_configs()
    groups, losses, formulations = [], [], []
    soft_logits, distillation, teacher_config = None, None, None
    if config.diversity == "distillation":
        teacher_config = dataclasses.replace(config.model, width=config.teacher_width)
        teacher = init_group(teacher_config, jax.random.fold_in(root, 3)[None])
        teacher, teacher_losses, _ = train_group(
            teacher,
            dataset.train_images,
            dataset.train_labels,
            all_rows[:1],
            train_config,
            jax.random.fold_in(batch_key, members),
            member_ids=[members],
            formulation="loop",
            **fit_options,
        )
        soft_logits = group_logits(teacher, dataset.train_images)[0]
        distillation = Distillation(config.distillation_temperature, config.distillation_weight)

    if config.diversity == "quantization":
        base = init_group(config.model, jax.random.fold_in(init_key, 0)[None])
        base, base_losses, used = train_group(
            base,
            dataset.train_images,
            dataset.train_labels,
            all_rows[:1],
            train_config,
            batch_key,
            formulation="loop",
            **fit_options,
        )
        base_state = base.member_state(0)
        quantize_keys = jnp.stack(
            [jax.random.fold_in(jax.random.fold_in(root, 4), k) for k in range(members)]
        )
        params, rest = nnx.split_state(base_state, nnx.Param, ...)
        # one compiled program for all K realisations (eager vmap compiles op by op)
        stacked_params = jax.jit(
            jax.vmap(lambda key: stochastic_quantize(key, params, config.quantization_bits))
        )(quantize_keys)
        stacked_rest = jax.tree.map(
            lambda leaf: jnp.broadcast_to(leaf, (members, *leaf.shape)), rest
        )
        groups = [
            MemberGroup(config.model, base.graphdef, nnx.merge_state(stacked_params, stacked_rest))
        ]
        losses = [base_losses[0]] * members
        formulations = [used]
    else:
        for first, last in _blocks_of_equal(member_configs):
            ids = list(range(first, last))
            keys = jnp.stack([jax.random.fold_in(init_key, k) for k in ids])
            group = init_group(member_configs[first], keys)
            group, group_losses, used = train_group(
                group,
                dataset.train_images,
                dataset.train_labels,
                index_sets[first:last],
                train_config,
                batch_key,
                member_ids=ids,
                formulation=formulation,
                soft_logits=soft_logits,
                distillation=distillation,
                **fit_options,
            )
            groups.append(group)
            losses.extend(group_losses)
            formulations.append(used)
    train_seconds = time.perf_counter() - start
    ensemble = Ensemble(tuple(groups))
    val_accuracy = []
    if len(dataset.val_labels):
        predictions = ensemble_logits(ensemble, dataset.val_images).argmax(-1)
        val_accuracy = [float(a) for a in (predictions == dataset.val_labels).mean(axis=1)]
    steps_per_epoch = index_sets.shape[1] // min(train_config.batch_size, index_sets.shape[1])
    epochs_run = [int(np.isfinite(member).sum()) // steps_per_epoch for member in losses]
    return ensemble, TrainReport(
        losses, formulations, train_seconds, val_accuracy, teacher_config, epochs_run
    )
