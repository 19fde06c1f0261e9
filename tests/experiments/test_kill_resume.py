"""A sweep killed with SIGKILL at a random moment resumes to the bytes of an uncut run.

The in-process tests (tests/experiments/test_reliability.py) interrupt between
points; here the operating system kills a real ``airinfer run`` process wherever
it is (inside a point, or while a row is being written), so nothing of the
runner's own clean-up runs. The synthetic ``sturdy`` experiment of those tests
runs in a child process, each point slowed down so that the kill lands inside
the sweep. The uncut run and the resumption run here, through the same command
(a child interpreter costs seconds of imports; what the kill left on disk is
all a resumption reads).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from airinfer.experiments import cli, registry
from tests.experiments import test_reliability as sturdy

#: The child: ``sturdy`` as the only experiment, each point taking ``delay`` seconds.
CHILD = """
import dataclasses, sys, time
from airinfer.experiments import cli, registry
from tests.experiments import test_reliability as sturdy

delay = float(sys.argv[1])

def slow_point(key, config, point):
    time.sleep(delay)
    return sturdy._run_point(key, config, point)

experiment = dataclasses.replace(sturdy.STURDY, run_point=slow_point)
registry.builtin = dict
registry.plugins = dict
registry.REGISTERED = {experiment.name: experiment}
sys.exit(cli.main(sys.argv[2:]))
"""

SWEEP = ["--no-progress", "--set", "snr_db=[0,2,4,6,8,10]", "--set", "seed=5"]


def _command(out, delay):
    return [sys.executable, "-c", CHILD, str(delay), "run", "sturdy", "--out", str(out), *SWEEP]


def _env(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return os.environ | {"PYTHONPATH": path, "AIRINFER_CACHE": str(tmp_path / "cache")}


def _rows(out):
    csv = out / "results.csv"
    return max(0, len(csv.read_text().splitlines()) - 1) if csv.exists() else 0


def _run_here(out, monkeypatch):
    """The child's command without delay, in this process: ``sturdy`` the only experiment."""
    monkeypatch.setattr(registry, "builtin", dict)
    monkeypatch.setattr(registry, "plugins", dict)
    monkeypatch.setattr(registry, "REGISTERED", {sturdy.STURDY.name: sturdy.STURDY})
    assert cli.main(["run", "sturdy", "--out", str(out), *SWEEP]) == 0


def test_a_sweep_killed_at_a_random_moment_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    env = _env(tmp_path)
    monkeypatch.setenv("AIRINFER_CACHE", env["AIRINFER_CACHE"])
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _run_here(whole, monkeypatch)

    delay = 0.4
    child = subprocess.Popen(_command(cut, delay), env=env)
    try:
        # wait until the sweep is under way, then kill it a random time later:
        # inside a point, between points, or while a row is being written
        deadline = time.monotonic() + 240
        while _rows(cut) < 1 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        wait = float(np.random.default_rng().uniform(0.0, 2.5 * delay))
        time.sleep(wait)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    assert 1 <= _rows(cut) < 6

    _run_here(cut, monkeypatch)
    assert (cut / "results.csv").read_bytes() == (whole / "results.csv").read_bytes(), (
        f"killed {wait:.2f} s after the first row"
    )
