"""One training loop for everything airinfer learns.

Ensemble members, the JSCC codec, the split bottleneck and the inversion
attacker differ only in their loss, their optimiser and their batches; the
loop is the same and lives here once: the jitted optax step, epochs of row
batches gathered on the device, validation with early stopping, progress and
resumable checkpoints.

Example: a line fitted to 64 points in four batches of 16 rows.

>>> import jax.numpy as jnp, numpy as np, optax
>>> x = jnp.linspace(-1, 1, 64)[:, None]
>>> def loss(params, state, key, xb, yb):
...     return jnp.mean((xb * params["w"] + params["b"] - yb) ** 2), state
>>> rows = np.arange(64).reshape(4, 16)
>>> fitted = fit(loss, {"w": 0.0, "b": 0.0}, optax.adam(0.1), (x, 3 * x + 1),
...              lambda epoch: rows, epochs=100)
>>> round(float(fitted.params["w"]), 2), round(float(fitted.params["b"]), 2)
(3.0, 1.0)

The loss sees one batch: ``loss(params, state, key, *batch) -> (loss, state)``,
where ``batch`` holds the rows of each array of ``data`` and ``state`` is what
the model carries but does not learn (BatchNorm statistics; returned unchanged
when there is none). ``key`` is ``fold_in(key, step)`` with the global step
number, so a step draws the same numbers whatever came before it.
"""

import dataclasses
import functools
import math
import pathlib
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

