"""A strategy's accuracy and cost over test images, batch by batch or sharded over devices.

:func:`evaluate` runs a strategy batch after batch, batch i with the key
``fold_in(key, i)``. When every draw of the strategy is JAX
(:func:`runs_on_jax`), :func:`evaluate_sharded` computes the same batches with
the same keys through
:func:`airinfer.experiments.sharding.map_indices`, the batches shared among
devices, and counts the correct decisions after gathering them: the same
result for any number of devices. A strategy with a digital link (Sionna's
LDPC code, through TensorFlow) or on an OFDM channel (Sionna's) cannot cross
JAX devices and keeps the batch-after-batch loop.

Logits holding NaN or +inf never decide (:func:`airinfer.ota.encoding.decide`
gives :data:`~airinfer.ota.encoding.NO_DECISION`): such an image counts as
wrong. Both paths count these undecided images (with ``return_undecided``:
the strategy sweeps' ``undecided`` column), and a warning line names the link
where any occurred.
"""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.experiments import sharding
from airinfer.ota.encoding import NO_DECISION, decide
from airinfer.phy.channels import OFDM_MODELS
from airinfer.strategies.adaptation import digital_links

__all__ = [
    "COST_COLUMNS",
    "evaluate",
    "evaluate_on_devices",
    "evaluate_sharded",
    "runs_on_jax",
]

#: the cost of one inference, averaged over the test images
COST_COLUMNS = ("channel_uses", "payload_bits", "device_flops", "server_flops", "latency_s")

_log = logging.getLogger(__name__)


def runs_on_jax(strategy, link, image_shape) -> bool:
    """Whether every draw of ``strategy`` over ``link`` is JAX: the JAX channel twins
    (``link.backend == "jax"``) on a flat channel, and no digital link."""
    return (
        link.backend == "jax"
        and link.channel not in OFDM_MODELS
        and not digital_links(strategy, image_shape)
    )


def _batch_outcome(key, index, images, link, *, strategy, batch_size):
    """Batch ``index`` of ``images`` (padded to whole batches): its decisions and cost."""
    batch = jax.lax.dynamic_slice_in_dim(images, index * batch_size, batch_size)
    outcome = strategy(key, batch, link)
    return decide(outcome.logits), outcome.cost


@functools.cache
def _batch_outcome_of(strategy, batch_size):
    # one function object per strategy, so that its sharded program compiles once
    return functools.partial(_batch_outcome, strategy=strategy, batch_size=batch_size)


def _counted(strategy, link, decisions, labels):
    """``(correct, undecided)`` of ``decisions``; a warning line where an image got no
    decision."""
    correct = int(np.sum(decisions == labels))
    undecided = int(np.sum(decisions == NO_DECISION))
    if undecided:
        _log.warning(
            "%s on %s at snr_db=%s: %d of %d test images had non-finite logits and got "
            "no decision (counted as wrong)", getattr(strategy, "name", type(strategy).__name__),
            link.channel, np.asarray(link.snr_db).tolist(), undecided, len(labels),
        )  # fmt: skip
    return correct, undecided


def _result(correct, cost, undecided, return_undecided):
    return (correct, cost, undecided) if return_undecided else (correct, cost)


def evaluate_sharded(
    strategy, key, images, labels, link, batch_size, columns, devices=None, *,
    return_undecided=False,
):  # fmt: skip
    """Correct decisions and the mean cost of ``strategy`` over ``images``, batches sharded.

    Input:
        strategy: a strategy (``strategy(key, images, link) -> Outcome``) that
            :func:`runs_on_jax`.
        key: JAX PRNG key; batch i uses ``fold_in(key, i)``.
        images: ``[N, H, W, C]`` float32, host array.
        labels: ``[N]`` int.
        link: :class:`airinfer.strategies.base.Link`.
        batch_size: images per batch; the last batch is padded by repeating the
            last image, the padding not counted.
        columns: the cost fields to average (names of
            :class:`airinfer.strategies.cost.Cost`).
        devices: how many devices share the batches (None: all).
        return_undecided: also return how many images got no decision
            (non-finite logits; counted as wrong).

    Output:
        ``(correct, cost)``: an int, and ``{column: mean over the images}``;
        with ``return_undecided``, ``(correct, cost, undecided)``. As the
        batch-after-batch loop gives them, for any ``devices``.
    """
    num_batches = -(-len(labels) // batch_size)
    padding = num_batches * batch_size - len(labels)
    padded = np.concatenate([images, np.repeat(images[-1:], padding, axis=0)])
    decisions, cost = sharding.map_indices(
        _batch_outcome_of(strategy, batch_size), key, num_batches, jnp.asarray(padded), link,
        devices=devices,
    )  # fmt: skip
    correct, undecided = _counted(strategy, link, decisions.reshape(-1)[: len(labels)], labels)
    sizes = [min(batch_size, len(labels) - start) for start in range(0, len(labels), batch_size)]
    means = {
        name: sum(size * float(np.mean(per_batch)) for size, per_batch in zip(
            sizes, getattr(cost, name), strict=True))
        for name in columns
    }  # fmt: skip
    cost = {name: total / len(labels) for name, total in means.items()}
    return _result(correct, cost, undecided, return_undecided)


@functools.cache
def _jitted(strategy):
    return jax.jit(strategy)


def evaluate(strategy, key, images, labels, link, batch_size, *, return_undecided=False):
    """Correct decisions and the mean cost of ``strategy`` over ``images`` in batches.

    Every batch has ``batch_size`` images (the last one padded by repetition,
    the padding not counted), so one compiled program serves them all.

    Returns:
        ``(correct, cost)``: an int and a dict of the cost columns, averaged
        over the images (codecs send a different number of bits per image);
        with ``return_undecided``, ``(correct, cost, undecided)``, the last the
        images whose logits were not finite (no decision, counted as wrong).
    """
    run = _jitted(strategy)
    decided, totals = [], dict.fromkeys(COST_COLUMNS, 0.0)
    for i, start in enumerate(range(0, len(labels), batch_size)):
        batch = images[start : start + batch_size]
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - size, axis=0)])
        outcome = run(jax.random.fold_in(key, i), batch, link)
        decided.append(np.asarray(decide(outcome.logits))[:size])  # NaN never decides
        for name in COST_COLUMNS:
            totals[name] += size * float(np.mean(getattr(outcome.cost, name)))
    correct, undecided = _counted(strategy, link, np.concatenate(decided), np.asarray(labels))
    cost = {name: total / len(labels) for name, total in totals.items()}
    return _result(correct, cost, undecided, return_undecided)


def evaluate_on_devices(strategy, key, images, labels, link, config, *, return_undecided=False):
    """:func:`evaluate` with ``config.batch_size``, its batches sharded over
    ``config.devices`` when every draw of ``strategy`` is JAX (the same results,
    :func:`evaluate_sharded`); through Sionna's TensorFlow
    bridge, on one device, batch after batch. ``return_undecided`` as there."""
    if runs_on_jax(strategy, link, images.shape[1:]):
        return evaluate_sharded(
            strategy, key, images, labels, link, config.batch_size, COST_COLUMNS, config.devices,
            return_undecided=return_undecided,
        )  # fmt: skip
    return evaluate(
        strategy, key, images, labels, link, config.batch_size, return_undecided=return_undecided
    )
