"""Dotted overrides checked against field types, and the JSON round trip."""

import dataclasses
import json
from typing import Literal, Optional

import pytest

from airinfer.experiments.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    leaf_keys,
    to_dict,
    to_json_dict,
)


@dataclasses.dataclass(frozen=True)
class Channel:
    kind: Literal["awgn", "rayleigh"] = "awgn"
    rician_k: float | None = None
    taps: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    snr_db: tuple[float, ...] = (0.0, 10.0)
    schemes: tuple[str, ...] = ("qpsk",)
    coded: bool = False
    name: str = "run"
    bits_per_symbol: Literal[2, 4, 6] = 2
    max_errors: Optional[int] = 100  # noqa: UP045 (the typing spelling must work too)
    window: tuple[int, float] = (1, 0.5)
    channel: Channel = Channel()


@pytest.mark.parametrize(
    ("item", "field", "expected"),
    [
        ("seed=42", "seed", 42),
        ("seed= -3 ", "seed", -3),
        ("snr_db=[0,5,10]", "snr_db", (0.0, 5.0, 10.0)),
        ("snr_db=-5, 2.5,1e1", "snr_db", (-5.0, 2.5, 10.0)),
        ("snr_db=7", "snr_db", (7.0,)),
        ("snr_db=[]", "snr_db", ()),
        ("schemes=qpsk,16qam", "schemes", ("qpsk", "16qam")),
        ("schemes=['qpsk', \"16qam\"]", "schemes", ("qpsk", "16qam")),
        ("coded=true", "coded", True),
        ("coded=No", "coded", False),
        ("coded=1", "coded", True),
        ("name=a=b", "name", "a=b"),
        ("name='quoted'", "name", "quoted"),
        ("bits_per_symbol=4", "bits_per_symbol", 4),
        ("max_errors=none", "max_errors", None),
        ("max_errors=5", "max_errors", 5),
        ("window=(3, 0.25)", "window", (3, 0.25)),
    ],
)
def test_each_type_parses(item, field, expected):
    config = apply_overrides(Config(), [item])
    assert getattr(config, field) == expected
    assert type(getattr(config, field)) is type(expected)


def test_nested_fields_and_order():
    config = apply_overrides(
        Config(), ["channel.kind=rayleigh", "channel.rician_k=3", "seed=1", "seed=2"]
    )
    assert config.channel == Channel(kind="rayleigh", rician_k=3.0)
    assert config.seed == 2  # the later item wins
    assert Config().channel.kind == "awgn"  # the original is untouched


def test_mapping_overrides_take_python_values_or_text():
    config = apply_overrides(Config(), {"snr_db": [0, 3], "channel.kind": "rayleigh", "seed": "9"})
    assert config.snr_db == (0.0, 3.0) and config.channel.kind == "rayleigh" and config.seed == 9
    with pytest.raises(ConfigError, match=r"^override seed=1.5: expected int, got 1.5$"):
        apply_overrides(Config(), {"seed": 1.5})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "snr_db=abc",
            "--set snr_db=abc: expected comma-separated float values (a,b,c or [a,b,c]), got 'abc'",
        ),
        ("seed=1.5", "--set seed=1.5: expected int, got '1.5'"),
        ("coded=maybe", "--set coded=maybe: expected bool (true/false), got 'maybe'"),
        (
            "channel.kind=rice",
            "--set channel.kind=rice: expected one of 'awgn', 'rayleigh', got 'rice'",
        ),
        ("bits_per_symbol=3", "--set bits_per_symbol=3: expected one of 2, 4, 6, got '3'"),
        ("max_errors=lots", "--set max_errors=lots: expected int or none, got 'lots'"),
        ("window=1", "--set window=1: expected 2 comma-separated values (int, float), got '1'"),
        ("channel.rician_k=big", "--set channel.rician_k=big: expected float or none, got 'big'"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(item, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(Config(), [item])
    assert str(error.value) == message


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as error:
        apply_overrides(Config(), ["snrdb=3"])
    message = str(error.value)
    assert message.startswith(
        "--set snrdb=3: unknown key 'snrdb' (did you mean 'snr_db'?); valid keys: seed, "
    )
    assert "channel.kind" in message and "\n" not in message
    with pytest.raises(
        ConfigError, match=r"^--set channel.kid=awgn: unknown key 'channel.kid' .*channel.kind"
    ):
        apply_overrides(Config(), ["channel.kid=awgn"])


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ("seed", r"^--set seed: expected key=value"),
        ("=3", r"^--set =3: expected key=value"),
        ("seed.x=1", r"^--set seed.x=1: 'seed' has no sub-fields"),
        ("channel=awgn", r"^--set channel=awgn: 'channel' is a group; set one of channel.kind, "),
    ],
)
def test_malformed_items_name_the_key(item, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(Config(), [item])


def test_leaf_keys_walk_nested_configs():
    assert leaf_keys(Config)[-3:] == ["channel.kind", "channel.rician_k", "channel.taps"]


def test_json_round_trip():
    config = apply_overrides(
        Config(), ["snr_db=[-1.5,2]", "channel.kind=rayleigh", "max_errors=none"]
    )
    data = json.loads(json.dumps(to_dict(config)))
    assert data == to_json_dict(config)
    assert data["channel"] == {"kind": "rayleigh", "rician_k": None, "taps": 1}
    assert from_dict(Config, data) == config
    assert from_dict(Config, {"seed": 4}) == Config(seed=4)  # missing fields take defaults


def test_from_dict_checks_fields():
    with pytest.raises(ConfigError, match=r"^field channel.taps: expected int, got 'x'$"):
        from_dict(Config, {"channel": {"taps": "x"}})
    with pytest.raises(ConfigError, match=r"^field channel.colour: unknown key 'channel.colour'"):
        from_dict(Config, {"channel": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"^field coded: expected bool \(true/false\), got 1$"):
        from_dict(Config, {"coded": 1})
    # A string that a str-holding field could take is kept as it is, not parsed.
    assert from_dict(Config, {"name": "none"}).name == "none"


def test_string_annotations_resolve():
    namespace = {}
    exec(
        "from __future__ import annotations\n"
        "import dataclasses\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class Late:\n"
        "    snr_db: tuple[float, ...] = (0.0,)\n",
        namespace,
    )
    assert apply_overrides(namespace["Late"](), ["snr_db=1,2"]).snr_db == (1.0, 2.0)


@dataclasses.dataclass(frozen=True)
class Checked:
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got {self.low} >= {self.high}")


@dataclasses.dataclass(frozen=True)
class Outer:
    band: Checked = Checked()


def test_the_configs_own_checks_are_reported_with_the_item():
    with pytest.raises(
        ConfigError, match=r"^--set band.low=2: low must be below high, got 2.0 >= 1.0$"
    ):
        apply_overrides(Outer(), ["band.low=2"])
    with pytest.raises(ConfigError, match=r"^band: low must be below high"):
        from_dict(Outer, {"band": {"low": 5}})


def test_module_example_runs():
    import doctest

    import airinfer.experiments.config

    result = doctest.testmod(airinfer.experiments.config)
    assert result.attempted > 0 and result.failed == 0
