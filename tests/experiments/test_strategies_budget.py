"""strategies_budget: every strategy spends a budget of channel uses, or falls back."""

import math

import jax
import numpy as np
import pytest

from airinfer.experiments import budget_settings, runner, strategies_budget, strategies_snr
from airinfer.experiments.config import ConfigError, apply_overrides
from airinfer.strategies import registry as strategy_registry
from tests.experiments.test_strategy_experiments import (
    TINY,
    own_cache,  # noqa: F401 (autouse)
)

# local, the digital split and the edge ensemble at one SNR: cheap to plan, and at
# budgets up to 64 the split never runs (one 512-bit block takes 132 channel uses at
# 15 dB on AWGN), so no LDPC decoder is compiled.
CHEAP = {
    "strategies": ("local", "split_digital", "edge_ensemble"), "snr_db": (15.0,),
    "budgets": (4, 16, 64), "ota_repetitions": (1, 3, 12), "backend": "jax",
}  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_plans():
    strategies_budget.clear_caches()
    yield
    strategies_budget.clear_caches()


def tiny(**changes):
    return strategies_budget.StrategiesBudgetConfig(**(TINY | CHEAP | changes))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("budgets=[]", "budgets: empty"),
        ("budgets=16,0", "budgets: 0 is not allowed; allowed: ints >= 1"),
        ("budgets=16,16", r"budgets: \(16, 16\) repeats a value"),
        ("budgets=16.5", "budgets"),
        ("snr_db=nan", "snr_db: nan is not allowed; allowed: finite numbers"),
        ("channels=tdl-a", "channels: 'tdl-a' is not allowed; allowed: awgn, rayleigh"),
        ("strategies=local,nobody", "strategies: 'nobody' is not allowed"),
        ("split_bits=3", "split_bits: 3 is not allowed; allowed: 2, 4 or 8"),
        ("jpeg_qualities=0", r"jpeg_qualities: 0 is not allowed; allowed: ints in \[1, 100\]"),
        ("ota_repetitions=0", "ota_repetitions: 0"),
        ("partition_chains=conv2+", "partition_chains: 'conv2\\+' is not allowed"),
        ("target_bler=1.0", r"target_bler: 1.0 is not in \(0, 1\)"),
        ("mcs=5", "mcs: 5; strategies_budget adapts every digital link"),
        ("jpeg_quality=50", "jpeg_quality: 50 has no effect here; set jpeg_qualities"),
        ("direct_source=jpeg", "direct_source: 'jpeg'; a codec stream's length varies"),
        ("hybrid_server=cloud_jpeg", "hybrid_server: 'cloud_jpeg'"),
    ],
)
def test_bad_config_values_name_their_field(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(strategies_budget.StrategiesBudgetConfig(), [override])


def test_default_config_and_its_settings():
    config = strategies_budget.StrategiesBudgetConfig()
    assert config.budgets == tuple(4**i for i in range(2, 8)) and config.snr_db == (-5, 5, 15)
    assert config.strategies == budget_settings.FAMILIES and config.dataset == "fashion_mnist"
    # every family has settings, lowest rank first; the labels say what changes
    labels = {f: [s.label for s in budget_settings.settings(config, f)] for f in config.strategies}
    assert labels["split_digital"] == ["split_digital_b2", "split_digital_b4", "split_digital_b8"]
    assert labels["partition_layer"][:2] == [
        "partition_cuts=hidden,hop_bits=2", "partition_cuts=conv2+hidden,hop_bits=2",
    ]  # fmt: skip
    assert labels["edge_ensemble"][-1] == "repetitions=192" and labels["local"] == ["local"]


def test_planned_uses_are_the_strategies_own_costs_and_the_rule_picks_the_best_fit():
    config = tiny()
    shape = strategies_snr.setup(config).dataset.image_shape
    split = budget_settings.settings(config, "split_digital")
    plans = [budget_settings.plan(config, s, "awgn", 15.0) for s in split]
    for found in plans:
        assert found.uses == found.strategy.cost(shape, "awgn").channel_uses
        assert not found.mcs_fallback and found.strategy.mcs is not None
    b2, b4, b8 = (p.uses for p in plans)
    # 128 hidden values: 2 and 4 bits fill one 512-bit block, 8 bits two
    assert b2 == b4 and b8 == 2 * b4

    def chosen(budget, family="split_digital"):
        choice = budget_settings.choose(config, family, "awgn", 15.0, budget)
        return choice.fallback or choice.setting.label

    assert chosen(b4 - 1) == "chance"  # cloud and split cannot decide without the server
    assert chosen(b4) == "split_digital_b4"  # ties go to the higher rank
    assert chosen(b8 - 1) == "split_digital_b4" and chosen(b8) == "split_digital_b8"
    # the ensemble: 1, 3, 12 repetitions of ceil(10 / 2) symbols, else the device alone
    ensemble = budget_settings.settings(config, "edge_ensemble")
    for setting, uses in zip(ensemble, (5, 15, 60), strict=True):
        found = budget_settings.plan(config, setting, "awgn", 15.0)
        assert found.uses == uses == found.strategy.cost(shape, 10).channel_uses
    assert [chosen(b, "edge_ensemble") for b in (4, 14, 15, 10**6)] == [
        "local", "repetitions=1", "repetitions=3", "repetitions=12",
    ]  # fmt: skip


class _Trained(Exception):
    """Raised in place of training a codec: the test has what it wanted to see."""


def test_the_analog_split_takes_its_channel_uses_from_the_options(monkeypatch):
    seen = []

    def capture(classifier, dataset, split_seed, jscc, **kwargs):
        seen.append(jscc.symbols)
        raise _Trained

    monkeypatch.setattr(strategy_registry, "cached_train_jscc", capture)
    config = tiny(strategies=("split_analog",), analog_symbol_counts=(64,))
    (setting,) = budget_settings.settings(config, "split_analog")
    with pytest.raises(_Trained):
        budget_settings.strategy(config, setting, "awgn")
    # without the option, the symbols of the 2-bit digital split: 128 x 2 bits, one
    # 512-bit block at QPSK 1/2
    with pytest.raises(_Trained):
        strategies_snr.strategy(config, "split_analog", "awgn")
    assert seen == [64, 512]


def test_settings_without_shipped_curves_are_left_out_and_listed():
    config = tiny(strategies=("partition_layer",), partition_chains=("hidden",))
    rows = budget_settings.setting_table(config)
    skipped = {r["setting"]: r["skipped"] for r in rows}
    # 128 values x 2 bits is one 256-bit block: its BLER curves would be measured first
    assert "256 bits" in skipped["partition_cuts=hidden,hop_bits=2"]
    assert skipped["partition_cuts=hidden,hop_bits=8"] is None
    assert math.isinf(rows[0]["planned_uses"])
    choice = budget_settings.choose(config, "partition_layer", "awgn", 15.0, 10**6)
    assert choice.setting.label == "partition_cuts=hidden,hop_bits=8"


def test_budgets_below_the_minimum_report_their_fallback(tmp_path):
    config = tiny()
    result = runner.run(
        strategies_budget.EXPERIMENT, config, out_dir=tmp_path / "a", progress=False
    )
    rows = {(r["strategy"], r["budget"]): r for r in result.rows}
    assert len(rows) == 9
    for row in result.rows:
        assert row["channel_uses"] <= row["budget"]
        assert row["channel_uses"] == row["planned_uses"]
    # below one block the split cannot run: reported, at the accuracy of guessing
    _, _, dataset, _, labels = strategies_snr.setup(config)
    guess = np.mean(labels == np.bincount(dataset.train_labels).argmax())
    for budget in config.budgets:
        row = rows["split_digital", budget]
        assert row["fallback"] == "chance" and row["setting"] is None and row["mcs"] is None
        assert row["accuracy"] == guess and row["channel_uses"] == 0
        assert rows["local", budget]["fallback"] is None
    # the ensemble's 5 symbols do not fit in 4: device 0 decides alone, as local does
    low = rows["edge_ensemble", 4]
    assert low["fallback"] == "local" and low["setting"] is None and low["channel_uses"] == 0
    assert low["accuracy"] == rows["local", 4]["accuracy"]
    assert rows["edge_ensemble", 16]["setting"] == "repetitions=3"
    assert rows["edge_ensemble", 16]["channel_uses"] == 15
    assert rows["edge_ensemble", 64]["channel_uses"] == 60
    assert (tmp_path / "a" / "strategies_budget.png").stat().st_size > 0
    markdown = (tmp_path / "a" / "winners.md").read_text()
    assert markdown.count("\n| ") == 4  # the separator and three budgets
    assert "skipped" in (tmp_path / "a" / "settings.csv").read_text().partition("\n")[0]
    # the same config gives the same rows, whatever was built before
    strategies_budget.clear_caches()
    again = runner.run(strategies_budget.EXPERIMENT, config, out_dir=tmp_path / "b", progress=False)
    assert again.rows == result.rows


def _row(strategy, budget, accuracy, uses, ci=0.02):
    return {
        "channel": "awgn", "snr_db": 5.0, "budget": budget, "strategy": strategy,
        "setting": strategy, "fallback": None, "accuracy": accuracy, "accuracy_ci": ci,
        "channel_uses": uses,
    }  # fmt: skip


def test_winners_break_ties_by_channel_uses_and_mark_close_calls():
    rows = [
        _row("local", 16, 0.90, 0), _row("edge_ensemble", 16, 0.95, 15),
        _row("local", 64, 0.90, 0), _row("edge_ensemble", 64, 0.90, 60),
        _row("split_digital", 64, 0.89, 60),
    ]  # fmt: skip
    found = {w["budget"]: w for w in strategies_budget.winners(rows)}
    assert found[16]["winner"] == "edge_ensemble" and found[16]["clear"]
    assert found[16]["runner_up"] == "local" and found[16]["runner_up_accuracy"] == 0.90
    assert found[64]["winner"] == "local" and not found[64]["clear"]  # fewer uses wins a tie
    table = strategies_budget.winners_markdown(list(found.values()))
    assert table.splitlines()[0] == "| budget | awgn 5 dB |"
    assert "| 16 | edge_ensemble 0.950 |" in table and "| 64 | local 0.900* |" in table


@pytest.mark.slow
def test_digital_and_analog_settings_run_what_they_planned(tmp_path):
    """The split at its adapted MCS and a 16-symbol analog codec (trained: slow)."""
    config = tiny(
        strategies=("split_digital", "split_analog"), budgets=(256, 1024),
        analog_symbol_counts=(16,), backend="sionna",
    )  # fmt: skip
    result = runner.run(strategies_budget.EXPERIMENT, config, out_dir=tmp_path, progress=False)
    rows = {(r["strategy"], r["budget"]): r for r in result.rows}
    assert rows["split_digital", 256]["setting"] == "split_digital_b4"
    assert rows["split_digital", 1024]["setting"] == "split_digital_b8"
    for row in result.rows:
        assert row["channel_uses"] == row["planned_uses"] <= row["budget"]
        assert row["fallback"] is None
    assert rows["split_digital", 256]["mcs"] is not None
    assert rows["split_analog", 256]["channel_uses"] == 16
    analog = budget_settings.strategy(
        config, budget_settings.settings(config, "split_analog")[0], "awgn"
    )
    assert analog.config.symbols == 16
    # the split is as good as the full model on its clean features
    server, _, _, images, labels = strategies_snr.setup(config)
    clean = float((jax.numpy.asarray(server(images)).argmax(-1) == labels).mean())
    assert rows["split_digital", 1024]["accuracy"] >= clean - 0.05
