"""The imports of the Sionna backend: TensorFlow and Sionna, lazily and quietly.

Everything that runs with ``backend="sionna"`` (the bridge, Sionna's
channels, the digital link) reaches TensorFlow and Sionna through
:func:`tensorflow` and :func:`sionna_phy`. TensorFlow costs seconds to import
and prints native log lines (oneDNN, missing CUDA drivers) before its logging
is configured, which no environment variable silences on the 2.21 line.
Modules that need it call :func:`tensorflow` at call time, so the JAX-only
paths (and ``airinfer list``) never pay for it.
"""

import contextlib
import functools
import os
import sys

__all__ = ["tensorflow", "sionna_phy"]

_NATIVE_LOG_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null: native code bypasses ``sys.stderr``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@functools.cache
def tensorflow():
    """Import TensorFlow and Sionna once, quietly; return the ``tensorflow`` module."""
    # Not setdefault: importing JAX already sets TF_CPP_MIN_LOG_LEVEL=1.
    os.environ.update(_NATIVE_LOG_ENV)
    with _native_stderr_silenced():
        import sionna.phy  # noqa: F401  (its import also initialises TF's runtime)
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        # Share an accelerator with JAX instead of grabbing all its memory.
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    return tf


def sionna_phy():
    """The ``sionna.phy`` package, imported quietly."""
    tensorflow()
    import sionna.phy

    return sionna.phy
