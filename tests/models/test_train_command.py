"""``airinfer run train`` (alias ``airinfer train``): bad input, what a run writes, resuming."""

import json

import numpy as np
import pytest

from airinfer.experiments import cli, runner
from airinfer.experiments import train as train_experiment
from airinfer.models.checkpoint import load_ensemble
from airinfer.models.datasets import load_dataset
from airinfer.models.inference import ensemble_logits

# three MLPs of width 1/4 on digits, two epochs each (the experiment's --quick)
MLP_PARAMS = 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    train_experiment.trained.cache_clear()


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("dataset=mnist", "--set dataset=mnist: expected one of 'digits', 'fashion_mnist'"),
        ("model=resnet", "--set model=resnet: expected one of 'cnn', 'mobilenet_v2', 'mlp'"),
        ("diversity=boosting", "--set diversity=boosting: expected one of 'init', 'bagging'"),
        ("width=0", "--set width=0: width: 0.0 is not in (0, 4]"),
        ("width=8", "--set width=8: width: 8.0 is not in (0, 4]"),
        ("members=0", "--set members=0: members: 0 is not an integer >= 1"),
        ("formulation=pmap", "--set formulation=pmap: expected one of 'auto', 'loop', 'vmap'"),
        ("widths=0.5,x", "--set widths=0.5,x: expected comma-separated float values"),
        ("architectures=cnn:0.5,vit:1", "architectures: unknown kind 'vit' in 'vit:1'; allowed"),
        ("architectures=mlp:big", "architectures: 'mlp:big' is not KIND:WIDTH"),
        ("epochs=-1", "--set epochs=-1: epochs: -1 is not an integer >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_value_and_allowed(
    setting, expected, tmp_path, capsys
):
    assert cli.main(["train", "--out", str(tmp_path / "out"), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("airinfer: error: ") and expected in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_run_writes_results_logits_and_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "train", "--quick", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    assert "9 points computed" in capsys.readouterr().out
    rows = runner.read_rows(out)
    members = [r for r in rows if r["rule"] == "member"]
    assert [r["k"] for r in members] == [0, 1, 2]
    assert all(r["params"] == MLP_PARAMS and r["flops"] > 0 for r in members)
    assert all(0 <= r[c] <= 1 for r in members for c in ("accuracy", "val_accuracy"))
    combined = {(r["rule"], r["k"]): r["accuracy"] for r in rows if r["rule"] != "member"}
    assert set(combined) == {
        (rule, k) for rule in ("mean_softmax", "majority_vote") for k in (1, 2, 3)
    }
    # one member combined is that member
    assert combined["mean_softmax", 1] == combined["majority_vote", 1] == members[0]["accuracy"]

    saved = np.load(out / "test_logits.npz")
    logits, labels = saved["logits"], saved["labels"]
    assert logits.shape == (3, len(labels), 10) and logits.dtype == np.float32
    np.testing.assert_allclose(
        [r["accuracy"] for r in members], (logits.argmax(-1) == labels).mean(1)
    )
    ensemble, metadata = load_ensemble(out / "checkpoint")
    assert metadata["dataset"] == "digits" and ensemble.size == 3
    # the checkpoint reproduces the saved logits on the same (seeded) test split
    test_images = load_dataset("digits", seed=0).test_images
    np.testing.assert_allclose(ensemble_logits(ensemble, test_images), logits, rtol=1e-6)
    training = json.loads((out / "training.json").read_text())
    assert training["from_cache"] is False and training["train_seconds"] > 0
    assert {"config.json", "meta.json", "results.csv", "train.png"} <= {
        p.name for p in out.iterdir()
    }

    # the same command again resumes a finished run: nothing is trained or rewritten
    written = (out / "checkpoint").stat().st_mtime_ns, (out / "training.json").read_bytes()
    train_experiment.trained.cache_clear()
    assert cli.main(argv) == 0
    assert "0 points computed, 9 resumed" in capsys.readouterr().out
    assert written == (
        (out / "checkpoint").stat().st_mtime_ns,
        (out / "training.json").read_bytes(),
    )
    # another config into the same folder is refused
    assert cli.main([*argv, "--set", "epochs=3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
