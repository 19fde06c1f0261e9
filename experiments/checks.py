"""Checks that several experiments' configs share, run before anything is trained.

A value that passes a config's checks must not fail later, after hours of
training: each check here builds (without running) what the run will build
from the fields, so that its own refusals come first, with the field named.
"""

from airinfer.experiments.config import ConfigError
from airinfer.ota.orthogonal import OrthogonalConfig

__all__ = ["NUM_CLASSES", "check_orthogonal_link"]

#: Classes of every data set the experiments use (digits, Fashion-MNIST, CIFAR-10).
NUM_CLASSES = 10


def check_orthogonal_link(bits: int, modulation: str, code_rate: float) -> None:
    """Refuse ``bits``, ``modulation`` and ``code_rate`` that no orthogonal slot can carry.

    The orthogonal scheme quantises each of the ``NUM_CLASSES`` values to
    ``bits`` bits and sends them over 5G LDPC at ``code_rate`` (in [1/5, 0.95])
    with ``modulation``; its link is built here as the run would build it.

    Raises:
        ConfigError: naming the fields (``bits``, ``code_rate``) and what is allowed.
    """
    try:
        orthogonal = OrthogonalConfig(
            channel="awgn", bits=bits, modulation=modulation, code_rate=code_rate
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    try:
        orthogonal.link(NUM_CLASSES)
    except ValueError as error:
        raise ConfigError(
            f"code_rate: {code_rate} with bits={bits} and {modulation} gives no 5G LDPC "
            f"link ({error})"
        ) from None
