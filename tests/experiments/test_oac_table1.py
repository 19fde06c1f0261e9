"""oac_table1: every row, the noiseless limit, the lone device under DP, the published column."""

import math

import numpy as np
import pytest

from airinfer.experiments import aggregation, oac_table1, ota_privacy, runner
from airinfer.experiments.config import ConfigError, apply_overrides
from airinfer.experiments.members import EnsembleSpec, MemberOutputs
from airinfer.ota.orthogonal import BlerTable
from airinfer.ota.privacy import SOFTMAX_SENSITIVITY, analytic_gaussian_sigma

NUM_CLASSES, NUM_TEST, NUM_VAL = 10, 300, 200
# The orthogonal link's block-error table (measured with Sionna's LDPC decoder in
# tests/ota): here a link that never loses a block, so these tests need no Sionna.
LOSSLESS_LINK = BlerTable(np.array([-10.0, 30.0], np.float32), np.zeros(2, np.float32))


def synthetic_outputs(num_members, seed=0):
    """Members right ~60-75 % of the time, each wrong in its own way; member 2 the best."""
    rng = np.random.default_rng(seed)
    signal = np.full(num_members, 1.4, np.float32)
    signal[2] = 2.2

    def split(n):
        labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
        logits = rng.normal(size=(num_members, n, NUM_CLASSES)).astype(np.float32)
        logits[:, np.arange(n), labels] += signal[:, None]
        return logits, labels

    test_logits, test_labels = split(NUM_TEST)
    val_logits, val_labels = split(NUM_VAL)
    return MemberOutputs(test_logits, test_labels, val_logits, val_labels, (1,) * num_members)


@pytest.fixture
def lossless_link(monkeypatch):
    monkeypatch.setattr(aggregation, "measure_bler_table", lambda link: LOSSLESS_LINK)


@pytest.fixture
def fake_members(monkeypatch):
    """Synthetic members for both modules that read them; their caches start empty."""
    outputs = {}

    def member_outputs(spec, progress=True):
        return outputs.setdefault(spec, synthetic_outputs(spec.members))

    for module in (ota_privacy, oac_table1):
        monkeypatch.setattr(module, "member_outputs", member_outputs)
    ota_privacy._curve.cache_clear()
    oac_table1._best_single.cache_clear()
    yield member_outputs
    ota_privacy._curve.cache_clear()
    oac_table1._best_single.cache_clear()


