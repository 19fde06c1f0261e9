"""Fixtures shared by the whole suite, built at most once per test session.

Most of the suite's time goes to XLA compiling programs, and some to training
small models. What several packages use is built here once: the digits data
set and a trained ensemble of compact CNNs. Session fixtures hand out nothing a
test could change for the next one: the data set's arrays are read-only, and
models come out as fresh copies of the trained weights (JAX arrays themselves
are immutable).
"""

import copy
import dataclasses
import os

# The suite is compile-bound: most programs run once, on tiny inputs. LLVM at
# optimisation level 0, without its expensive passes, compiles them with a
# fifth to a third less CPU time (measured on the training, JSCC and AirComp
# tests); they run slower, but no tolerance depends on it. Set before JAX
# starts its CPU backend; flags a user already set come later and win.
os.environ["XLA_FLAGS"] = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    + os.environ.get("XLA_FLAGS", "")
)

import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.models.datasets import load_dataset
from airinfer.models.ensemble import Ensemble, EnsembleConfig
from airinfer.models.train import TrainConfig, train_ensemble
from airinfer.models.zoo import ModelConfig

#: The shared CNN ensemble: four width-0.5 CNNs on 8x8 digits (split points conv1,
#: conv2, hidden), bagging, ten epochs of batch 64: about 0.95 test accuracy each
#: (tests/models/test_train.py checks >= 0.93). Member 0 is the strategies' classifier.
DIGITS_CNN = ModelConfig("cnn", (8, 8, 1), 10, width=0.5)
DIGITS_ENSEMBLE = EnsembleConfig(DIGITS_CNN, members=4, diversity="bagging")
DIGITS_TRAINING = TrainConfig(epochs=10, batch_size=64)


def normal(seed, shape):
    """Standard normal float32 test data of ``shape``, drawn by NumPy, as a JAX array.

    Test inputs need no compiled sampler: ``jax.random.normal`` costs an XLA
    compilation for every new shape (about a second on 2 cores).
    """
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def complex_normal(seed, shape):
    """CN(0, 1) complex64 test data of ``shape`` (unit energy per entry), drawn by NumPy."""
    re, im = np.random.default_rng(seed).standard_normal((2, *shape), dtype=np.float32)
    return jnp.asarray((re + 1j * im) / np.sqrt(2.0), jnp.complex64)


DATASET_ARRAYS = (
    "train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels",
    "mean", "std",
)  # fmt: skip


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits split with seed 0 (embedded: no download); arrays read-only."""
    dataset = load_dataset("digits", seed=0)
    for name in DATASET_ARRAYS:
        getattr(dataset, name).setflags(write=False)
    return dataset


@pytest.fixture(scope="session")
def trained_digits_ensemble(digits):
    """:data:`DIGITS_ENSEMBLE` trained once per session: ``(ensemble, report)``.

    Shared: never change it. Tests take :func:`digits_ensemble` or
    :func:`digits_cnn`, fixtures of a wider scope :func:`new_digits_cnn`.
    """
    return train_ensemble(digits, DIGITS_ENSEMBLE, DIGITS_TRAINING)


@pytest.fixture
def digits_ensemble(trained_digits_ensemble):
    """A copy of the trained :data:`DIGITS_ENSEMBLE` and of its training report."""
    ensemble, report = trained_digits_ensemble
    groups = tuple(
        dataclasses.replace(group, state=jax.tree.map(lambda leaf: leaf, group.state))
        for group in ensemble.groups
    )
    return Ensemble(groups), copy.deepcopy(report)


@pytest.fixture(scope="session")
def new_digits_cnn(trained_digits_ensemble):
    """``new_digits_cnn()``: a fresh copy of member 0 of the shared ensemble, for any scope."""
    ensemble, _ = trained_digits_ensemble
    return lambda: ensemble.member(0)


@pytest.fixture
def digits_cnn(new_digits_cnn):
    """A fresh copy of the strategies' classifier: member 0 of :data:`DIGITS_ENSEMBLE`."""
    return new_digits_cnn()
