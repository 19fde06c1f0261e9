"""Accuracy of an ensemble whose members' outputs are aggregated over a channel.

Shared by the over-the-air experiments. A sweep curve is one jitted call: the
SNR points run through ``jax.lax.map`` (it works across the Sionna bridge,
unlike ``vmap``) and, at each point, all channel draws of all test samples
form one batch, so there is no Python loop over samples or draws.

Over the air, a curve takes the path of the edge-ensemble strategy,
:func:`airinfer.ota.ensemble.ensemble_over_the_air`, with the scheme names of
:mod:`airinfer.ota.ensemble` (``ota_belief``, ``ota_vote``, ``ota_sign``).
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.ota.aircomp import over_the_air_average
from airinfer.ota.connectivity import participation_mask
from airinfer.ota.ensemble import SCHEME_PAYLOADS, ensemble_over_the_air
from airinfer.ota.orthogonal import measure_bler_table, orthogonal_average
from airinfer.ota.privacy import add_gaussian_noise

__all__ = [
    "softmax",
    "curve_key",
    "ota_accuracy_curve",
    "orthogonal_accuracy_curve",
    "ideal_accuracy_curve",
    "private_accuracy_curve",
    "noiseless_accuracy",
    "best_single_member",
    "macro_f1",
]


def softmax(logits):
    """Softmax over the last axis, in NumPy (member logits are host arrays)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def curve_key(seed, *parts):
    """A key for one curve from the run's seed and names, independent of sweep order."""
    tag = zlib.crc32("/".join(str(p) for p in parts).encode())
    return jax.random.fold_in(jax.random.key(seed), tag)


@functools.partial(jax.jit, static_argnames=("scheme", "config", "draws"))
def _correct_counts(key, probs, labels, snr_db, connectivity, *, scheme, config, draws):
    """Correct decisions at each SNR point: ``[S]`` int32 counts over ``draws x N`` inferences."""
    probs = jnp.broadcast_to(probs, (draws, *probs.shape))  # [draws, N, K, C]

    def one_point(args):
        index, snr, p = args
        point_key = jax.random.fold_in(key, index)
        key_link, key_join = jax.random.split(point_key)
        estimate = ensemble_over_the_air(
            key_link, key_join, probs, snr, config, SCHEME_PAYLOADS[scheme], p
        )
        decisions = jnp.argmax(estimate.average, axis=-1)
        return jnp.sum(decisions == labels).astype(jnp.int32)

    indices = jnp.arange(snr_db.shape[0])
    return jax.lax.map(one_point, (indices, snr_db, connectivity))


def ota_accuracy_curve(key, probs, labels, snr_db, *, scheme, config, draws, connectivity=1.0):
    """Accuracy of over-the-air aggregation at each point of a sweep.

    Input:
        key: JAX PRNG key of the curve (point i uses ``fold_in(key, i)``).
        probs: ``[N, K, C]`` the members' softmax outputs on N test samples.
        labels: ``[N]`` int.
        snr_db: ``[S]`` Es/N0 per complex symbol in dB (see :mod:`airinfer.ota.aircomp`).
        scheme: ``"ota_belief"``, ``"ota_vote"`` or ``"ota_sign"``.
        config: :class:`airinfer.ota.aircomp.AirCompConfig`.
        draws: channel draws per test sample.
        connectivity: ``[S]`` or scalar, the probability that each neighbour joins.

    Output:
        ``[S]`` float accuracies in [0, 1] over ``draws x N`` inferences.
    """
    snr_db = np.atleast_1d(np.asarray(snr_db, np.float32))
    connectivity = np.broadcast_to(np.asarray(connectivity, np.float32), snr_db.shape)
    counts = _correct_counts(
        key, jnp.asarray(probs), jnp.asarray(labels), snr_db, connectivity,
        scheme=scheme, config=config, draws=draws,
    )  # fmt: skip
    return np.asarray(counts) / (draws * len(labels))


@functools.partial(jax.jit, static_argnames=("config", "draws"))
def _orthogonal_correct_counts(key, probs, labels, snr_db, table, *, config, draws):
    values = jnp.broadcast_to(probs, (draws, *probs.shape))

    def one_point(args):
        index, snr = args
        estimate = orthogonal_average(
            jax.random.fold_in(key, index), values, snr, config, bler_table=table
        )
        return jnp.sum(jnp.argmax(estimate.average, axis=-1) == labels).astype(jnp.int32)

    return jax.lax.map(one_point, (jnp.arange(snr_db.shape[0]), snr_db))


def orthogonal_accuracy_curve(key, probs, labels, snr_db, *, config, draws):
    """Accuracy of the digital orthogonal baseline (softmax outputs quantised and coded).

    As :func:`ota_accuracy_curve`, with ``config`` an
    :class:`airinfer.ota.orthogonal.OrthogonalConfig` in ``"abstraction"`` mode: the
    block-error table of its link is measured once (and cached) before the
    jitted sweep.
    """
    snr_db = np.atleast_1d(np.asarray(snr_db, np.float32))
    table = measure_bler_table(config.link(probs.shape[-1]))
    counts = _orthogonal_correct_counts(
        key, jnp.asarray(probs), jnp.asarray(labels), snr_db, table, config=config, draws=draws
    )
    return np.asarray(counts) / (draws * len(labels))


