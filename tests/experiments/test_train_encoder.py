"""``airinfer run train_encoder`` (alias ``airinfer train-encoder``): bad input, what a run
writes, negative numbers, the cache."""

import json

import numpy as np
import pytest

from airinfer.experiments import cli, runner
from airinfer.experiments import train_encoder as experiment

# An MLP of width 1/4 on digits cut after hidden1, 8 symbols over Rayleigh, JAX twins.
SETTINGS = (
    "model=mlp", "width=0.25", "classifier_epochs=3", "split_point=hidden1", "symbols=8",
    "channel=rayleigh", "epochs=2", "backend=jax", "snr_range=-10,20", "snr_db=-10,20",
)  # fmt: skip


def argv(out, *settings):
    return [
        "run", "train_encoder", "--out", str(out), "--no-progress",
        *(item for setting in (*SETTINGS, *settings) for item in ("--set", setting)),
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    experiment.trained.cache_clear()
    experiment.accuracy_curve.cache_clear()


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("dataset=mnist", "--set dataset=mnist: expected one of 'digits', 'fashion_mnist'"),
        ("model=resnet", "--set model=resnet: expected one of 'cnn', 'mobilenet_v2', 'mlp'"),
        ("channel=rician", "--set channel=rician: expected one of 'awgn', 'rayleigh', 'tdl-a'"),
        ("backend=torch", "--set backend=torch: expected one of 'sionna', 'jax'"),
        ("width=0", "--set width=0: width: 0.0 is not in (0, 4]"),
        ("symbols=0", "--set symbols=0: symbols: 0 is not an integer >= 1"),
        ("epochs=-1", "--set epochs=-1: epochs: -1 is not an integer >= 1"),
        ("classifier_epochs=0", "classifier_epochs: 0 is not an integer >= 1"),
        ("learning_rate=0", "--set learning_rate=0: learning_rate: 0.0 is not > 0"),
        ("snr_range=10,-10", "snr_range: 10,-10 is not LOW,HIGH with LOW <= HIGH"),
        ("snr_range=0", "--set snr_range=0: expected 2 comma-separated values"),
        ("snr_range=a,b", "--set snr_range=a,b: expected 2 comma-separated values"),
        ("snr_db=0,inf", "snr_db: (0.0, inf) has a non-finite value"),
        ("snr_db=0,0", "snr_db: (0.0, 0.0) has a repeated value"),
        (
            "split_point=conv9",
            "split_point: unknown 'conv9' for cnn; allowed: conv1, conv2, hidden",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_value_and_allowed(
    setting, expected, tmp_path, capsys
):
    out = tmp_path / "out"
    assert cli.main(["train-encoder", "--out", str(out), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("airinfer: error: ") and expected in err, err
    assert err.count("\n") == 1
    assert not out.exists()


def test_a_run_with_negative_snrs_writes_results_and_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(argv(out)) == 0
    assert "2 points computed" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["snr_range"] == [-10.0, 20.0] and config["snr_db"] == [-10.0, 20.0]
    rows = runner.read_rows(out)
    assert [r["snr_db"] for r in rows] == [-10.0, 20.0]
    assert all(0 <= r["accuracy"] <= 1 and 0 < r["accuracy_ci"] < 0.1 for r in rows)
    assert rows[0]["accuracy"] < rows[1]["accuracy"]  # no miracle at -10 dB
    assert rows[0]["classifier_accuracy"] == rows[1]["classifier_accuracy"] > 0.5
    assert rows[0]["channel_uses"] == 8 and rows[0]["payload_bits"] == 0
    training = json.loads((out / "training.json").read_text())
    assert training["from_cache"] is False and training["train_seconds"] > 0
    assert len([e for e in (tmp_path / "cache").glob("jscc-*") if e.is_dir()]) == 1  # not its lock
    assert (out / "checkpoint").is_dir() and (out / "train_encoder.png").stat().st_size > 0
    # another config into the same folder is refused
    assert cli.main(argv(out, "symbols=4")) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_the_checkpoint_reproduces_the_results_and_a_rerun_loads_the_cache(tmp_path, capsys):
    import jax

    from airinfer.models.datasets import load_dataset
    from airinfer.models.zoo import ModelConfig, build_model
    from airinfer.strategies.jscc import JSCCSplitStrategy, accuracy_vs_snr, load_jscc

    out = tmp_path / "run"
    assert cli.main(argv(out)) == 0
    rows = runner.read_rows(out)
    # the checkpoint gives the reported accuracy with the same keys
    dataset = load_dataset("digits", seed=0)
    template = build_model(ModelConfig("mlp", dataset.image_shape, 10, 0.25), jax.random.key(0))
    codec, classifier, config, _ = load_jscc(out / "checkpoint", template)
    accuracy = accuracy_vs_snr(
        JSCCSplitStrategy(classifier, codec, config), jax.random.key(1), dataset.test_images,
        dataset.test_labels, [-10.0, 20.0], channel="rayleigh", backend="jax",
    )  # fmt: skip
    np.testing.assert_allclose(accuracy, [r["accuracy"] for r in rows])
    experiment.trained.cache_clear()
    experiment.accuracy_curve.cache_clear()
    assert cli.main([*argv(out), "--overwrite"]) == 0
    assert json.loads((out / "training.json").read_text())["from_cache"] is True
    assert runner.read_rows(out) == rows
