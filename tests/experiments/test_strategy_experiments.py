"""strategies_snr and table1 on digits with briefly trained models (own model cache)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.experiments import runner, strategies_snr, table1
from airinfer.experiments.config import ConfigError
from airinfer.strategies import registry
from airinfer.strategies.base import Link
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy

# Two compact members and a full CNN, one epoch each: cheap, yet far above chance.
TINY = {
    "dataset": "digits", "epochs": 3, "ensemble_members": 2, "ensemble_devices": 2,
    "num_test": 150, "batch_size": 64, "channels": ("awgn",), "jscc_epochs": 1,
}  # fmt: skip


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """A model cache of this module's own (shared by its tests), and fresh memo tables."""
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path_factory.getbasetemp() / "models"))
    strategies_snr.clear_caches()
    table1.attack_data.cache_clear()
    table1.blind_floor.cache_clear()


def tiny(**changes):
    return strategies_snr.StrategiesSnrConfig(**(TINY | changes))


def test_evaluate_pads_the_last_batch_without_counting_it():
    config = tiny()
    server, _, _, images, labels = strategies_snr.setup(config)
    strategy = LocalStrategy(server)
    link = Link(snr_db=jnp.float32(0.0))
    whole, cost = strategies_snr.evaluate(strategy, jax.random.key(0), images, labels, link, 150)
    padded, _ = strategies_snr.evaluate(strategy, jax.random.key(0), images, labels, link, 64)
    assert padded == whole == int(np.sum(np.asarray(server(images)).argmax(-1) == labels))
    assert cost["channel_uses"] == 0 and cost["device_flops"] > 0


def test_analog_link_gets_the_channel_uses_of_the_matched_digital_split():
    config = tiny(analog_matched_bits=4)
    server, _, dataset, images, _ = strategies_snr.setup(config)
    digital = SplitDigitalStrategy(server, config.split_point, 4, 1.0, signed=False)
    uses = digital.cost(dataset.image_shape, "awgn").channel_uses
    matched = registry.matched_symbols(
        server, config.split_point, 4, dataset.image_shape, "qpsk", 0.5, 512
    )
    assert matched == uses
    # the hidden layer of the width-1 CNN: 128 values x 4 bits in one 512-bit block
    assert uses == 512


def test_sweep_columns_and_the_digital_cliff(tmp_path):
    config = tiny(strategies=("local", "split_digital_b8", "edge_ensemble"), snr_db=(-20.0, 30.0))
    result = runner.run(strategies_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {(r["strategy"], r["snr_db"]): r for r in result.rows}
    assert len(rows) == 6
    for column in ("accuracy", "accuracy_ci", *strategies_snr.COST_COLUMNS):
        assert all(r[column] is not None for r in result.rows)
    # local does not look at the link
    assert rows["local", -20.0]["accuracy"] == rows["local", 30.0]["accuracy"]
    assert rows["local", 30.0]["channel_uses"] == 0
    # the digital split is the full model at 30 dB and close to chance at -20 dB
    server, _, _, images, labels = strategies_snr.setup(config)
    clean = np.mean(np.asarray(server(images)).argmax(-1) == labels)
    assert abs(rows["split_digital_b8", 30.0]["accuracy"] - clean) <= 2 / len(labels)
    assert rows["split_digital_b8", -20.0]["accuracy"] < 0.4
    assert rows["split_digital_b8", 30.0]["payload_bits"] == 128 * 8
    # ten classes over the air: five complex channel uses whatever the SNR
    assert rows["edge_ensemble", -20.0]["channel_uses"] == 5
    assert (tmp_path / "run" / "strategies_snr.png").stat().st_size > 0


def test_table1_privacy_floor_and_markdown(tmp_path):
    config = table1.Table1Config(
        **(TINY | {"strategies": ("local", "cloud_digital"), "attack_train": 400})
    )
    config = dataclasses.replace(config, attack_epochs=20, channel="awgn", snr_db=(20.0,))
    result = runner.run(table1.EXPERIMENT, config, out_dir=tmp_path / "t1", progress=False)
    local, cloud = result.rows
    # nothing leaves the local device: the attacker is blind
    assert local["privacy_psnr_db"] == local["blind_psnr_db"]
    assert local["offline_accuracy"] == local["accuracy"]
    # the raw pixels give the image away
    assert cloud["privacy_psnr_db"] > cloud["blind_psnr_db"] + 5
    assert cloud["offline_accuracy"] is None and cloud["channel_uses"] == 512
    markdown = (tmp_path / "t1" / "table1.md").read_text()
    assert markdown.count("\n| ") == 3  # header and two rows
    assert "| cloud_digital |" in markdown and "| no |" in markdown


def test_a_registered_strategy_is_drawn_by_name(tmp_path, request):
    """A user's builder, registered by name, becomes a curve of strategies_snr."""
    built = []

    @registry.register("last_member")
    def last_member(context, channel):
        built.append(channel)
        return LocalStrategy(context.ensemble.member(context.ensemble.size - 1))

    request.addfinalizer(lambda: registry.unregister("last_member"))

    assert "last_member" in registry.names()
    config = tiny(strategies=("local", "last_member"), snr_db=(0.0,))
    result = runner.run(strategies_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {r["strategy"]: r for r in result.rows}
    assert built == [None]  # built once, for every channel
    assert 0.5 < rows["last_member"]["accuracy"] <= 1 and rows["last_member"]["channel_uses"] == 0
    with pytest.raises(ConfigError, match="strategies: unknown 'nobody'; allowed: local, "):
        tiny(strategies=("local", "nobody"))


def test_the_default_curves_keep_their_order():
    """A point's key follows its index: the built-in strategies' order is part of the results."""
    assert strategies_snr.STRATEGIES == (
        "local", "cloud_digital", "cloud_jpeg", "split_digital_b2", "split_digital_b4",
        "split_digital_b8", "split_analog", "partition_layer", "partition_horizontal",
        "edge_ensemble",
    )  # fmt: skip


def test_bad_configs_are_named():
    with pytest.raises(ConfigError, match="ensemble_devices"):
        tiny(ensemble_devices=3)
    with pytest.raises(ConfigError, match="analog_matched_bits"):
        tiny(analog_matched_bits=3)
    with pytest.raises(ConfigError, match="snr_db"):
        table1.Table1Config(snr_db=(0.0, 10.0))
    with pytest.raises(ConfigError, match="connectivity"):
        table1.Table1Config(connectivity=1.5)
