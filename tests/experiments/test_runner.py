"""The sweep runner on a tiny synthetic experiment: files, resume, conflicts, keys."""

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from airinfer.experiments import runner
from airinfer.experiments.config import ConfigError
from airinfer.experiments.registry import Experiment

RESULT_FILES = {"config.json", "results.csv", "meta.json", "tiny.png"}
NUM_SAMPLES = 64  # per point: enough for a non-trivial mean, small enough to be instant


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    seed: int = 0
    snr_db: tuple[float, ...] = (0.0, 5.0, 10.0)
    schemes: tuple[str, ...] = ("a", "b")


class Tiny:
    """A synthetic experiment that counts its calls and can fail on one point, once."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[dict] = []
        self.keys: dict[tuple, np.ndarray] = {}
        self.fail_at = fail_at

    def points(self, config):
        return [
            {"scheme": scheme, "snr_db": snr} for scheme in config.schemes for snr in config.snr_db
        ]

    def run_point(self, key, config, point):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            self.fail_at = None
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(point)
        self.keys[(point["scheme"], point["snr_db"])] = np.asarray(jax.random.key_data(key))
        noise = jax.random.normal(key, (NUM_SAMPLES,)) * 10 ** (-point["snr_db"] / 20)
        return {"mse": jax.numpy.mean(noise**2), "ci": np.float32(0.1), "n": NUM_SAMPLES}

    def plot(self, rows, config, path):
        from airinfer.experiments.plotting import new_figure, plot_lines, save_figure

        figure, axes = new_figure()
        plot_lines(axes, rows, x="snr_db", y="mse", by=("scheme",), ci="ci")
        save_figure(figure, path)

    def experiment(self) -> Experiment:
        return Experiment(
            name="tiny",
            summary="a test sweep",
            config=TinyConfig,
            quick={"snr_db": (0.0,)},
            points=self.points,
            run_point=self.run_point,
            plot=self.plot,
        )


def _run(out_dir, tiny=None, **kwargs):
    tiny = tiny or Tiny()
    return runner.run(tiny.experiment(), out_dir=out_dir, progress=False, **kwargs), tiny


def _snapshot(directory) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_run_writes_the_four_files_and_a_tidy_csv(tmp_path):
    result, tiny = _run(tmp_path / "out", overrides=["seed=3"])
    out = tmp_path / "out"
    assert {path.name for path in out.iterdir()} == RESULT_FILES  # no temporary files left
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header == "scheme,snr_db,mse,ci,n"
    rows = runner.read_rows(out)
    assert [(row["scheme"], row["snr_db"]) for row in rows] == [
        ("a", 0.0),
        ("a", 5.0),
        ("a", 10.0),
        ("b", 0.0),
        ("b", 5.0),
        ("b", 10.0),
    ]
    assert all(isinstance(row["mse"], float) and isinstance(row["n"], int) for row in rows)
    assert rows[0]["mse"] > rows[2]["mse"]  # noise power falls with SNR
    assert result.rows == rows and result.computed == 6 and result.resumed == 0
    assert (out / "tiny.png").read_bytes().startswith(b"\x89PNG")

    stored = json.loads((out / "config.json").read_text())
    assert stored == {
        "experiment": "tiny",
        "overrides": ["seed=3"],
        "quick": False,
        "config": {"seed": 3, "snr_db": [0.0, 5.0, 10.0], "schemes": ["a", "b"]},
    }
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 3
    assert meta["versions"]["jax"] == jax.__version__
    assert set(meta["versions"]) >= {
        "python",
        "jax",
        "jaxlib",
        "flax",
        "tensorflow",
        "sionna-no-rt",
        "numpy",
    }
    assert meta["jax_backend"] == jax.default_backend() and meta["jax_devices"]
    assert meta["first_point_s"] <= meta["wall_time_s"]
    assert meta["points_computed"] == 6 and meta["points_resumed"] == 0
    assert meta["started_utc"].endswith("+00:00")
    assert os.uname().nodename not in json.dumps(meta)


def test_quick_and_overrides_are_applied_in_order_and_recorded(tmp_path):
    result, tiny = _run(tmp_path, quick=True, overrides=["schemes=[b]"])
    assert tiny.calls == [{"scheme": "b", "snr_db": 0.0}]
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["quick"] is True and stored["overrides"] == ["schemes=[b]"]
    assert stored["config"]["snr_db"] == [0.0]


def test_interrupted_run_resumes_only_missing_points(tmp_path):
    reference, _ = _run(tmp_path / "reference")
    interrupted = Tiny(fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "out", interrupted)
    out = tmp_path / "out"
    assert {path.name for path in out.iterdir()} == {"config.json", "results.csv"}
    assert len(runner.read_rows(out)) == 4

    resumed = Tiny()
    result, _ = _run(out, resumed)
    assert resumed.calls == [{"scheme": "b", "snr_db": 5.0}, {"scheme": "b", "snr_db": 10.0}]
    assert (result.computed, result.resumed) == (2, 4)
    assert (out / "results.csv").read_bytes() == (
        tmp_path / "reference" / "results.csv"
    ).read_bytes()

    again = Tiny()
    _run(out, again)
    assert again.calls == []


def test_key_of_a_point_does_not_depend_on_the_points_before_it(tmp_path):
    full = Tiny()
    _run(tmp_path / "full", full)
    partial = Tiny(fail_at=1)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "partial", partial)
    _run(tmp_path / "partial", partial)
    assert len(partial.calls) == 6
    for point, key in partial.keys.items():
        np.testing.assert_array_equal(key, full.keys[point])
    expected = jax.random.key_data(jax.random.fold_in(jax.random.key(0), 4))
    np.testing.assert_array_equal(full.keys[("b", 5.0)], expected)


def test_a_different_config_into_the_same_folder_is_refused_untouched(tmp_path):
    _run(tmp_path, overrides=["seed=1"])
    before = _snapshot(tmp_path)
    tiny = Tiny()
    with pytest.raises(
        runner.OutputConflict, match=r"seed: 1 -> 2.*snr_db: \[0.0, 5.0, 10.0\] -> \[1.0\]"
    ):
        _run(tmp_path, tiny, overrides=["seed=2", "snr_db=1"])
    assert tiny.calls == []
    assert _snapshot(tmp_path) == before

    result, tiny = _run(tmp_path, overrides=["seed=2"], overwrite=True)
    assert (
        len(tiny.calls) == 6
        and json.loads((tmp_path / "config.json").read_text())["config"]["seed"] == 2
    )


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(runner.OutputConflict, match="is a file, not a folder"):
        _run(tmp_path / "out")


def test_results_without_their_config_are_refused(tmp_path):
    (tmp_path / "results.csv").write_text("scheme,snr_db,mse\n")
    with pytest.raises(runner.OutputConflict, match="no config.json"):
        _run(tmp_path)
    assert _snapshot(tmp_path) == {"results.csv": b"scheme,snr_db,mse\n"}


def test_same_seed_same_csv_different_seed_different_csv(tmp_path):
    _run(tmp_path / "a", overrides=["seed=7"])
    _run(tmp_path / "b", overrides=["seed=7"])
    _run(tmp_path / "c", overrides=["seed=8"])
    csv_a, csv_b, csv_c = ((tmp_path / name / "results.csv").read_bytes() for name in "abc")
    assert csv_a == csv_b
    assert csv_a != csv_c


def test_failed_plot_keeps_the_previous_plot_and_leaves_no_temporary_file(tmp_path):
    _run(tmp_path)
    before = _snapshot(tmp_path)

    def broken(rows, config, path):
        raise RuntimeError("no plot today")

    tiny = Tiny()
    tiny.plot = broken
    with pytest.raises(RuntimeError, match="no plot today"):
        _run(tmp_path, tiny)
    assert tiny.calls == []
    assert {path.name for path in tmp_path.iterdir()} == RESULT_FILES
    assert (tmp_path / "tiny.png").read_bytes() == before["tiny.png"]


def test_replot_redraws_from_the_csv(tmp_path):
    _run(tmp_path)
    seen = {}

    def record(rows, config, path):
        seen.update(rows=rows, config=config)
        path.write_bytes(b"redrawn")

    tiny = Tiny()
    tiny.plot = record
    path = runner.replot(tmp_path, tiny.experiment())
    assert path == tmp_path / "tiny.png" and path.read_bytes() == b"redrawn"
    assert seen["rows"] == runner.read_rows(tmp_path)
    assert seen["config"] == TinyConfig()
    assert tiny.calls == []
    assert {p.name for p in tmp_path.iterdir()} == RESULT_FILES


def test_bad_override_fails_before_creating_the_folder(tmp_path):
    with pytest.raises(ConfigError, match="snr_db=abc"):
        _run(tmp_path / "out", overrides=["snr_db=abc"])
    assert not (tmp_path / "out").exists()


def test_cells_read_back_with_their_types(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("i,x,big,flag,label,empty,inf\n3,0.1,1e-300,True,qpsk,,inf\n")
    (row,) = runner.read_rows(path)
    assert row == {
        "i": 3,
        "x": 0.1,
        "big": 1e-300,
        "flag": True,
        "label": "qpsk",
        "empty": None,
        "inf": float("inf"),
    }
    assert type(row["i"]) is int and type(row["x"]) is float


def test_plotting_example_runs():
    import doctest

    import airinfer.experiments.plotting

    result = doctest.testmod(airinfer.experiments.plotting)
    assert result.attempted > 0 and result.failed == 0


def test_numpy_and_jax_scalars_are_written_as_plain_numbers(tmp_path):
    def points(config):
        return [
            {"snr_db": np.float64(snr), "index": np.int64(i)} for i, snr in enumerate(config.snr_db)
        ]

    def run_point(key, config, point):
        return {"a": np.float32(0.5), "b": jax.numpy.int32(7), "c": np.bool_(True), "d": None}

    def plot(rows, config, path):
        path.write_bytes(b"no figure needed here")

    experiment = dataclasses.replace(
        Tiny().experiment(), points=points, run_point=run_point, plot=plot
    )
    runner.run(experiment, out_dir=tmp_path, progress=False)
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[:2] == ["snr_db,index,a,b,c,d", "0.0,0,0.5,7,True,"]
    runner.run(experiment, out_dir=tmp_path, progress=False)  # resumes: every point matches
    assert (tmp_path / "results.csv").read_text().splitlines() == lines

    def vector(key, config, point):
        return {"a": np.zeros(2)}

    with pytest.raises(
        TypeError, match=r"column 'a': expected a scalar, got ndarray of shape \(2,\)"
    ):
        runner.run(
            dataclasses.replace(experiment, run_point=vector),
            out_dir=tmp_path / "v",
            progress=False,
        )


def test_git_revision_is_optional(tmp_path):
    assert runner.git_revision(tmp_path) is None  # not a checkout: no failure, no revision
    revision = runner.git_revision(Path(runner.__file__).parent)
    if revision is not None:  # this source tree is a git checkout
        assert len(revision["commit"]) == 40 and isinstance(revision["dirty"], bool)


def test_artifacts_bytes_always_writers_only_when_computed_or_missing(tmp_path):
    calls = []

    def folder(path):  # a checkpoint-like folder
        calls.append("model")
        path.mkdir()
        (path / f"part{len(calls)}").write_text("weights")

    def notes(path):
        calls.append("notes")
        path.write_text("{}")

    def artifacts(config, rows):
        return {"table.md": f"{len(rows)} rows".encode(), "model": folder, "notes.json": notes}

    experiment = dataclasses.replace(Tiny().experiment(), artifacts=artifacts)
    runner.run(experiment, out_dir=tmp_path, progress=False)
    assert calls == ["model", "notes"] and (tmp_path / "table.md").read_text() == "6 rows"
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["part1"]

    runner.run(experiment, out_dir=tmp_path, progress=False)  # finished: nothing to rebuild
    assert calls == ["model", "notes"]
    (tmp_path / "notes.json").unlink()
    runner.run(experiment, out_dir=tmp_path, progress=False)  # only the missing one
    assert calls == ["model", "notes", "notes"]

    runner.run(experiment, out_dir=tmp_path, progress=False, overwrite=True)
    assert calls[3:] == ["model", "notes"]
    # the folder was replaced whole, and no temporary name is left behind
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["part4"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_point_status_line_names_the_point_its_headline_and_its_time():
    point = {"channel": "awgn", "snr_db": 5.0}
    row = {"channel": "awgn", "snr_db": "5.0", "undecided": "3", "accuracy": "0.912345",
           "accuracy_ci": "0.0123"}  # fmt: skip
    assert runner._point_status("ota_snr", 2, 9, point, row, 75.0) == (
        "ota_snr [3/9] channel=awgn snr_db=5: accuracy=0.9123 +/- 0.0123, undecided=3 (1 min 15 s)"
    )
    # inferences without a decision are named only when there are some
    row = {**row, "undecided": "0"}
    assert runner._headline(row, point) == "accuracy=0.9123 +/- 0.0123"
    # no known headline: the first measured column that is no interval
    row = {"snr_db": "0.0", "value_ci": "1", "value": "2.5"}
    assert runner._headline(row, {"snr_db": 0.0}) == "value=2.5 +/- 1"
    assert runner._headline({"snr_db": "0.0"}, {"snr_db": 0.0}) == "no result"