__all__ = ["Fitted", "fit", "jitted_step", "adamw_cosine"]


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What :func:`fit` returns.

    Attributes:
        params: the learned parameters: those of the best validation epoch with
            ``validate``, else those after the last step.
        state: the carried state belonging to ``params``.
        losses: ``[steps]`` float32 training loss of every step taken
            (``[K, steps]`` with ``members=True``).
        epochs: epochs run (fewer than asked when early stopping ended the run).
        best_epoch: the epoch (1-based) whose parameters were kept.
        val_loss: the validation loss of ``best_epoch`` (NaN without ``validate``).
        seconds: wall time of the run, compilation included.
        compile_seconds: wall time until the first step had finished.
    """

    params: object
    state: object
    losses: np.ndarray
    epochs: int
    best_epoch: int
    val_loss: float
    seconds: float
    compile_seconds: float


def fit(
    loss: Callable,
    params,
    optimizer: optax.GradientTransformation,
    data: Sequence[jax.Array],
    batches: Callable[[int], np.ndarray],
    *,
    epochs: int,
    state=(),
    key: jax.Array | None = None,
    validate: Callable | None = None,
    patience: int = 0,
    members: bool = False,
    scan: bool = False,
    on_step: Callable[[int], None] | None = None,
    checkpoint: str | pathlib.Path | None = None,
) -> Fitted:
    """Minimise ``loss`` over ``epochs`` passes of ``batches`` with ``optimizer``.

    Args:
        loss: ``loss(params, state, key, *batch) -> (scalar loss, state)``.
        params: the trainable pytree.
        optimizer: the full optax chain, learning-rate schedule included.
        data: arrays ``[N, ...]`` of the whole training set, put on the device
            once; each step gathers its rows inside the jitted step.
        batches: ``batches(epoch) -> [steps, B]`` int row indices of epoch
            ``epoch`` (0-based); ``[K, steps, B]`` with ``members=True``.
        epochs: passes, >= 1.
        state: carried non-trainable state (default: none).
        key: root of the per-step keys (default ``jax.random.key(0)``).
        validate: ``validate(params, state) -> float``, called after every
            epoch; the parameters of the lowest value are kept.
        patience: with ``validate``, stop after this many epochs without
            improvement (0: never stop early).
        members: ``params``, ``state`` and the batches have a leading member
            axis ``K``: one vmapped step trains every member at once.
        scan: run each epoch as one ``lax.scan`` (one dispatch per epoch, for
            small models whose steps are shorter than a dispatch); progress
            then ticks once per epoch.
        on_step: called with the member-steps just taken (``K`` per vmapped
            step, 1 per step, ``steps`` per scanned epoch), e.g. a progress bar.
        checkpoint: a folder: the run is saved there after every epoch and,
            when the folder already holds one, resumed from it.

    Returns:
        :class:`Fitted`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: {epochs!r} is not an int >= 1")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"patience: {patience!r} is not an int >= 0")
    start = time.perf_counter()
    key = jax.random.key(0) if key is None else key
    data = tuple(jnp.asarray(array) for array in data)
    opt_state = (jax.vmap(optimizer.init) if members else optimizer.init)(params)
    run = _Run(params, state, opt_state, best=_Best(math.inf, params, state, 0))
    manager = None
    if checkpoint is not None:
        manager = ocp.CheckpointManager(
            pathlib.Path(checkpoint).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=1),
            item_handlers=ocp.StandardCheckpointHandler(),
        )
        run = _resume(manager, run)
    step = jitted_step(loss, optimizer, members=members, scan=scan)
    # member-steps per step: K with a member axis
    width = jax.tree.leaves(params)[0].shape[0] if members else 1
    if on_step and run.step:  # a resumed run's bar starts where it stopped
        on_step(run.step * width)
    compile_seconds = math.nan

    # a resumed run that early stopping had ended stays ended
    while run.epoch < epochs and not (patience and run.epoch - run.best.epoch >= patience):
        rows = jnp.asarray(batches(run.epoch))
        if members:  # [K, steps, B] -> [steps, K, B]
            rows = jnp.moveaxis(rows, -2, 0)
        steps = rows.shape[0]
        keys = jax.vmap(functools.partial(jax.random.fold_in, key))(run.step + jnp.arange(steps))
        if scan:
            run.params, run.state, run.opt_state, losses = step(
                run.params, run.state, run.opt_state, keys, data, rows
            )
            run.losses.append(losses)
            if on_step:
                on_step(steps * width)
        else:
            for s in range(steps):
                run.params, run.state, run.opt_state, loss_value = step(
                    run.params, run.state, run.opt_state, keys[s], data, rows[s]
                )
                run.losses.append(loss_value[None])
                if math.isnan(compile_seconds):
                    compile_seconds = _seconds_until(loss_value, start)
                if on_step:
                    on_step(width)
        if math.isnan(compile_seconds):
            compile_seconds = _seconds_until(run.losses[-1], start)
        run.step += steps
        run.epoch += 1
        if validate is None:
            run.best = _Best(math.nan, run.params, run.state, run.epoch)
        if validate is not None:
            _validated(run, validate)
        if manager is not None:
            _save(manager, run)

    losses = np.asarray(jnp.concatenate(run.losses), np.float32) if run.losses else None
    if losses is None:
        losses = np.zeros((width, 0) if members else (0,), np.float32)
    elif members:
        losses = losses.T
    return Fitted(
        params=run.best.params,
        state=run.best.state,
        losses=losses,
        epochs=run.epoch,
        best_epoch=run.best.epoch,
        val_loss=run.best.loss,
        seconds=time.perf_counter() - start,
        compile_seconds=compile_seconds,
    )


@functools.lru_cache(maxsize=32)
def adamw_cosine(
    learning_rate: float, weight_decay: float, total_steps: int
) -> optax.GradientTransformation:
    """AdamW whose peak rate is cosine-decayed towards 0 over ``total_steps``.

    Cached on its settings, so that training again with the same settings
    hands :func:`fit` the same optimiser and so reuses its compiled step.
    """
    schedule = optax.cosine_decay_schedule(learning_rate, max(1, total_steps))
    return optax.chain(
        optax.scale_by_adam(),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(schedule),
    )


@dataclasses.dataclass(frozen=True)
class _Best:
    loss: float
    params: object
    state: object
    epoch: int


