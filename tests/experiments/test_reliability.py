"""What a new user's bad input and faults meet: whole-config checks, one-line errors, resume.

A small synthetic experiment (``sturdy``) stands in for the real ones where the
runner's behaviour is tested; the real experiments' configs are checked where
their values used to fail only after training.
"""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airinfer.experiments import cli, registry, runner
from airinfer.experiments.plotting import new_figure, plot_lines, save_figure
from airinfer.experiments.registry import Experiment
from airinfer.models.cache import cache_root, load_or_build
from airinfer.models.checkpoint import MANIFEST_FILE, restore_state, save_checkpoint

STATE = {"w": np.arange(1024, dtype=np.float32)}


@dataclasses.dataclass(frozen=True)
class SturdyConfig:
    seed: int = 0
    snr_db: tuple[float, ...] = (0.0, 5.0, 10.0)
    members: int = 8
    senders: int = 4
    use_cache: bool = False

    def __post_init__(self):
        if not 1 <= self.senders <= self.members:
            raise ValueError(f"senders: {self.senders} must lie in [1, members={self.members}]")


# the point index at which run_point raises KeyboardInterrupt (a test sets it)
INTERRUPT_AT = None
CALLS = []


def _points(config):
    return [{"snr_db": snr} for snr in config.snr_db]


def _cached_state():
    def save(path, state):
        save_checkpoint(path, {"format": 1}, state)

    return load_or_build(
        cache_root() / "sturdy", lambda path: restore_state(path, STATE), lambda _: STATE, save
    )[0]


def _run_point(key, config, point):
    if INTERRUPT_AT is not None and len(CALLS) == INTERRUPT_AT:
        raise KeyboardInterrupt
    CALLS.append(point)
    scale = float(_cached_state()["w"][1]) if config.use_cache else 1.0
    noise = jax.random.normal(key, (32,)) * 10 ** (-point["snr_db"] / 20) * scale
    return {"value": jax.numpy.mean(noise**2), "senders": config.senders}


def _plot(rows, config, path):
    figure, axes = new_figure()
    plot_lines(axes, rows, x="snr_db", y="value")
    save_figure(figure, path)


STURDY = Experiment(
    name="sturdy",
    summary="a synthetic sweep for the reliability tests",
    config=SturdyConfig,
    quick={"snr_db": (0.0, 10.0)},
    points=_points,
    run_point=_run_point,
    plot=_plot,
)


@pytest.fixture
def sturdy(monkeypatch, tmp_path):
    """``sturdy`` the only known experiment; a private model cache; no interruption."""
    monkeypatch.setattr(registry, "builtin", dict)
    monkeypatch.setattr(registry, "plugins", dict)
    monkeypatch.setattr(registry, "REGISTERED", {STURDY.name: STURDY})
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    globals()["INTERRUPT_AT"] = None
    CALLS.clear()
    yield
    globals()["INTERRUPT_AT"] = None


def _main(*argv) -> int:
    return cli.main([*map(str, argv)])


def _one_error_line(capsys, status_line="airinfer: error: ") -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(status_line)]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# ---------------------------------------------------------------------- whole configs


@pytest.mark.parametrize(
    "sets",
    [["members=2", "senders=2"], ["senders=2", "members=2"]],
    ids=["members_first", "senders_first"],
)
def test_cross_field_checks_see_the_final_config_whatever_the_order(sturdy, tmp_path, sets):
    argv = ["run", "sturdy", "--out", tmp_path / "out", "--no-progress"]
    assert _main(*argv, *(item for s in sets for item in ("--set", s))) == 0
    assert runner.read_rows(tmp_path / "out")[0]["senders"] == 2


@pytest.mark.parametrize(
    "sets", [["ensemble.members=4", "num_devices=4"], ["num_devices=4", "ensemble.members=4"]]
)
def test_ota_snr_takes_a_smaller_ensemble_in_either_order(sets):
    config = runner.resolve_config(registry.load("ota_snr"), quick=True, overrides=sets)
    assert config.ensemble.members == 4 and config.num_devices == (4,)


