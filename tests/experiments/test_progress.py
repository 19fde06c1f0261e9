"""Progress on stderr: bars on a terminal, whole lines in a log, nothing with --no-progress."""

import csv
import os
import subprocess
import sys

import pytest

from airinfer.experiments import members, progress
from airinfer.experiments.members import EnsembleSpec

# Two small MLPs, one epoch on the embedded digits: seconds to train.
SPEC = EnsembleSpec(dataset="digits", model="mlp", width=0.25, members=2, epochs=1)


def test_mode_follows_stderr_unless_forced(capsys, monkeypatch):
    assert progress.mode() == "lines"  # capsys' stderr is no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.mode() == "bar"
    with progress.enabled(False):
        assert progress.mode() == "off"
        with progress.enabled(force="lines"):
            assert progress.mode() == "lines"
    assert progress.mode() == "bar"
    with pytest.raises(ValueError, match="force: 'tty' is not one of bar, lines, off"):
        with progress.enabled(force="tty"):
            pass


def test_a_phase_without_steps_shows_no_bar(capsys):
    with progress.enabled(force="bar"):
        with progress.training("codec", total=10):
            pass
        assert capsys.readouterr().err == "codec: loaded from cache\n"
        with progress.training("codec", total=10) as on_step:
            on_step(4)
            on_step(6)
        err = capsys.readouterr().err
    assert "\r" in err and "10/10" in err
    assert err.splitlines()[-1].startswith("codec: trained in ")


def test_an_error_in_a_phase_claims_nothing(capsys):
    with progress.enabled(force="lines"), pytest.raises(RuntimeError):
        with progress.training("codec"):
            raise RuntimeError("diverged")
    assert capsys.readouterr().err == ""


def test_members_trained_then_loaded_from_cache(tmp_path, monkeypatch, capsys):
    """In a log: a start and an end line when training; one line and no bar from the cache.

    The cache is a stand-in that takes steps the first time only (the real one: the slow
    test below), so that this test trains nothing.
    """
    stored = set()

    def cached_train_ensemble(dataset, seed, config, train_config, on_step):
        key = (seed, config, train_config)
        if key not in stored:
            on_step(3)
            on_step(2)
            stored.add(key)
        return "ensemble", None, tmp_path / "entry"

    monkeypatch.setattr(members, "cached_train_ensemble", cached_train_ensemble)
    members._trained.cache_clear()
    description = "members: 2 x mlp w0.25 on digits"
    try:
        with progress.enabled(force="lines"):
            assert members.trained_ensemble(SPEC)[0] == "ensemble"
            lines = capsys.readouterr().err.splitlines()
            assert len(lines) == 2
            assert lines[0].startswith(f"{description}: training (") and "steps)" in lines[0]
            assert lines[1].startswith(f"{description}: trained in ")
            members._trained.cache_clear()
            members.trained_ensemble(SPEC)
            assert capsys.readouterr().err == f"{description}: loaded from cache\n"
        members._trained.cache_clear()
        with progress.enabled(force="bar"):  # a terminal: still no bar for a cache hit
            members.trained_ensemble(SPEC)
        assert capsys.readouterr().err == f"{description}: loaded from cache\n"
        members._trained.cache_clear()
        with progress.enabled(False):
            members.trained_ensemble(SPEC)
        members._trained.cache_clear()
        members.trained_ensemble(SPEC, progress=False)  # the argument silences it too
        assert capsys.readouterr().err == ""
    finally:
        members._trained.cache_clear()  # later tests must not get the stand-in's models


@pytest.mark.slow
def test_a_real_run_logged_to_a_pipe(tmp_path):
    """ota_snr with stderr to a pipe: no carriage return, a status line per point, the
    members' training as two lines; run again, the members come from the cache, no bar."""
    out = tmp_path / "run"
    argv = [
        sys.executable, "-m", "airinfer.experiments.cli", "run", "ota_snr", "--quick",
        "--out", str(out), "--overwrite", "--set", "backend=jax", "--set", "channels=awgn",
        "--set", "num_devices=2", "--set", "schemes=ota_belief,best_single",
        "--set", "snr_db=0,10", "--set", "ensemble.members=2", "--set", "ensemble.model=mlp",
        "--set", "ensemble.width=0.25", "--set", "ensemble.epochs=1",
    ]  # fmt: skip
    env = {**os.environ, "AIRINFER_CACHE": str(tmp_path / "cache")}
    for attempt in ("trains", "loads"):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "\r" not in done.stderr
        with open(out / "results.csv", newline="") as file:
            rows = list(csv.DictReader(file))
        status = [line for line in done.stderr.splitlines() if line.startswith("ota_snr [")]
        assert len(status) == len(rows) == 4, done.stderr
        assert all("accuracy=" in line and line.endswith(" s)") for line in status)
        phases = [line for line in done.stderr.splitlines() if line.startswith("members: ")]
        if attempt == "trains":
            assert "training" in phases[0] and "trained in" in phases[-1], done.stderr
        else:
            assert phases == ["members: 2 x mlp w0.25 on digits: loaded from cache"], done.stderr
