"""Accuracy of an ensemble whose members' outputs are aggregated over a channel.

Shared by the over-the-air experiments. A sweep curve is one jitted call: the
SNR points run through ``jax.lax.map`` (it works across the Sionna bridge,
unlike ``vmap``) and, at each point, all channel draws of all test samples
form one batch, so there is no Python loop over samples or draws.
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from ota.aircomp import over_the_air_average
from ota.connectivity import participation_mask
from ota.encoding import Normalization, one_hot_votes, sign_votes
from ota.orthogonal import measure_bler_table, orthogonal_average

__all__ = [
    "OTA_PAYLOADS",
    "softmax",
    "payload",
    "curve_key",
    "ota_accuracy_curve",
    "orthogonal_accuracy_curve",
    "noiseless_accuracy",
    "best_single_member",
    "macro_f1",
]

# Over-the-air scheme -> what each device sends.
OTA_PAYLOADS = {"ota_belief": "softmax", "ota_vote": "one_hot", "ota_sign": "sign"}


def softmax(logits):
    """Softmax over the last axis, in NumPy (member logits are host arrays)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def payload(scheme, probs):
    """What the devices of an over-the-air ``scheme`` send, and its normalisation.

    ``probs`` ``[..., K, C]`` softmax outputs -> (values ``[..., K, C]``, :class:`Normalization`).
    """
    num_classes = probs.shape[-1]
    kind = OTA_PAYLOADS[scheme]
    if kind == "softmax":
        return probs, Normalization.simplex(num_classes)
    if kind == "one_hot":
        return one_hot_votes(probs), Normalization.simplex(num_classes)
    return sign_votes(probs), Normalization.signs(num_classes)


def curve_key(seed, *parts):
    """A key for one curve from the run's seed and names, independent of sweep order."""
    tag = zlib.crc32("/".join(str(p) for p in parts).encode())
    return jax.random.fold_in(jax.random.key(seed), tag)


@functools.partial(jax.jit, static_argnames=("scheme", "config", "draws"))
def _correct_counts(key, probs, labels, snr_db, connectivity, *, scheme, config, draws):
    """Correct decisions at each SNR point: ``[S]`` int32 counts over ``draws x N`` inferences."""
    values, normalization = payload(scheme, probs)  # [N, K, C]
    values = jnp.broadcast_to(values, (draws, *values.shape))

    def one_point(args):
        index, snr, p = args
        point_key = jax.random.fold_in(key, index)
        key_link, key_join = jax.random.split(point_key)
        participation = participation_mask(key_join, values.shape[:2], values.shape[2], p)
        estimate = over_the_air_average(key_link, values, snr, config, normalization, participation)
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
        snr_db: ``[S]`` Es/N0 per complex symbol in dB (see :mod:`ota.aircomp`).
        scheme: ``"ota_belief"``, ``"ota_vote"`` or ``"ota_sign"``.
        config: :class:`ota.aircomp.AirCompConfig`.
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
    :class:`ota.orthogonal.OrthogonalConfig` in ``"abstraction"`` mode: the
    block-error table of its link is measured once (and cached) before the
    jitted sweep.
    """
    snr_db = np.atleast_1d(np.asarray(snr_db, np.float32))
    table = measure_bler_table(config.link(probs.shape[-1]))
    counts = _orthogonal_correct_counts(
        key, jnp.asarray(probs), jnp.asarray(labels), snr_db, table, config=config, draws=draws
    )
    return np.asarray(counts) / (draws * len(labels))


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