@pytest.mark.parametrize(
    ("experiment", "item", "field"),
    [
        ("ota_snr", "bits=0", "bits"),
        ("ota_snr", "bits=64", "bits"),
        ("ota_privacy", "bits=0", "bits"),
        ("ota_privacy", "bits=64", "bits"),
        ("ota_snr", "threshold=inf", "threshold"),
        ("ota_snr", "code_rate=0.01", "code_rate"),
        ("ota_privacy", "code_rate=0.01", "code_rate"),
        ("oac_table1", "code_rate=0.01", "code_rate"),
        ("ota_snr", "seed=9223372036854775808", "seed"),
        ("ota_snr", "ensemble.seed=9223372036854775808", "ensemble.seed"),
        ("train", "seed=-1", "seed"),
        ("ota_connectivity", "threshold=nan", "threshold"),
    ],
)
def test_values_that_used_to_fail_after_training_are_refused_before_anything_is_written(
    tmp_path, capsys, experiment, item, field
):
    out = tmp_path / "out"
    assert _main("run", experiment, "--quick", "--out", out, "--set", item) == 2
    assert field in _one_error_line(capsys)
    assert not out.exists()


def test_a_folder_with_a_config_but_no_finished_point_takes_a_corrected_run(sturdy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stored = {"experiment": "sturdy", "config": {"seed": 0, "snr_db": [1.0]}, "overrides": []}
    (out / "config.json").write_text(json.dumps(stored))
    assert _main("run", "sturdy", "--out", out, "--no-progress") == 0
    (out / "results.csv").write_text("snr_db,value,senders\n")  # header only
    assert _main("run", "sturdy", "--out", out, "--no-progress", "--set", "seed=4") == 0
    assert len(runner.read_rows(out)) == 3


def test_a_folder_with_finished_points_of_another_config_is_still_refused(sturdy, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main("run", "sturdy", "--out", out, "--no-progress") == 0
    before = (out / "results.csv").read_bytes()
    assert _main("run", "sturdy", "--out", out, "--no-progress", "--set", "seed=4") == 2
    assert "different config" in _one_error_line(capsys)
    assert (out / "results.csv").read_bytes() == before


# --------------------------------------------------------------- bad files, one line


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("where", ["onto", "below"])
def test_an_out_folder_that_is_or_lies_below_a_file_is_one_line(
    sturdy, tmp_path, capsys, where, overwrite
):
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    out = file if where == "onto" else file / "run"
    argv = ["run", "sturdy", "--out", out, "--no-progress"] + (["--overwrite"] * overwrite)
    assert _main(*argv) == 2
    assert "file" in _one_error_line(capsys)
    assert file.read_text() == "keep me"


GARBLED = {
    "binary": b"\xff\xfe\x00\x9c garbage \x00\x01",
    "truncated": None,  # the good file cut in the middle of a row
    "renamed_column": None,  # a header the plot does not know
    "text_in_a_number_column": None,
}


def _garble(path, how):
    good = path.read_bytes()
    if how == "binary":
        path.write_bytes(GARBLED["binary"])
    elif how == "truncated":
        path.write_bytes(good[: good.rindex(b",")])
    elif how == "renamed_column":
        path.write_bytes(good.replace(b"value", b"vaule", 1))
    else:
        lines = good.decode().splitlines()
        cells = lines[1].split(",")
        cells[1] = "abc"
        lines[1] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("how", list(GARBLED))
def test_plot_of_a_garbled_results_file_is_one_line_and_keeps_the_figure(
    sturdy, tmp_path, capsys, how
):
    out = tmp_path / "out"
    assert _main("run", "sturdy", "--out", out, "--no-progress") == 0
    figure = (out / "sturdy.png").read_bytes()
    _garble(out / "results.csv", how)
    capsys.readouterr()
    assert _main("plot", out) == 2
    assert "results.csv" in _one_error_line(capsys)
    assert (out / "sturdy.png").read_bytes() == figure


@pytest.mark.parametrize("how", ["binary", "truncated"])
def test_run_into_a_folder_with_a_garbled_results_file_is_one_line(sturdy, tmp_path, capsys, how):
    out = tmp_path / "out"
    assert _main("run", "sturdy", "--out", out, "--no-progress") == 0
    _garble(out / "results.csv", how)
    garbled = (out / "results.csv").read_bytes()
    capsys.readouterr()
    assert _main("run", "sturdy", "--out", out, "--no-progress") == 2
    assert "results.csv" in _one_error_line(capsys)
    assert (out / "results.csv").read_bytes() == garbled


@pytest.mark.parametrize("content", ["", "snr_db,value,senders\n"], ids=["empty", "header_only"])
def test_plot_of_an_empty_results_file_is_refused_and_keeps_the_figure(
    sturdy, tmp_path, capsys, content
):
    out = tmp_path / "out"
    assert _main("run", "sturdy", "--out", out, "--no-progress") == 0
    figure = (out / "sturdy.png").read_bytes()
    (out / "results.csv").write_text(content)
    capsys.readouterr()
    assert _main("plot", out) == 2
    _one_error_line(capsys)
    assert (out / "sturdy.png").read_bytes() == figure


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    sturdy, tmp_path, capsys, monkeypatch
):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("something deep inside\nover two lines")

    monkeypatch.setattr(runner, "run", broken)
    assert _main("run", "sturdy", "--out", tmp_path / "out") == 1
    assert "--debug" in _one_error_line(capsys)
    with pytest.raises(ZeroDivisionError):
        _main("run", "sturdy", "--out", tmp_path / "out", "--debug")


def _corrupt_cache_entry():
    entry = cache_root() / "sturdy"
    files = [f for f in entry.rglob("*") if f.is_file() and f.name != MANIFEST_FILE]
    victim = max(files, key=lambda f: f.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    return entry


def test_a_bad_cache_entry_is_retrained_with_a_warning_or_stops_with_no_retrain(
    sturdy, tmp_path, capsys
):
    argv = ["run", "sturdy", "--no-progress", "--set", "use_cache=true", "--out"]
    assert _main(*argv, tmp_path / "a") == 0
    entry = _corrupt_cache_entry()
    capsys.readouterr()
    assert _main(*argv, tmp_path / "b", "--no-retrain") == 2
    assert str(entry) in _one_error_line(capsys)
    assert _main(*argv, tmp_path / "c") == 0
    warning = _one_error_line(capsys, "airinfer: warning: ")
    assert str(entry) in warning and "moved" in warning
    assert (tmp_path / "c" / "results.csv").read_bytes() == (
        tmp_path / "a" / "results.csv"
    ).read_bytes()


# ---------------------------------------------------------------------- kill and resume


@settings(
    max_examples=6, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(kill_at=st.integers(min_value=0, max_value=4))
def test_a_sweep_cut_at_a_random_point_resumes_to_the_same_bytes(sturdy, tmp_path_factory, kill_at):
    base = tmp_path_factory.mktemp("sweep")
    sets = ["--set", "snr_db=[0,2,4,6,8]", "--set", "seed=11"]
    assert _main("run", "sturdy", "--out", base / "whole", "--no-progress", *sets) == 0
    globals()["INTERRUPT_AT"] = len(CALLS) + kill_at
    assert _main("run", "sturdy", "--out", base / "cut", "--no-progress", *sets) == 130
    globals()["INTERRUPT_AT"] = None
    done = len(runner.read_rows(base / "cut")) if (base / "cut" / "results.csv").exists() else 0
    assert done == kill_at
    assert _main("run", "sturdy", "--out", base / "cut", "--no-progress", *sets) == 0
    assert (base / "cut" / "results.csv").read_bytes() == (
        base / "whole" / "results.csv"
    ).read_bytes()
    assert math.isfinite(runner.read_rows(base / "cut")[0]["value"])
