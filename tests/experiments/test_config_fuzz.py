"""Fuzzing every experiment's config fields through the command line (property-based).

Random values, well-formed or not, go to random fields of random experiments:
each is either refused with one line naming the field, exit status 2 and no
file written, or accepted as a config whose values cannot fail later (finite,
seeds and integers in range, points to run). The slow variant runs random
small valid configs of a cheap experiment to the end.
"""

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airinfer.experiments import cli, registry, runner
from airinfer.experiments.config import SEED_LIMIT, ConfigError, leaf_keys, to_dict

EXPERIMENTS = sorted(registry.available())
FIELDS = [(name, key) for name in EXPERIMENTS for key in leaf_keys(registry.load(name).config)]

# text a user might type: numbers at and past every edge, words, broken lists
NASTY = [
    "", "abc", "0", "-1", "1", "2", "1.5", "-0.5", "0.01", "1e-300", "1e308", "1e400",
    "nan", "inf", "-inf", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "true", "none", "[", "[1,", "1,,2", "[]", "0,0", "-5,5", "[nan]", "[inf,1]",
    "'quoted'", "é", "awgn", "rayleigh", "digits", "adaptive", "64", "17", "4096",
]  # fmt: skip
# the default suite draws the same examples every run; the slow variant draws new ones
SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _leaves(data, prefix=""):
    for name, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield prefix + name, value


def _accepted_config_cannot_fail_later(config):
    for key, value in _leaves(to_dict(config)):
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, float):
                assert not math.isnan(item), (key, item)
                assert math.isfinite(item) or key.endswith("epsilon"), (key, item)
            if isinstance(item, int) and not isinstance(item, bool):
                assert -(2**63) <= item < 2**63, (key, item)
                if key.split(".")[-1] == "seed":
                    assert 0 <= item < SEED_LIMIT, (key, item)


RANDOM_VALUES = {
    "field": st.sampled_from(FIELDS),
    "text": st.one_of(st.sampled_from(NASTY), st.text(max_size=12)),
    "quick": st.booleans(),
}


@SETTINGS
@given(**RANDOM_VALUES)
def test_a_random_value_of_a_random_field_is_refused_in_one_line_or_cannot_fail_later(
    tmp_path_factory, capsys, field, text, quick
):
    _refused_in_one_line_or_cannot_fail_later(tmp_path_factory, capsys, field, text, quick)


@pytest.mark.slow
@settings(SETTINGS, max_examples=400, derandomize=False)
@given(**RANDOM_VALUES)
def test_many_random_values_are_refused_in_one_line_or_cannot_fail_later(
    tmp_path_factory, capsys, field, text, quick
):
    _refused_in_one_line_or_cannot_fail_later(tmp_path_factory, capsys, field, text, quick)


def _refused_in_one_line_or_cannot_fail_later(tmp_path_factory, capsys, field, text, quick):
    name, key = field
    experiment = registry.load(name)
    try:
        config = runner.resolve_config(experiment, quick=quick, overrides=[f"{key}={text}"])
        # what run() checks before it writes anything (some checks need the model)
        points = experiment.points(config)
        if not points:
            raise ConfigError("no points")  # run() refuses it so, before writing
    except ConfigError:
        out = tmp_path_factory.mktemp("fuzz") / "out"
        argv = ["run", name, "--out", str(out), "--set", f"{key}={text}"]
        assert cli.main(argv + ["--quick"] * quick) == 2
        err = capsys.readouterr().err
        assert err.startswith("airinfer: error: ") and err.count("\n") == 1, err
        assert key.split(".")[-1] in err, err
        assert not out.exists()
        return
    _accepted_config_cannot_fail_later(config)


@SETTINGS
@given(name=st.sampled_from(EXPERIMENTS), data=st.data())
def test_fields_set_in_any_order_give_the_same_config_or_the_same_refusal(name, data):
    experiment = registry.load(name)
    defaults = to_dict(runner.resolve_config(experiment, quick=True))
    keys = data.draw(
        st.lists(st.sampled_from(leaf_keys(experiment.config)), max_size=3, unique=True)
    )
    flat = dict(_leaves(defaults))
    items = []
    for key in keys:
        value = flat[key]
        if isinstance(value, bool):
            value = not value
        elif isinstance(value, int):
            value = data.draw(st.integers(min_value=max(0, value - 3), max_value=value + 3))
        elif isinstance(value, tuple) and value and all(type(v) is int for v in value):
            value = tuple(v + data.draw(st.integers(-1, 1)) for v in value)
        items.append(f"{key}={list(value) if isinstance(value, tuple) else value}")
    order = data.draw(st.permutations(items))

    def outcome(overrides):
        try:
            return runner.resolve_config(experiment, quick=True, overrides=overrides)
        except ConfigError:
            return "refused"

    assert outcome(items) == outcome(order)


@pytest.mark.slow
@settings(max_examples=3, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    bitrates=st.lists(st.floats(0.1, 100.0), min_size=1, max_size=3, unique=True),
)
def test_random_small_valid_configs_of_a_cheap_experiment_run_to_the_end(
    tmp_path_factory, seed, bitrates
):
    out = tmp_path_factory.mktemp("valid") / "out"
    overrides = [f"seed={seed}", f"bitrates_mbps={','.join(map(repr, bitrates))}"]
    result = runner.run("latency_bitrate", out_dir=out, overrides=overrides, quick=True,
                        progress=False)  # fmt: skip
    assert result.computed == len(result.rows) > 0
    assert dataclasses.is_dataclass(registry.load("latency_bitrate").config())
