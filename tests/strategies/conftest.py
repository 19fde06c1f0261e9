"""Shared fixtures of the strategy tests: digits, a briefly trained CNN, its pixel format.

Session-scoped, so the CNN is trained once per test run (about 10 s on a
2-core CPU). Other strategy test files may use them.
"""

import jax
import numpy as np
import pytest

from airinfer.models.datasets import load_dataset
from airinfer.models.ensemble import EnsembleConfig
from airinfer.models.train import TrainConfig, train_ensemble
from airinfer.models.zoo import ModelConfig
from airinfer.phy.source_coding import PixelFormat

#: The test CNN: width 0.5 on 8x8 digits (split points conv1, conv2, hidden).
DIGITS_CNN = ModelConfig("cnn", (8, 8, 1), 10, width=0.5)


def accuracy(logits, labels) -> float:
    """Fraction of ``argmax(logits) == labels``."""
    return float(np.mean(np.asarray(logits).argmax(-1) == np.asarray(labels)))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits, split with seed 0 (embedded: no download)."""
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_cnn(digits):
    """:data:`DIGITS_CNN` trained for 6 epochs (about 0.95 test accuracy)."""
    config = EnsembleConfig(DIGITS_CNN, members=1, diversity="init")
    ensemble, _ = train_ensemble(digits, config, TrainConfig(epochs=6, batch_size=64, seed=0))
    return ensemble.member(0)


@pytest.fixture(scope="session")
def digits_pixels(digits):
    """The :class:`PixelFormat` of ``digits`` (pixels 0..16)."""
    return PixelFormat.for_dataset(digits)


@pytest.fixture(scope="session")
def digits_batch(digits):
    """The first 128 test images ``[128, 8, 8, 1]`` and labels ``[128]``."""
    return jax.numpy.asarray(digits.test_images[:128]), digits.test_labels[:128]


@pytest.fixture
def key():
    return jax.random.key(2024)