@functools.partial(jax.jit, static_argnames=("draws",))
def _ideal_correct_counts(key, probs, labels, connectivity, *, draws):
    values = jnp.broadcast_to(probs, (draws, *probs.shape))  # [draws, N, K, C]

    def one_point(args):
        index, p = args
        mask = participation_mask(
            jax.random.fold_in(key, index), values.shape[:2], values.shape[2], p
        )
        average = jnp.einsum("...k,...kc->...c", mask, values) / jnp.sum(mask, -1, keepdims=True)
        return jnp.sum(jnp.argmax(average, axis=-1) == labels).astype(jnp.int32)

    return jax.lax.map(one_point, (jnp.arange(connectivity.shape[0]), connectivity))


def ideal_accuracy_curve(key, probs, labels, connectivity, *, draws):
    """Accuracy of perfect aggregation when each neighbour joins with probability ``p``.

    ``probs`` ``[N, K, C]``; device 0 always joins and the participants' softmax
    outputs are averaged exactly. ``connectivity`` ``[P]`` -> ``[P]`` accuracies.
    """
    connectivity = np.atleast_1d(np.asarray(connectivity, np.float32))
    counts = _ideal_correct_counts(
        key, jnp.asarray(probs), jnp.asarray(labels), connectivity, draws=draws
    )
    return np.asarray(counts) / (draws * len(labels))


@functools.partial(jax.jit, static_argnames=("config", "normalization", "draws", "orthogonal"))
def _private_decisions(key, values, snr_db, dp_std, low, high, table, *, config, normalization,
                       draws, orthogonal):  # fmt: skip
    """Decisions ``[P, draws, N]`` with DP noise of std ``dp_std[i]`` added by every device.

    To keep one compiled function for every privacy level, devices map their
    noisy values affinely by ``(low[i], high[i])`` (known to the receiver)
    onto the range the static config expects, and the receiver maps back.
    """
    values = jnp.broadcast_to(values, (draws, *values.shape))

    def one_point(args):
        index, std, lo, hi = args
        key_noise, key_link = jax.random.split(jax.random.fold_in(key, index))
        noisy = add_gaussian_noise(key_noise, values, std**2)
        if orthogonal:
            unit = (noisy - lo) / (hi - lo)  # the quantiser's [0, 1]
            estimate = orthogonal_average(key_link, unit, snr_db, config, bler_table=table)
            average = estimate.average * (hi - lo) + lo
        else:
            offset = normalization.offset
            stretch = hi - lo  # the normalisation widened for the noise, as a factor
            sent = (noisy - offset) / stretch + offset
            estimate = over_the_air_average(key_link, sent, snr_db, config, normalization)
            average = (estimate.average - offset) * stretch + offset
        return jnp.argmax(average, axis=-1).astype(jnp.int32)

    indices = jnp.arange(dp_std.shape[0])
    return jax.lax.map(one_point, (indices, dp_std, low, high))


def private_accuracy_curve(key, values, labels, snr_db, dp_std, ranges, *, config, normalization,
                           draws):  # fmt: skip
    """Accuracy and macro-F1 when every device adds Gaussian DP noise before sending.

    Input:
        values: ``[N, K, C]`` what the devices send (softmax outputs or votes).
        dp_std: ``[P]`` per-entry std of each device's DP noise, one per privacy level.
        ranges: ``[P, 2]``: for an orthogonal ``config``, the quantiser range
            ``(low, high)`` of the noisy values; over the air, ``(0, stretch)``
            with ``stretch`` the factor that widens the normalisation's scale.
        config: :class:`~airinfer.ota.aircomp.AirCompConfig` or
            :class:`~airinfer.ota.orthogonal.OrthogonalConfig` (the latter with ``low=0, high=1``).

    Output:
        ``(accuracy [P], macro_f1 [P])``.
    """
    orthogonal = not hasattr(config, "precoding")
    table = measure_bler_table(config.link(values.shape[-1])) if orthogonal else None
    ranges = np.asarray(ranges, np.float32)
    decisions = np.asarray(
        _private_decisions(
            key,
            jnp.asarray(values),
            np.float32(snr_db),
            np.asarray(dp_std, np.float32),
            ranges[:, 0],
            ranges[:, 1],
            table,
            config=config,
            normalization=normalization,
            draws=draws,
            orthogonal=orthogonal,
        )  # fmt: skip
    )
    labels = np.asarray(labels)
    accuracy = np.mean(decisions == labels, axis=(1, 2))
    num_classes = values.shape[-1]
    f1 = [macro_f1(d, np.broadcast_to(labels, d.shape), num_classes) for d in decisions]
    return accuracy, np.asarray(f1)


def noiseless_accuracy(probs, labels):
    """Accuracy of the ensemble with perfect aggregation: argmax of the averaged softmax."""
    return float(np.mean(np.argmax(probs.mean(axis=-2), axis=-1) == labels))


def best_single_member(val_logits, test_logits, test_labels, val_labels):
    """Test accuracy of the member with the best validation accuracy, and its index."""
    val_accuracy = np.mean(np.argmax(val_logits, axis=-1) == val_labels, axis=-1)
    best = int(np.argmax(val_accuracy))
    return float(np.mean(np.argmax(test_logits[best], axis=-1) == test_labels)), best


def macro_f1(predictions, labels, num_classes):
    """Unweighted mean of the per-class F1 scores (0 for a class never predicted nor present)."""
    predictions, labels = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    scores = []
    for c in range(num_classes):
        true_positive = np.sum((predictions == c) & (labels == c))
        predicted, actual = np.sum(predictions == c), np.sum(labels == c)
        denominator = predicted + actual
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))
