"""Fixtures shared by the whole suite, built at most once per test session.

Most of the suite's time goes to XLA compiling programs, and some to training
small models. What several packages use is built here once: the digits data
set and a trained ensemble of compact CNNs. Session fixtures hand out nothing a
test could change for the next one: the data set's arrays are read-only, and
models come out as fresh copies of the trained weights (JAX arrays themselves
are immutable).
"""

import contextlib
import copy
import dataclasses
import os
import pathlib
import pickle
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

try:
    import fcntl
except ImportError:  # not POSIX: every process builds its own shared artefacts
    fcntl = None

from airinfer.models.datasets import load_dataset
from airinfer.models.ensemble import Ensemble, EnsembleConfig
from airinfer.models.train import TrainConfig, train_ensemble
from airinfer.models.zoo import ModelConfig

# The suite is compile-bound: most programs run once, on tiny inputs. LLVM at
# optimisation level 0, without its expensive passes, compiles them with a
# fifth to a third less CPU time (measured on the training, JSCC and AirComp
# tests); they run slower, but no tolerance depends on it. Tests that run long
# programs (LDPC decoding of many blocks, codecs over the digital link, model
# inversion) are marked ``xla_optimized`` and compile with XLA's defaults: for
# them slow code costs more than the cheaper compilation saves (the JPEG cloud
# test: 70 instead of 112 CPU-seconds). The level is JAX's per-compilation
# setting, chosen before each test's setup (its fixtures compile with it); a
# user's own XLA_FLAGS optimisation level is left alone.
_CHOOSE_OPTIMISATION = "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")


_full_optimisation = False


def _optimise(full: bool):
    global _full_optimisation
    _full_optimisation = full
    if _CHOOSE_OPTIMISATION:
        jax.config.update("jax_disable_most_optimizations", not full)
        # and Python subprocesses a test starts compile as it does (a run
        # resumed in a child must round as the parent would)
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "0" if full else "1"


@contextlib.contextmanager
def _optimised():
    """Full optimisation inside, the level of the test that asked outside."""
    before = _full_optimisation
    _optimise(True)
    try:
        yield
    finally:
        _optimise(before)


_optimise(False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _optimise(item.get_closest_marker("xla_optimized") is not None)


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


#: The environment variable naming this run's shared folder: made by the process
#: that starts the run (pytest itself, or xdist's controller, whose workers
#: inherit it) and removed when the run ends, so nothing outlives the run.
SHARED_DIR_ENV = "AIRINFER_TEST_SHARED_DIR"


def _cache_options(shared):
    """JAX's persistent compilation cache in the run's folder, for every program."""
    return {
        "jax_compilation_cache_dir": os.path.join(shared, "jax"),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }


def pytest_configure(config):
    """Share compiled programs between the run's processes, through a fresh folder.

    The workers of ``pytest -n`` compile many identical programs, and so do
    tests that build their jitted functions anew. JAX's persistent compilation
    cache stores every executable (no minimum compile time or size) in the
    run's shared folder; the next compilation of the same program, in any
    process of the run (the subprocesses tests start included), loads it. The
    folder is new for every run: no test depends on what an earlier run compiled.
    """
    if not hasattr(config, "workerinput"):  # the process that starts the run
        config._airinfer_shared_dir = tempfile.mkdtemp(prefix="airinfer-tests-")
        os.environ[SHARED_DIR_ENV] = config._airinfer_shared_dir
    shared = os.environ.get(SHARED_DIR_ENV)
    if shared:
        for name, value in _cache_options(shared).items():
            jax.config.update(name, value)
            # and the Python subprocesses tests start (a killed training, a run
            # without TensorFlow) share it: JAX reads its options from the environment
            os.environ[name.upper()] = str(value)


def pytest_unconfigure(config):
    shared = getattr(config, "_airinfer_shared_dir", None)
    if shared:
        shutil.rmtree(shared, ignore_errors=True)
        for name in (SHARED_DIR_ENV, *(option.upper() for option in _cache_options(shared))):
            os.environ.pop(name, None)


def built_once_per_run(name, build):
    """``build()``, called by one process of the run; the others load its pickle.

    The first process to ask takes a lock, builds and stores the result in the
    run's shared folder; a process that asks while it builds waits for it.
    Without a shared folder (or file locks), every process builds its own.
    """
    shared = os.environ.get(SHARED_DIR_ENV)
    if not shared or fcntl is None:
        return build()
    path = pathlib.Path(shared) / f"{name}.pickle"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            return pickle.loads(path.read_bytes())
        artefact = build()
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(artefact))
        partial.replace(path)
        return artefact


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
    """:data:`DIGITS_ENSEMBLE` trained once per run: ``(ensemble, report)``.

    One process of the run trains it (the others load its weights and report,
    bit for bit). Shared: never change it. Tests take :func:`digits_ensemble` or
    :func:`digits_cnn`, fixtures of a wider scope :func:`new_digits_cnn`.
    """

    def train():
        with _optimised():  # 170 training steps: code speed pays
            return train_ensemble(digits, DIGITS_ENSEMBLE, DIGITS_TRAINING)

    return built_once_per_run("digits-ensemble", train)


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
