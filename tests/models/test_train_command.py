"""The ``train`` subcommand's module: options, bad input, and what a run writes."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from airinfer.experiments import train as train_command


def parse(*argv):
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_module_imports_no_jax():
    code = "import sys, experiments.train; print('jax' in sys.modules, 'models' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    "option, value, expected",
    [
        (
            "--dataset",
            "mnist",
            "--dataset: unknown 'mnist'; allowed: digits, fashion_mnist, cifar10",
        ),
        ("--model", "resnet", "--model: unknown 'resnet'; allowed: cnn, mobilenet_v2, mlp"),
        ("--diversity", "boosting", "--diversity: unknown 'boosting'; allowed: init, bagging"),
        ("--width", "0", "--width: 0.0 is not in (0, 4]"),
        ("--width", "8", "--width: 8.0 is not in (0, 4]"),
        ("--members", "0", "--members: 0 is not an integer >= 1"),
        ("--formulation", "pmap", "--formulation: unknown 'pmap'; allowed: auto, loop, vmap"),
        ("--widths", "0.5,x", "--widths: '0.5,x' is not a comma-separated list"),
        ("--architectures", "cnn:0.5,vit:1", "--architectures: unknown 'vit'; allowed: cnn"),
        ("--architectures", "mlp:big", "--architectures: 'mlp:big' is not KIND:WIDTH"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_value_and_allowed(
    option, value, expected, tmp_path, capsys
):
    assert train_command.main(parse(option, value, "--out", str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("airinfer: error: " + expected)
    assert err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_a_run_writes_metrics_logits_and_a_loadable_checkpoint(tmp_path, capsys):
    from airinfer.models.checkpoint import load_ensemble
    from airinfer.models.train import ensemble_logits

    out = tmp_path / "run"
    argv = (
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--width",
        "0.25",
        "--members",
        "3",
        "--diversity",
        "bagging",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--no-progress",
    )
    assert train_command.main(parse(*argv)) == 0
    assert "results in" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["member_accuracy"]) == 3
    for name in (
        "mean_member_accuracy",
        "ensemble_accuracy",
        "majority_vote_accuracy",
        *metrics["member_accuracy"],
    ):
        value = metrics[name] if isinstance(name, str) else name
        assert 0.0 <= value <= 1.0
    assert metrics["params_per_member"] == [64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10] * 3
    assert all(f > 0 for f in metrics["flops_per_member"]) and metrics["train_seconds"] > 0
    saved = np.load(out / "test_logits.npz")
    logits, labels = saved["logits"], saved["labels"]
    assert logits.shape == (3, len(labels), 10) and logits.dtype == np.float32
    np.testing.assert_allclose(metrics["member_accuracy"], (logits.argmax(-1) == labels).mean(1))
    ensemble, metadata = load_ensemble(out / "checkpoint")
    assert metadata["dataset"] == "digits" and ensemble.size == 3
    # the checkpoint reproduces the saved logits on the same (seeded) test split
    from airinfer.models.datasets import load_dataset

    np.testing.assert_allclose(
        ensemble_logits(ensemble, load_dataset("digits", seed=0).test_images), logits, rtol=1e-6
    )
    # a second run into the same folder refuses without --overwrite
    assert train_command.main(parse(*argv)) == 2
    assert "--overwrite" in capsys.readouterr().err
