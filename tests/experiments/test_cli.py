"""The ``airinfer`` command line: listing, running, plotting, errors, import cost."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airinfer.experiments import cli, registry
from airinfer.experiments.plotting import new_figure, plot_lines, save_figure
from airinfer.experiments.registry import Experiment

SUMMARY = "a synthetic sweep for the CLI tests"
HEAVY_MODULES = ("jax", "jaxlib", "tensorflow", "sionna", "flax", "airinfer.experiments.runner")


@dataclasses.dataclass(frozen=True)
class CliConfig:
    seed: int = 0
    snr_db: tuple[float, ...] = (0.0, 10.0)


def _points(config):
    return [{"snr_db": snr} for snr in config.snr_db]


# The SNR at which _run_point simulates a Ctrl-C (a test sets it).
INTERRUPT_AT_SNR_DB = None


def _run_point(key, config, point):
    import jax

    if point["snr_db"] == INTERRUPT_AT_SNR_DB:
        raise KeyboardInterrupt
    return {"value": jax.random.uniform(key) * 10 ** (-point["snr_db"] / 10)}


def _plot(rows, config, path):
    figure, axes = new_figure()
    plot_lines(axes, rows, x="snr_db", y="value")
    save_figure(figure, path)


EXPERIMENT = Experiment(
    name="tiny",
    summary=SUMMARY,
    config=CliConfig,
    quick={"snr_db": (0.0,)},
    points=_points,
    run_point=_run_point,
    plot=_plot,
)


# What the training subcommand's module offers; this module stands in for it.
def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=1)


def main(args):
    print(f"trained for {args.epochs} epochs")
    return 0


@pytest.fixture
def tiny(monkeypatch):
    """Make ``tiny`` (this module's EXPERIMENT) the only known experiment."""
    monkeypatch.setattr(registry, "EXPERIMENTS", {"tiny": (__name__, SUMMARY)})


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("airinfer: error: ") and err.count("\n") == 1, err
    return err


def test_list_prints_name_and_summary_per_line(monkeypatch, capsys):
    monkeypatch.setattr(
        registry, "EXPERIMENTS", {"zeta": ("nowhere", "last"), "alpha_long": ("nowhere", "first")}
    )
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out == "alpha_long  first\nzeta        last\n"


def test_run_writes_results_and_says_where(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--out", str(out), "--no-progress", "--set", "seed=5"]) == 0
    assert str(out) in capsys.readouterr().out
    assert {path.name for path in out.iterdir()} == {
        "config.json",
        "results.csv",
        "meta.json",
        "tiny.png",
    }
    stored = json.loads((out / "config.json").read_text())
    assert stored["config"]["seed"] == 5 and stored["overrides"] == ["seed=5"]


def test_quick_and_repeated_set(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "tiny", "--quick", "--out", str(out), "--no-progress"]
    assert cli.main([*argv, "--set", "seed=1", "--set", "snr_db=[3]"]) == 0
    assert (out / "results.csv").read_text().splitlines()[1].startswith("3.0,")
    assert json.loads((out / "config.json").read_text())["quick"] is True


def test_default_out_dir_is_results_slash_name(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "tiny", "--quick", "--no-progress"]) == 0
    assert (tmp_path / "results" / "tiny" / "results.csv").exists()


def test_bad_set_exits_2_with_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--out", str(out), "--set", "snr_db=abc"]) == 2
    err = _one_error_line(capsys)
    assert "--set snr_db=abc: expected" in err and "'abc'" in err
    assert cli.main(["run", "tiny", "--out", str(out), "--set", "snr=1"]) == 2
    assert "unknown key 'snr'" in _one_error_line(capsys)
    assert not out.exists()


def test_unknown_experiment_exits_2_with_one_line(tiny, capsys):
    assert cli.main(["run", "nope"]) == 2
    assert "unknown experiment 'nope'; known: tiny" in _one_error_line(capsys)


def test_conflicting_out_dir_exits_2_and_overwrite_starts_afresh(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--out", str(out), "--no-progress"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert cli.main(["run", "tiny", "--out", str(out), "--no-progress", "--set", "seed=9"]) == 2
    assert "seed: 0 -> 9" in _one_error_line(capsys)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    argv = ["run", "tiny", "--out", str(out), "--no-progress", "--set", "seed=9", "--overwrite"]
    assert cli.main(argv) == 0
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 9


def test_interrupted_run_exits_130_and_resumes(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["run", "tiny", "--out", str(out), "--no-progress", "--set", "snr_db=[0,5,10]"]
    monkeypatch.setattr(sys.modules[__name__], "INTERRUPT_AT_SNR_DB", 5.0)
    assert cli.main(argv) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert len((out / "results.csv").read_text().splitlines()) == 2  # header + one point
    monkeypatch.setattr(sys.modules[__name__], "INTERRUPT_AT_SNR_DB", None)
    assert cli.main(argv) == 0
    assert "2 points computed, 1 resumed" in capsys.readouterr().out


def test_progress_bar_shows_first_point_time_on_stderr(tiny, tmp_path, capsys):
    assert cli.main(["run", "tiny", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "compile+first:" in err and "2/2" in err


def test_plot_redraws_from_csv(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--out", str(out), "--no-progress"]) == 0
    (out / "tiny.png").unlink()
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "tiny.png").read_bytes().startswith(b"\x89PNG")
    assert cli.main(["plot", str(tmp_path / "empty")]) == 2
    assert "holds no results config" in _one_error_line(capsys)


def test_train_subcommand_is_loaded_from_its_module(tiny, monkeypatch, capsys):
    monkeypatch.setattr(cli, "TRAIN_MODULE", __name__)
    assert cli.main(["train", "--epochs", "3"]) == 0
    assert capsys.readouterr().out == "trained for 3 epochs\n"
    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_cli_works_without_a_train_module(tiny, monkeypatch, capsys):
    monkeypatch.setattr(cli, "TRAIN_MODULE", "airinfer.experiments.no_such_train_module")
    assert cli.main(["list"]) == 0
    assert cli.main(["--help"]) == 0
    # no "train" command listed (train-encoder is another command)
    assert not re.search(r"^ {4}train\b(?!-)", capsys.readouterr().out, re.MULTILINE)
    assert cli.main(["train"]) == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_list_and_help_import_neither_jax_nor_tensorflow():
    probe = (
        "import contextlib, io, sys\n"
        "from experiments.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['list']) == 0 and main(['--help']) == 0 and main(['run', '-h']) == 0\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES[:-1]!r}\n"
        f"             or m == {HEAVY_MODULES[-1]!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_module_entry_point_lists():
    done = subprocess.run(
        [sys.executable, "-m", "airinfer.experiments.cli", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert "link_ber" in names and names == sorted(names)


def test_installed_console_script():
    script = Path(sys.executable).parent / "airinfer"
    if not script.exists():
        pytest.skip("the package is not installed in this environment (no airinfer script)")
    listing = subprocess.run([script, "list"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "link_ber" in listing.stdout, listing.stderr
    bad = subprocess.run([script, "run", "no_such_experiment"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("airinfer: error: unknown experiment 'no_such_experiment'")
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