@dataclasses.dataclass
class _Run:
    """The loop's mutable state: what a checkpoint holds."""

    params: object
    state: object
    opt_state: object
    best: _Best
    epoch: int = 0
    step: int = 0
    losses: list = dataclasses.field(default_factory=list)


def _validated(run: _Run, validate: Callable) -> bool:
    """Validate the run's parameters; keep them as the best if they are. True if they are."""
    value = float(validate(run.params, run.state))
    if value < run.best.loss:
        run.best = _Best(value, run.params, run.state, run.epoch)
        return True
    return False


def _seconds_until(value: jax.Array, start: float) -> float:
    value.block_until_ready()
    return time.perf_counter() - start


@functools.lru_cache(maxsize=16)
def jitted_step(
    loss: Callable,
    optimizer: optax.GradientTransformation,
    members: bool = False,
    scan: bool = False,
) -> Callable:
    """The jitted step (or scanned epoch) that :func:`fit` runs.

    Cached on its arguments, so that training again with the same loss and
    optimiser objects (another seed, a benchmark's timed run) reuses the
    compiled program.

    Returns:
        ``step(params, state, opt_state, key, data, rows) -> (params, state,
        opt_state, loss)``, ``rows [B]`` the batch's rows of each array of
        ``data``; with ``scan``, ``key`` and ``rows`` have a leading step axis
        and so has the returned loss.
    """

    def one_step(params, state, opt_state, key, data, rows):
        batch = tuple(array[rows] for array in data)
        (value, state), grads = jax.value_and_grad(loss, has_aux=True)(params, state, key, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, value

    if members:  # members on axis 0 of params, state, optimiser state and rows; shared key and data
        one_step = jax.vmap(one_step, in_axes=(0, 0, 0, None, None, 0))
    if not scan:
        return jax.jit(one_step)

    def epoch(params, state, opt_state, keys, data, rows):
        def body(carry, inputs):
            key, rows = inputs
            params, state, opt_state, value = one_step(*carry, key, data, rows)
            return (params, state, opt_state), value

        (params, state, opt_state), values = jax.lax.scan(
            body, (params, state, opt_state), (keys, rows)
        )
        return params, state, opt_state, values

    return jax.jit(epoch)


def _save(manager: ocp.CheckpointManager, run: _Run) -> None:
    """Save the run after its epoch ``run.epoch`` (orbax writes, then renames)."""
    tree = {
        "params": run.params,
        "state": run.state,
        "opt_state": run.opt_state,
        "best": {"loss": np.asarray(run.best.loss), "params": run.best.params,
                 "state": run.best.state, "epoch": np.asarray(run.best.epoch)},
        "step": np.asarray(run.step),
        "losses": np.asarray(jnp.concatenate(run.losses)),
    }  # fmt: skip
    manager.save(run.epoch, args=ocp.args.StandardSave(tree))
    manager.wait_until_finished()


def _resume(manager: ocp.CheckpointManager, run: _Run) -> _Run:
    """``run`` continued from the manager's latest epoch, or ``run`` itself if there is none."""
    epoch = manager.latest_step()
    if epoch is None:
        return run
    template = {
        "params": run.params,
        "state": run.state,
        "opt_state": run.opt_state,
        "best": {"loss": np.asarray(0.0), "params": run.params, "state": run.state,
                 "epoch": np.asarray(0)},
        "step": np.asarray(0),
    }  # fmt: skip
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    losses = manager.item_metadata(epoch)["losses"]  # its length is known only from the file
    abstract["losses"] = jax.ShapeDtypeStruct(losses.shape, losses.dtype)
    tree = manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
    best = tree["best"]
    return _Run(
        tree["params"],
        tree["state"],
        tree["opt_state"],
        _Best(float(best["loss"]), best["params"], best["state"], int(best["epoch"])),
        epoch=epoch,
        step=int(tree["step"]),
        losses=[jnp.asarray(tree["losses"])],
    )