def test_quick_run_writes_every_row_the_table_and_resumes(tmp_path, monkeypatch, lossless_link):
    # --quick on digits with 20 trained devices (smaller models here, the same path)
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    tiny = ["ensemble.model=mlp", "ensemble.width=0.25", "ensemble.epochs=20", "draws=2",
            "backend=jax"]  # fmt: skip
    ota_privacy._curve.cache_clear()
    oac_table1._best_single.cache_clear()
    result = runner.run("oac_table1", out_dir=tmp_path / "run", overrides=tiny, quick=True,
                        progress=False)  # fmt: skip
    rows = result.rows
    assert [(r["epsilon"], r["scheme"]) for r in rows] == [
        (e, s) for e in (math.inf, 1.0) for s in oac_table1.SCHEMES
    ]
    for row in rows:
        assert 0.0 <= row["macro_f1"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0
        assert 0.0 < row["accuracy_ci"] < 0.2
    by = {(r["epsilon"], r["scheme"]): r for r in rows}
    # The trained devices learned something; privacy costs the lone device and the
    # orthogonal slots far more than the shared sum over the air.
    assert by[(math.inf, "best_single")]["accuracy"] > 0.4  # chance: 0.1
    assert by[(math.inf, "ba_oac")]["macro_f1"] > by[(math.inf, "best_single")]["macro_f1"]
    assert by[(1.0, "mv_oac")]["macro_f1"] > by[(1.0, "mv_orth")]["macro_f1"] + 0.2
    assert by[(1.0, "mv_oac")]["macro_f1"] > by[(1.0, "best_single")]["macro_f1"] + 0.2
    table = (tmp_path / "run" / "oac_table1.md").read_text(encoding="utf-8")
    assert table.count("\n| ") == 1 + len(rows)  # header and one line per row
    assert (tmp_path / "run" / "oac_table1.png").stat().st_size > 0
    again = runner.run("oac_table1", out_dir=tmp_path / "run", overrides=tiny, quick=True,
                       progress=False)  # fmt: skip
    assert (again.computed, again.resumed) == (0, len(rows)) and again.rows == rows


def test_belief_sum_over_a_noiseless_link_decides_as_the_exact_sum(fake_members):
    config = oac_table1.OacTable1Config(
        ensemble=EnsembleSpec(members=8), epsilon=(math.inf,), snr_db=100.0, draws=2,
        backend="jax",
    )  # fmt: skip
    outputs = fake_members(config.ensemble)
    probs = aggregation.softmax(outputs.test_logits)  # [K, N, C]
    exact = np.argmax(probs.sum(axis=0), axis=-1)
    labels = outputs.test_labels
    point = {"epsilon": math.inf, "scheme": "ba_oac"}
    row = oac_table1.run_point(None, config, point)
    assert row["accuracy"] == np.mean(exact == labels)
    assert row["macro_f1"] == aggregation.macro_f1(exact, labels, NUM_CLASSES)
    assert row["dp_noise_std"] == 0.0
    # the exact sum beats every member: the comparison sees a real ensemble
    single = np.mean(np.argmax(outputs.test_logits, -1) == labels, axis=-1)
    assert row["accuracy"] > single.max()
    # and the link is not bypassed: deep below the noise floor the decisions degrade
    noisy = oac_table1.run_point(None, oac_table1.OacTable1Config(
        ensemble=config.ensemble, epsilon=(math.inf,), snr_db=-25.0, draws=2, backend="jax",
    ), point)  # fmt: skip
    assert noisy["accuracy"] < row["accuracy"] - 0.1


def test_best_single_is_the_best_validated_device_alone(fake_members):
    config = oac_table1.OacTable1Config(
        ensemble=EnsembleSpec(members=6), epsilon=(math.inf, 1.0), draws=4, backend="jax"
    )
    outputs = fake_members(config.ensemble)
    assert oac_table1.best_device(outputs.val_logits, outputs.val_labels) == 2
    own = np.argmax(outputs.test_logits[2], -1)
    clean = oac_table1.run_point(None, config, {"epsilon": math.inf, "scheme": "best_single"})
    assert clean["best_device"] == 2 and clean["channel_uses"] is None
    assert clean["accuracy"] == np.mean(own == outputs.test_labels)
    assert clean["macro_f1"] == aggregation.macro_f1(own, outputs.test_labels, NUM_CLASSES)
    private = oac_table1.run_point(None, config, {"epsilon": 1.0, "scheme": "best_single"})
    # alone, the device carries the whole noise of the analytic Gaussian mechanism
    sigma = analytic_gaussian_sigma(1.0, config.delta, SOFTMAX_SENSITIVITY)
    assert private["dp_noise_std"] == pytest.approx(sigma, rel=1e-12)
    assert private["epsilon_achieved"] == pytest.approx(1.0, rel=1e-6)
    # σ ≈ 5 on a one-hot vote: near chance (0.1), far below the clean device
    assert private["accuracy"] < 0.3 < clean["accuracy"]


def test_macro_f1_of_a_hand_counted_confusion_matrix():
    # true \ predicted   0  1  2
    #        0           2  1  0     F1_0 = 2·2 / (2·2 + 1 + 0) = 4/5
    #        1           0  1  1     F1_1 = 2·1 / (2·1 + 1 + 1) = 1/2
    #        2           0  0  1     F1_2 = 2·1 / (2·1 + 1 + 0) = 2/3
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 2, 2])
    expected = (4 / 5 + 1 / 2 + 2 / 3) / 3
    assert aggregation.macro_f1(predictions, labels, 3) == pytest.approx(expected, abs=1e-12)
    # not the accuracy (4/6) nor the micro average: each class weighs the same
    assert expected != pytest.approx(4 / 6)


def test_the_published_column_sits_beside_the_measured_one():
    config = oac_table1.OacTable1Config()
    rows = [
        {"epsilon": e, "scheme": s, "macro_f1": 0.5, "accuracy": 0.5, "accuracy_ci": 0.01,
         "dp_noise_std": 0.0, "epsilon_achieved": e, "channel_uses": 5}
        for e, s in (p.values() for p in oac_table1.points(config))
    ]  # fmt: skip
    lines = {
        tuple(cell.strip() for cell in line.split("|")[1:3]): line
        for line in oac_table1.markdown(rows, config).splitlines()
        if line.startswith("| ") and "scheme" not in line
    }
    assert len(lines) == 10
    for (epsilon, scheme), published in oac_table1.PUBLISHED_MACRO_F1.items():
        line = lines[("∞" if math.isinf(epsilon) else f"{epsilon:g}", oac_table1.TITLES[scheme])]
        assert line.split("|")[3].strip() == "50.00"
        assert line.split("|")[4].strip() == f"{published:.2f}"
    assert sum(line.split("|")[4].strip() == "—" for line in lines.values()) == 5


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="epsilon"):
        oac_table1.OacTable1Config(epsilon=(1.0, 0.0))
    with pytest.raises(ConfigError, match="draws"):
        oac_table1.OacTable1Config(draws=0)
    with pytest.raises(ConfigError, match="code_rate"):
        oac_table1.OacTable1Config(code_rate=1.0)
    with pytest.raises(ConfigError, match="ensemble.members"):
        apply_overrides(oac_table1.OacTable1Config(), ["ensemble.members=0"])
    # the default is the paper's: 20 devices on disjoint shards of Fashion-MNIST, 0 dB
    default = oac_table1.OacTable1Config()
    assert (default.ensemble.members, default.ensemble.diversity) == (20, "shards")
    assert (default.ensemble.dataset, default.snr_db, default.epsilon) == (
        "fashion_mnist", 0.0, (math.inf, 1.0),
    )  # fmt: skip
