"""Shared fixtures of the strategy tests: the digits' pixel format and a test batch.

The data set (``digits``) and the trained CNN (``digits_cnn``: member 0 of the
session's ensemble, a fresh copy per test; ``new_digits_cnn()`` for fixtures of
a wider scope) come from tests/conftest.py.
"""

import jax
import numpy as np
import pytest

from airinfer.phy.source_coding import PixelFormat


def accuracy(logits, labels) -> float:
    """Fraction of ``argmax(logits) == labels``."""
    return float(np.mean(np.asarray(logits).argmax(-1) == np.asarray(labels)))


@pytest.fixture(scope="session")
def digits_pixels(digits):
    """The :class:`PixelFormat` of ``digits`` (pixels 0..16)."""
    return PixelFormat.for_dataset(digits)


@pytest.fixture(scope="session")
def digits_batch(digits):
    """The first 128 test images ``[128, 8, 8, 1]`` and labels ``[128]`` (read-only)."""
    return jax.numpy.asarray(digits.test_images[:128]), digits.test_labels[:128]


@pytest.fixture
def key():
    return jax.random.key(2024)
