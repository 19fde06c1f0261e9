"""The members' outputs as the accuracy curves take them: checked, and scored without a channel.

Every curve of :mod:`airinfer.experiments.aggregation` first checks what it is
given here: the members' outputs ``[N, K, C]`` (test samples, devices, classes;
finite, N from the labels), a sweep, the number of draws. The channel-free
references the curves are compared with live here too: the softmax of the
members' logits, the accuracy of perfect aggregation, the best single member,
and the macro-F1 of a set of decisions.
"""

import numpy as np

from airinfer.ota.encoding import check_finite

__all__ = [
    "checked_array",
    "check_draws",
    "checked_sweep",
    "checked_outputs",
    "softmax",
    "noiseless_accuracy",
    "best_single_member",
    "macro_f1",
]


def checked_array(name, array, dtype=np.float32):
    """``array`` as a host array of ``dtype``, refused if it holds NaN or inf."""
    check_finite(name, array)
    return np.asarray(array, dtype)


def check_draws(draws):
    """Refuse ``draws`` (channel draws per point) unless it is an int >= 1."""
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise ValueError(f"draws must be an int >= 1, got {draws!r}")


def checked_sweep(name, values):
    """A scalar or a 1-D sweep as ``[S]`` float32, finite."""
    values = np.atleast_1d(checked_array(name, values))
    if values.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D sweep [S], got shape {values.shape}")
    return values


def checked_outputs(name, probs, labels, num_devices=None):
    """The members' outputs ``[N, K, C]`` (finite; N = ``len(labels)``, K = ``num_devices``)."""
    probs = checked_array(name, probs)
    labels = np.asarray(labels)
    expected = f"[N={len(labels)}, K={'K' if num_devices is None else num_devices}, C]"
    if (
        probs.ndim != 3
        or probs.shape[0] != len(labels)
        or (num_devices is not None and probs.shape[1] != num_devices)
    ):
        raise ValueError(
            f"{name}: expected shape {expected} (test samples, devices, classes; N from "
            f"labels {labels.shape}), got {probs.shape}; members' outputs [K, N, C] go in "
            "as np.moveaxis(outputs, 0, 1)"
        )
    return probs, labels


def softmax(logits):
    """Softmax over the last axis, in NumPy (member logits are host arrays)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def noiseless_accuracy(probs, labels):
    """Accuracy of the ensemble with perfect aggregation: argmax of the averaged softmax.

    ``probs`` ``[N, K, C]`` (checked against ``labels`` ``[N]``) -> float.
    """
    probs, labels = checked_outputs("probs", probs, labels)
    return float(np.mean(np.argmax(probs.mean(axis=-2), axis=-1) == labels))


def best_single_member(val_logits, test_logits, test_labels, val_labels):
    """Test accuracy of the member with the best validation accuracy, and its index.

    The logits come member-first, ``[K, N_val, C]`` and ``[K, N, C]``, as
    :func:`airinfer.models.ensemble_logits` returns them.
    """
    val_logits = checked_array("val_logits", val_logits)
    test_logits = checked_array("test_logits", test_logits)
    for name, logits, labels in (
        ("val_logits", val_logits, val_labels), ("test_logits", test_logits, test_labels)
    ):  # fmt: skip
        if logits.ndim != 3 or logits.shape[1] != len(labels):
            raise ValueError(
                f"{name}: expected shape [K, N={len(labels)}, C] (members first), got "
                f"{logits.shape}"
            )
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
