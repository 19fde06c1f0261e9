"""strategies_snr with a fixed or an adaptive MCS: the config field and the CSV columns."""

import jax
import numpy as np
import pytest

from airinfer.experiments import runner, strategies_snr, table1
from airinfer.experiments.config import ConfigError, apply_overrides
from airinfer.phy import link_adaptation
from airinfer.phy.link_adaptation import link_config, select_mcs
from airinfer.strategies.adaptation import adapt_mcs
from tests.experiments.test_strategy_experiments import (
    TINY,
    own_cache,  # noqa: F401 (autouse)
)

# Long programs (LDPC decoding of many blocks): full XLA optimisation pays
# (tests/conftest.py).
pytestmark = pytest.mark.xla_optimized


def tiny(**changes):
    return strategies_snr.StrategiesSnrConfig(**(TINY | changes))


def test_the_mcs_field_parses_and_refuses_what_has_no_effect():
    config = strategies_snr.StrategiesSnrConfig()
    assert config.mcs is None  # the default: QPSK 1/2, results as before
    assert apply_overrides(config, ["mcs=adaptive"]).mcs == "adaptive"
    assert apply_overrides(config, ["mcs=27"]).mcs == 27
    assert apply_overrides(config, ["mcs=none"]).mcs is None
    for changes, match in (
        ({"mcs": "adaptive", "channels": ("awgn", "tdl-a")}, "channels has tdl-a"),
        ({"mcs": 27, "modulation": "16qam"}, "modulation: '16qam' has no effect with mcs=27"),
        ({"mcs": "adaptive", "code_rate": 0.75}, "code_rate: 0.75 has no effect"),
        ({"mcs": 1}, "mcs: 1 of table 2 has rate 193/1024"),
        ({"mcs": 28}, r"mcs: MCS index must be an int in \[0, 27\]"),
    ):
        with pytest.raises(ConfigError, match=match):
            strategies_snr.StrategiesSnrConfig(**changes)
    # a fixed MCS is fine over OFDM (the link runs it); adaptation is not
    assert strategies_snr.StrategiesSnrConfig(mcs=5, channels=("tdl-a",)).mcs == 5
    # the MCS tables are data: backend jax takes an MCS too (it used to refuse it)
    assert strategies_snr.StrategiesSnrConfig(mcs=10, backend="jax").mcs == 10
    assert strategies_snr.StrategiesSnrConfig(mcs="adaptive", backend="jax").mcs == "adaptive"
    # experiments deriving the config without adapting per point refuse "adaptive"
    with pytest.raises(ConfigError, match="Table1Config runs fixed links"):
        table1.Table1Config(mcs="adaptive")
    assert table1.Table1Config(mcs=5).mcs == 5


def test_a_fixed_mcs_reaches_every_digital_link_and_the_column():
    config = tiny(mcs=20, strategies=("local", "split_digital_b4", "partition_layer"))
    shape = strategies_snr.setup(config).dataset.image_shape
    split = strategies_snr.strategy(config, "split_digital_b4", "awgn")
    chain = strategies_snr.strategy(config, "partition_layer", "awgn")
    local = strategies_snr.strategy(config, "local", "awgn")
    assert split.mcs == 20 and {hop.mcs for hop in chain.hops} == {20}
    assert strategies_snr.mcs_cell(split, shape) == strategies_snr.mcs_cell(chain, shape) == 20
    assert strategies_snr.mcs_cell(local, shape) is None
    # the default config builds the QPSK 1/2 links, no MCS in the column
    default = strategies_snr.strategy(tiny(), "split_digital_b4", "awgn")
    assert default.mcs is None and strategies_snr.mcs_cell(default, shape) is None


def test_points_that_choose_the_same_mcs_share_one_compiled_strategy():
    config = tiny(mcs="adaptive", strategies=("split_digital_b4",))
    at = {snr: select_mcs(snr, 0.1, channel="awgn") for snr in (12.0, 12.1, 20.0)}
    assert at[12.0] == at[12.1] != at[20.0]
    first, _ = strategies_snr.adapted(config, "split_digital_b4", "awgn", 12.0)
    again, _ = strategies_snr.adapted(config, "split_digital_b4", "awgn", 12.1)
    other, _ = strategies_snr.adapted(config, "split_digital_b4", "awgn", 20.0)
    assert first is again and other is not first
    assert (first.mcs, other.mcs) == (at[12.0].index, at[20.0].index)


def test_a_quick_adaptive_sweep_writes_the_mcs_columns(tmp_path):
    # the split after hidden: 128 values x 4 bits, one 512-bit block per image
    config = tiny(mcs="adaptive", strategies=("local", "split_digital_b4"), snr_db=(-10.0, 12.0))
    result = runner.run(strategies_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {(r["strategy"], r["snr_db"]): r for r in result.rows}
    # local has no digital link: no MCS, no fallback, whatever the SNR
    for snr in config.snr_db:
        assert rows["local", snr]["mcs"] is None and rows["local", snr]["mcs_fallback"] is False
    # at -10 dB no MCS meets the target: the lowest (table 2, MCS 2) runs, reported
    assert rows["split_digital_b4", -10.0]["mcs"] == 2
    assert rows["split_digital_b4", -10.0]["mcs_fallback"] is True
    # at 12 dB the MCS select_mcs picks, and the channel uses follow it: n / Qm
    chosen = select_mcs(12.0, 0.1, channel="awgn", block_bits=512)
    high = rows["split_digital_b4", 12.0]
    assert high["mcs"] == chosen.index and high["mcs_fallback"] is False
    assert high["channel_uses"] == link_config(chosen, "awgn", 512).num_symbols < 512
    # ... and the split is then as good as the full model on its clean features
    server, _, _, images, labels = strategies_snr.setup(config)
    clean = float((jax.numpy.asarray(server(images)).argmax(-1) == labels).mean())
    assert high["accuracy"] >= clean - 0.05


def test_adaptive_curves_that_do_not_ship_are_measured_on_the_runs_backend(monkeypatch):
    # the horizontal partition's slices travel in 256-bit blocks: no shipped curve,
    # so adaptation measures one per MCS, on the JAX link when the run is on jax
    backends = []
    fake = link_adaptation.BlerCurve(
        np.array([0.0, 0.25, 0.5]), np.array([10, 0, 0]), np.array([10, 10, 10])
    )

    def measure(link, *, backend):
        backends.append(backend)
        return fake

    monkeypatch.setattr(link_adaptation, "measure_bler_curve", measure)
    link_adaptation._measured_curve.cache_clear()
    link_adaptation._table_curves.cache_clear()
    try:
        config = tiny(mcs="adaptive", backend="jax", strategies=("partition_horizontal",))
        built, fallback = strategies_snr.adapted(config, "partition_horizontal", "awgn", 10.0)
        assert not fallback
        # every supported MCS of table 2 (indices 2-27) measured once, all on jax
        assert backends == ["jax"] * 26
        assert built.hop.mcs == 27  # every fake curve is clean from 0.25 dB
    finally:
        link_adaptation._measured_curve.cache_clear()
        link_adaptation._table_curves.cache_clear()


def test_adapt_mcs_refuses_an_unknown_backend():
    with pytest.raises(ValueError, match=r"^backend: 'tf' is not one of sionna, jax$"):
        adapt_mcs(object(), "awgn", 5.0, (8, 8, 1), backend="tf")
