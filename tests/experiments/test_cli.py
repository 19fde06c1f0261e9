"""The ``airinfer`` command line: listing, running, plotting, errors, import cost."""

import contextlib
import dataclasses
import io
import json
import re
import shlex
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from airinfer.experiments import cli, registry
from airinfer.experiments.plotting import new_figure, plot_lines, save_figure
from airinfer.experiments.registry import Experiment

SUMMARY = "a synthetic sweep for the CLI tests"
# What `list` and `--help` must not import: the numerical stack, and every module
# of the project but the command line, its registry and its config parser.
HEAVY_MODULES = (
    "jax", "jaxlib", "tensorflow", "sionna", "flax", "optax", "orbax", "numpy", "matplotlib",
    "airinfer.phy", "airinfer.ota", "airinfer.models", "airinfer.strategies",
)  # fmt: skip
LIGHT_EXPERIMENTS_MODULES = (
    "airinfer.experiments", "airinfer.experiments.cli", "airinfer.experiments.config",
    "airinfer.experiments.config_help", "airinfer.experiments.registry",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CliConfig:
    """The tiny sweep's settings.

    Attributes:
        seed: the root key.
        snr_db: the points, Es/N0 in dB,
            one per row.
    """

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


@pytest.fixture
def only(monkeypatch):
    """``only(*experiments)``: make these (registered in this process) the only known ones."""

    def restrict(*experiments):
        monkeypatch.setattr(registry, "builtin", dict)
        monkeypatch.setattr(registry, "plugins", dict)
        monkeypatch.setattr(registry, "REGISTERED", {e.name: e for e in experiments})

    return restrict


@pytest.fixture
def tiny(only):
    """Make ``tiny`` (this module's EXPERIMENT) the only known experiment."""
    only(EXPERIMENT)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("airinfer: error: ") and err.count("\n") == 1, err
    return err


def test_list_prints_name_and_summary_per_line(only, capsys):
    only(
        dataclasses.replace(EXPERIMENT, name="zeta", summary="last"),
        dataclasses.replace(EXPERIMENT, name="alpha_long", summary="first"),
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


def test_progress_bar_shows_first_point_time_on_stderr(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal
    assert cli.main(["run", "tiny", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "compile+first:" in err and "2/2" in err and "\r" in err


def test_a_log_gets_one_status_line_per_point_and_no_carriage_return(tiny, tmp_path, capsys):
    """stderr is no terminal under capsys: whole lines, the point, its result and its time."""
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--out", str(out), "--set", "snr_db=[0,5,10]"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    status = [line for line in err.splitlines() if line.startswith("tiny [")]
    assert len(status) == 3, err
    assert re.fullmatch(r"tiny \[2/3\] snr_db=5: value=[-0-9.e]+ \([0-9.]+ s\)", status[1])
    # resumed: the start line says how many were done; only the missing point is shown
    lines = (out / "results.csv").read_text().splitlines()
    (out / "results.csv").write_text("\n".join(lines[:3]) + "\n")
    assert cli.main(["run", "tiny", "--out", str(out), "--set", "snr_db=[0,5,10]"]) == 0
    err = capsys.readouterr().err
    assert "tiny: 3 points, 2 already done" in err
    assert [line[:10] for line in err.splitlines() if line.startswith("tiny [")] == ["tiny [3/3]"]


def test_no_progress_is_silent(tiny, tmp_path, capsys):
    assert cli.main(["run", "tiny", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("figure_format", "magic"), [("png", b"\x89PNG\r\n"), ("pdf", b"%PDF-"), ("svg", b"<svg")]
)
def test_format_writes_a_figure_of_that_type(tiny, tmp_path, capsys, figure_format, magic):
    out = tmp_path / "run"
    argv = ["run", "tiny", "--out", str(out), "--no-progress", "--format", figure_format]
    assert cli.main(argv) == 0
    head = (out / f"tiny.{figure_format}").read_bytes()[:400]
    assert magic in head if figure_format == "svg" else head.startswith(magic)
    (out / f"tiny.{figure_format}").unlink()
    assert cli.main(["plot", str(out), "--format", figure_format]) == 0
    assert (out / f"tiny.{figure_format}").exists()
    assert cli.main(["plot", str(out), "--format", "gif"]) == 2
    assert "invalid choice: 'gif'" in capsys.readouterr().err


def test_show_config_prints_type_default_value_and_help_and_writes_nothing(
    tiny, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "tiny", "--quick", "--set", "seed=3", "--show-config"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("tiny: the resolved config (--quick, 1 --set)")
    assert out[1:] == [
        "  seed (int) = 3  [default 0; from --set]",
        "      the root key.",
        "  snr_db (list[float]) = [0.0]  [default [0.0, 10.0]; from --quick]",
        "      the points, Es/N0 in dB, one per row.",
    ]
    assert list(tmp_path.iterdir()) == []  # nothing written, no results folder
    assert cli.main(["run", "tiny", "--show-config", "--set", "snr=1"]) == 2
    assert "unknown key 'snr'" in _one_error_line(capsys)


def test_field_help_reads_attributes_metadata_and_shared_names():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        """Two levels.

        Attributes:
            gain, loss: in dB (see :mod:`~airinfer.phy.awgn`,
                ``gain`` first).
        """

        gain: float = 0.0
        loss: float = 1.0

    @dataclasses.dataclass(frozen=True)
    class Outer:
        inner: Inner = Inner()
        kind: typing.Literal["a", "b"] = "a"
        level: int | None = dataclasses.field(default=None, metadata={"help": "how high"})
        devices: int | None = None

    assert cli.field_help(Outer) == {
        "inner.gain": "in dB (see awgn, gain first).",
        "inner.loss": "in dB (see awgn, gain first).",
        "kind": "",
        "level": "how high",
        "devices": cli.COMMON_HELP["devices"],
    }
    assert [cli.type_text(t) for t in (Outer.__annotations__["kind"], int | None)] == [
        "a|b",
        "int|none",
    ]


def _help_examples() -> list[list[str]]:
    """The example commands that 'airinfer run --help' shows."""
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        assert cli.main(["run", "--help"]) == 0
    text = shown.getvalue().split("examples:", 1)[1]
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("  airinfer ")]


def test_help_examples_work_and_every_key_has_help(tmp_path, monkeypatch, capsys):
    """Each example of the help resolves (with --quick and --show-config); writes nothing."""
    examples = _help_examples()
    assert len(examples) == len(cli.RUN_EXAMPLES) >= 3
    monkeypatch.chdir(tmp_path)
    for argv in examples:
        argv = [*argv, *(["--quick"] if "--quick" not in argv else [])]
        status = cli.main([*argv, *(["--show-config"] if "--show-config" not in argv else [])])
        assert status == 0, (argv, capsys.readouterr().err)
        assert "(undocumented)" not in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    for name in registry.builtin():
        helps = cli.field_help(registry.load(name).config)
        assert all(helps.values()), (name, [key for key, text in helps.items() if not text])


def test_show_lists_fields_defaults_and_quick_settings(tiny, capsys):
    assert cli.main(["show", "tiny"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"tiny: {SUMMARY}"
    assert [line.split()[0] for line in out[2:]] == ["seed", "snr_db"]
    assert out[2].split("=")[1].strip() == "0"
    assert out[3].split("=", 1)[1].strip() == "[0.0, 10.0]  # [0.0]"
    assert cli.main(["show", "nope"]) == 2
    assert "unknown experiment 'nope'" in _one_error_line(capsys)


def test_plot_redraws_from_csv(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--out", str(out), "--no-progress"]) == 0
    (out / "tiny.png").unlink()
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "tiny.png").read_bytes().startswith(b"\x89PNG")
    assert cli.main(["plot", str(tmp_path / "empty")]) == 2
    assert "holds no results config" in _one_error_line(capsys)


def test_train_and_train_encoder_are_aliases_of_run(only, tmp_path, capsys):
    only(
        dataclasses.replace(EXPERIMENT, name="train"),
        dataclasses.replace(EXPERIMENT, name="train_encoder"),
    )
    assert cli.main(["train", "--out", str(tmp_path / "a"), "--set", "seed=3"]) == 0
    argv = ["--out", str(tmp_path / "b"), "--set", "snr_db=-10,20", "--quick", "--no-progress"]
    assert cli.main(["train-encoder", *argv]) == 0
    first = json.loads((tmp_path / "a" / "config.json").read_text())
    second = json.loads((tmp_path / "b" / "config.json").read_text())
    assert first["experiment"] == "train" and first["overrides"] == ["seed=3"]
    assert second["experiment"] == "train_encoder" and second["config"]["snr_db"] == [-10, 20]
    assert (tmp_path / "b" / "train_encoder.png").exists()
    assert cli.main(["--help"]) == 0
    assert "'airinfer run train_encoder ...'" in capsys.readouterr().out


def test_old_options_exit_2_pointing_at_set(tiny, capsys):
    assert cli.main(["run", "tiny", "--epochs", "3"]) == 2
    err = _one_error_line(capsys)
    assert "unrecognized arguments: --epochs 3" in err and "--set KEY=VALUE" in err


def test_negative_numbers_in_set_values(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "tiny", "--out", str(out), "--no-progress", "--set", "snr_db=-10,-5"]
    assert cli.main(argv) == 0
    assert json.loads((out / "config.json").read_text())["config"]["snr_db"] == [-10.0, -5.0]


def test_list_and_help_import_neither_jax_nor_tensorflow():
    probe = textwrap.dedent(f"""
        import contextlib, io, sys
        from airinfer.experiments.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(['list']) == 0 and main(['--help']) == 0 and main(['run', '-h']) == 0
            assert main(['train', '-h']) == 0
        heavy = {HEAVY_MODULES!r}
        light = {LIGHT_EXPERIMENTS_MODULES!r}
        print(sorted(
            m for m in sys.modules
            if any(m == h or m.startswith(h + '.') for h in heavy)
            or (m.startswith('airinfer.experiments') and m not in light)
        ))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_every_built_in_experiment_is_found_as_it_registers(monkeypatch):
    """Reading the sources finds what importing the modules registers."""
    found = registry.builtin()
    assert {"link_ber", "ota_snr", "strategies_snr", "table1", "train", "train_encoder"} <= set(
        found
    )
    for name, listing in found.items():
        experiment = registry.load(name)
        assert experiment.name == name and experiment.summary == listing.summary
        assert registry.REGISTERED[name] is experiment


PLUGIN_MODULE = """
    \"\"\"A user's sweep, offered through an entry point.\"\"\"
    import dataclasses

    from airinfer.experiments.registry import Experiment, register


    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        gain: float = 2.0


    def plot(rows, config, path):
        path.write_bytes(b"a plot")


    EXPERIMENT = register(Experiment(
        name="user_sweep", summary="a user's sweep", config=Config, quick={},
        points=lambda config: [{"x": 1}, {"x": 2}],
        run_point=lambda key, config, point: {"y": config.gain * point["x"]},
        plot=plot,
    ))
"""


def test_an_entry_point_experiment_is_listed_and_runs(monkeypatch, tmp_path, capsys):
    site = tmp_path / "site"
    dist_info = site / "user_sweeps-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-sweeps\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nuser_sweep = user_sweeps_module\n"
    )
    (site / "user_sweeps_module.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "REGISTERED", dict(registry.REGISTERED))
    monkeypatch.delitem(sys.modules, "user_sweeps_module", raising=False)

    assert cli.main(["list"]) == 0
    listed = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert listed["user_sweep"] == "a user's sweep" and "link_ber" in listed
    assert "user_sweeps_module" not in sys.modules  # listed without importing it

    out = tmp_path / "out"
    argv = ["run", "user_sweep", "--out", str(out), "--no-progress", "--set", "gain=-1.5"]
    assert cli.main(argv) == 0
    assert (out / "results.csv").read_text().splitlines() == ["x,y", "1,-1.5", "2,-3.0"]
    assert (out / "user_sweep.png").read_bytes() == b"a plot"


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
