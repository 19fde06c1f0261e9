"""Channel uses and payload bits per inference of every aggregation scheme.

* Over the air (``ota_belief``, ``ota_vote``, ``ota_sign``): all devices
  share the same ``ceil(C / 2)`` channel uses (two reals per complex symbol),
  sent ``R`` times: ``R * ceil(C / 2)``, whatever the number of devices. The
  symbols are analog: no coded payload bits.
* Orthogonal digital (``orthogonal``): each of the K transmitting devices
  sends ``C * b`` info bits in its own slot at code rate ``r`` with ``m`` bits
  per QAM symbol: ``K * ceil(C b / (r m))`` channel uses and ``K C b`` payload bits.

The scheme names are those of :mod:`airinfer.ota.ensemble`. These are plain numbers;
the strategies' :class:`airinfer.strategies.cost.Cost` carries them with compute and
latency.
"""

import math

from airinfer.ota._checks import check_choice, check_positive, check_positive_int
from airinfer.ota.ensemble import OVER_THE_AIR_SCHEMES, SCHEMES

__all__ = ["channel_uses", "payload_bits"]


def channel_uses(
    scheme, num_values, num_devices, *, repetitions=1, bits=None, code_rate=None,
    bits_per_symbol=None,
):  # fmt: skip
    """Complex channel uses of one inference.

    Parameters:
        scheme: one of :data:`airinfer.ota.ensemble.SCHEMES`.
        num_values: C, values per device.
        num_devices: K, devices that transmit.
        repetitions: R, over-the-air repetitions of the block.
        bits, code_rate, bits_per_symbol: quantiser bits per value, code rate
            ``k/n`` in (0, 1] and bits per QAM symbol; required for ``orthogonal``.

    Output:
        int.
    """
    check_choice("scheme", scheme, SCHEMES)
    check_positive_int("num_values", num_values)
    check_positive_int("num_devices", num_devices)
    check_positive_int("repetitions", repetitions)
    if scheme in OVER_THE_AIR_SCHEMES:
        return repetitions * -(-num_values // 2)
    check_positive_int("bits", bits)
    check_positive("code_rate", code_rate)
    if code_rate > 1:
        raise ValueError(f"code_rate must be in (0, 1], got {code_rate!r}")
    check_positive_int("bits_per_symbol", bits_per_symbol)
    # Exact rational ceiling: code rates such as 1/3 are not exact floats.
    per_device = math.ceil(round(num_values * bits / (code_rate * bits_per_symbol), 9))
    return num_devices * per_device


def payload_bits(scheme, num_values, num_devices, *, bits=None):
    """Info bits sent before coding in one inference: 0 over the air (analog), ``K C b`` orthogonal.

    Parameters as in :func:`channel_uses`; ``bits`` is required for ``orthogonal``.

    Output:
        int.
    """
    check_choice("scheme", scheme, SCHEMES)
    check_positive_int("num_values", num_values)
    check_positive_int("num_devices", num_devices)
    if scheme in OVER_THE_AIR_SCHEMES:
        return 0
    check_positive_int("bits", bits)
    return num_devices * num_values * bits
