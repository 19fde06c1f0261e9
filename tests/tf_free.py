"""Run a Python script in a child process where TensorFlow and Sionna are not installed.

Before anything else the child sets ``sys.modules["tensorflow"]`` and
``sys.modules["sionna"]`` to None: ``import tensorflow`` (or any submodule)
then raises ModuleNotFoundError and ``importlib.util.find_spec("tensorflow")``
returns None, exactly as when the packages are absent (orbax's path helper
probes with ``find_spec``, so a finder that raised there would fail a run that
an installation without TensorFlow passes). The script thereby proves that the
code it runs never needs them.
"""

import os
import subprocess
import sys
import textwrap

REFUSE_TENSORFLOW = textwrap.dedent(
    """
    import sys

    sys.modules["tensorflow"] = sys.modules["sionna"] = None
    """
)

# The script's last lines check that nothing slipped in some other way.
_CHECK_MODULES = textwrap.dedent(
    """
    assert not any(
        m.partition(".")[0] in ("tensorflow", "sionna") and sys.modules[m] is not None
        for m in list(sys.modules)
    )
    """
)


def run_without_tensorflow(script, *, timeout=600, env=None):
    """Run ``script`` (Python source) after the finder; return the CompletedProcess.

    The child is compile-bound: LLVM's cheap settings cut its CPU time by a fifth.
    """
    flags = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    env["XLA_FLAGS"] = f"{flags} {env.get('XLA_FLAGS', '')}"
    source = REFUSE_TENSORFLOW + textwrap.dedent(script) + _CHECK_MODULES
    return subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout, env=env
    )
