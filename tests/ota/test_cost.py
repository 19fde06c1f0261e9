"""Channel uses and payload bits per inference, exact for known configurations; the scheme names."""

import pytest

from airinfer import ota


@pytest.mark.parametrize(
    "scheme, num_values, num_devices, repetitions, expected",
    [
        ("ota_belief", 10, 16, 1, 5),
        ("ota_vote", 10, 4, 1, 5),
        ("ota_sign", 11, 20, 3, 18),  # ceil(11/2) = 6, three times
        ("ota_belief", 1, 1, 1, 1),
    ],
)
def test_over_the_air_channel_uses(scheme, num_values, num_devices, repetitions, expected):
    assert ota.channel_uses(scheme, num_values, num_devices, repetitions=repetitions) == expected
    assert ota.payload_bits(scheme, num_values, num_devices) == 0


@pytest.mark.parametrize(
    "num_values, num_devices, bits, rate, modulation, expected_uses",
    [
        (10, 16, 8, 0.5, "qpsk", 16 * 80),  # 80 bits / (1/2 * 2)
        (10, 20, 8, 1 / 3, "16qam", 20 * 60),  # 80 / (4/3) = 60
        (10, 4, 4, 0.5, "64qam", 4 * 14),  # 40 / 3 = 13.3 -> 14
        (3, 2, 5, 0.75, "qpsk", 2 * 10),  # 15 / 1.5 = 10
    ],
)
def test_orthogonal_channel_uses(num_values, num_devices, bits, rate, modulation, expected_uses):
    config = ota.OrthogonalConfig(bits=bits, code_rate=rate, modulation=modulation)
    uses = ota.channel_uses(
        "orthogonal", num_values, num_devices, bits=bits, code_rate=rate,
        bits_per_symbol=config.bits_per_symbol,
    )  # fmt: skip
    assert uses == expected_uses
    assert ota.payload_bits("orthogonal", num_values, num_devices, bits=bits) == (
        num_devices * num_values * bits
    )
    # The simulated link occupies exactly that many symbols per device.
    link = config.link(num_values)
    assert link.k == num_values * bits
    assert num_devices * link.num_symbols == expected_uses


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(scheme="analog"), "scheme"),
        (dict(num_devices=0), "num_devices"),
        (dict(num_values=0), "num_values"),
        (dict(repetitions=0), "repetitions"),
        (dict(scheme="orthogonal", bits=8, code_rate=1.5, bits_per_symbol=2), "code_rate"),
        (dict(scheme="orthogonal", code_rate=0.5, bits_per_symbol=2), "bits"),
    ],
)
def test_bad_cost_arguments(kwargs, name):
    args = dict(scheme="ota_belief", num_values=10, num_devices=4) | kwargs
    scheme, num_values, num_devices = (
        args.pop("scheme"),
        args.pop("num_values"),
        args.pop("num_devices"),
    )
    with pytest.raises(ValueError, match=name):
        ota.channel_uses(scheme, num_values, num_devices, **args)
