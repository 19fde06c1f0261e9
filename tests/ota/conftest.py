import jax
import numpy as np
import pytest


def member_probs(num_samples, num_devices, num_classes, seed=0, lean=1.5):
    """Softmax outputs of synthetic members that lean towards the label: ``[N, K, C]``, labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    logits = rng.normal(size=(num_samples, num_devices, num_classes))
    logits += lean * np.eye(num_classes)[labels][:, None, :]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return probs.astype(np.float32), labels


@pytest.fixture
def key():
    return jax.random.key(1234)
