"""``airinfer train-encoder``: options, bad input, what a run writes, the cache."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from airinfer.experiments import cli
from airinfer.experiments import train_encoder as command


def parse(*argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_module_imports_no_jax():
    code = (
        "import sys, experiments.train_encoder; "
        "print('jax' in sys.modules, 'strategies' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--dataset", "mnist", "--dataset: unknown 'mnist'; allowed: digits, fashion_mnist"),
        ("--model", "resnet", "--model: unknown 'resnet'; allowed: cnn, mobilenet_v2, mlp"),
        ("--channel", "rician", "--channel: unknown 'rician'; allowed: awgn, rayleigh, tdl-a"),
        ("--backend", "torch", "--backend: unknown 'torch'; allowed: sionna, jax"),
        ("--width", "0", "--width: 0.0 is not in (0, 4]"),
        ("--symbols", "0", "--symbols: 0 is not an integer >= 1"),
        ("--epochs", "-1", "--epochs: -1 is not an integer >= 1"),
        ("--classifier-epochs", "0", "--classifier-epochs: 0 is not an integer >= 1"),
        ("--learning-rate", "0", "--learning-rate: 0.0 is not > 0"),
        ("--snr-range", "10,-10", "--snr-range: '10,-10' is not LOW,HIGH with LOW <= HIGH"),
        ("--snr-range", "0", "--snr-range: '0' is not LOW,HIGH with LOW <= HIGH"),
        ("--snr-range", "a,b", "--snr-range: 'a,b' is not a comma-separated list of numbers"),
        ("--test-snrs", "0,inf", "--test-snrs: '0,inf' is not a non-empty list of finite"),
        ("--split-point", "conv9", "--split-point: unknown 'conv9'; allowed: conv1, conv2, hidden"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_value_and_allowed(
    option, value, expected, tmp_path, capsys
):
    assert command.main(parse(option, value, "--out", str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("airinfer: error: " + expected), err
    assert err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_tdl_a_without_sionna_exits_2_through_the_cli(tmp_path, capsys):
    argv = ["train-encoder", "--channel", "tdl-a", "--backend", "jax", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "airinfer: error: --backend: 'jax' has no twin of the tdl-a channel; allowed: sionna\n"
    )
    assert cli.main(["train-encoder", "--help"]) == 0
    assert "--snr-range" in capsys.readouterr().out


ARGV = (
    "--model", "mlp", "--width", "0.25", "--classifier-epochs", "3", "--split-point",
    "hidden1", "--symbols", "8", "--channel", "rayleigh", "--epochs", "2", "--backend",
    "jax", "--test-snrs", "0,20", "--no-progress",
)  # fmt: skip


def test_a_run_writes_a_report_and_a_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert command.main(parse(*ARGV, "--out", str(out))) == 0
    assert "results in" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [point["snr_db"] for point in report["accuracy"]] == [0.0, 20.0]
    assert all(0 <= point["accuracy"] <= 1 for point in report["accuracy"])
    assert 0 <= report["classifier_accuracy"] <= 1 and report["test_samples"] == 359
    assert report["cost"]["channel_uses"] == 8 and report["cost"]["payload_bits"] == 0
    assert report["from_cache"] is False and report["train_seconds"] > 0
    assert report["config"]["jscc"]["channel"] == "rayleigh"
    assert report["config"]["jscc"]["split_point"] == "hidden1"
    assert report["versions"]["jax"] and report["versions"]["flax"]
    assert len(list((tmp_path / "cache").glob("jscc-*"))) == 1
    assert (out / "checkpoint").is_dir()
    # a second run refuses the folder without --overwrite
    assert command.main(parse(*ARGV, "--out", str(out))) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_the_checkpoint_reproduces_the_report_and_a_rerun_loads_the_cache(
    tmp_path, monkeypatch, capsys
):
    from airinfer.models.datasets import load_dataset
    from airinfer.models.zoo import ModelConfig, build_model
    from airinfer.strategies.jscc import JSCCSplitStrategy, accuracy_vs_snr, load_jscc

    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert command.main(parse(*ARGV, "--out", str(out))) == 0
    report = json.loads((out / "report.json").read_text())
    # the checkpoint gives the reported accuracy with the same keys
    dataset = load_dataset("digits", seed=0)
    template = build_model(ModelConfig("mlp", dataset.image_shape, 10, 0.25), _key(0))
    codec, classifier, config, _ = load_jscc(out / "checkpoint", template)
    accuracy = accuracy_vs_snr(
        JSCCSplitStrategy(classifier, codec, config), _key(1), dataset.test_images,
        dataset.test_labels, [0.0, 20.0], channel="rayleigh", backend="jax",
    )  # fmt: skip
    np.testing.assert_allclose(accuracy, [p["accuracy"] for p in report["accuracy"]])
    assert command.main(parse(*ARGV, "--out", str(out), "--overwrite")) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["from_cache"] is True and again["accuracy"] == report["accuracy"]


def _key(seed):
    import jax

    return jax.random.key(seed)
