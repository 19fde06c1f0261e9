"""strategies_snr and table1 on digits with briefly trained models (own model cache)."""

import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.experiments import hybrid_snr, runner, strategies_snr, strategy_batches, table1
from airinfer.experiments.config import ConfigError
from airinfer.strategies import registry
from airinfer.strategies.base import Link
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy
from tests.conftest import SHARED_DIR_ENV

# Two compact members and a full CNN, three epochs each: cheap, yet far above chance.
TINY = {
    "dataset": "digits", "epochs": 3, "server_recipe": "short", "ensemble_members": 2,
    "ensemble_devices": 2, "num_test": 150, "batch_size": 64, "channels": ("awgn",),
    "jscc_epochs": 1,
}  # fmt: skip


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """A model cache of the strategy experiments' own, and fresh memo tables.

    The cache is in the run's shared folder, so that the tiny models are trained
    once per run, not once per worker (the cache's lock makes the other workers
    wait for them); in this process's base folder without one.
    """
    shared = os.environ.get(SHARED_DIR_ENV)
    root = pathlib.Path(shared) if shared else tmp_path_factory.getbasetemp()
    monkeypatch.setenv("AIRINFER_CACHE", str(root / "strategy-models"))
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
    whole, cost = strategy_batches.evaluate(strategy, jax.random.key(0), images, labels, link, 150)
    padded, _ = strategy_batches.evaluate(strategy, jax.random.key(0), images, labels, link, 64)
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


@pytest.mark.xla_optimized
def test_sweep_columns_and_the_digital_cliff(tmp_path):
    config = tiny(strategies=("local", "split_digital_b8", "edge_ensemble"), snr_db=(-20.0, 30.0))
    result = runner.run(strategies_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {(r["strategy"], r["snr_db"]): r for r in result.rows}
    assert len(rows) == 6
    for column in ("accuracy", "accuracy_ci", *strategy_batches.COST_COLUMNS):
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
        "edge_ensemble", "edge_ensemble_direct", "edge_ensemble_encoder", "hybrid",
    )  # fmt: skip
    assert table1.Table1Config().strategies == strategies_snr.STRATEGIES


# The edge ensembles' rounds on the tiny setup (two devices, 8 x 8 digits): the return
# carries ten classes in five complex channel uses; the direct multicast 8-bit pixels in
# one 512-bit LDPC block (512 QPSK symbols); the encoder a 2 x 2 x 8 bottleneck code of
# 4-bit values (128 bits, one block too).
RETURN_USES, BLOCK_USES = 5, 512
EDGE_COSTS = {
    "edge_ensemble": (RETURN_USES, 0),
    "edge_ensemble_direct": (BLOCK_USES + RETURN_USES, 512),
    "edge_ensemble_encoder": (BLOCK_USES + RETURN_USES, 128),
}
EDGE = tuple(EDGE_COSTS)


def test_edge_ensembles_and_the_hybrid_are_built_by_name_with_both_rounds_counted():
    config = tiny(encoder_bottleneck_steps=20, strategies=EDGE + ("hybrid",))
    built = {name: strategies_snr.strategy(config, name, "awgn") for name in config.strategies}
    for name, (uses, bits) in EDGE_COSTS.items():
        assert isinstance(built[name], EdgeEnsembleStrategy) and built[name].name == name
        assert built[name].num_members == config.ensemble_devices
        cost = built[name].cost((8, 8, 1), 10)
        assert (cost.channel_uses, cost.payload_bits) == (uses, bits)
        assert registry.entry(name).offline
    # the encoder's device path is member 0's front and code plus a head: the member's work
    member = built["edge_ensemble"].cost((8, 8, 1), 10).device_flops
    assert built["edge_ensemble_encoder"].cost((8, 8, 1), 10).device_flops > member
    hybrid = built["hybrid"]
    assert hybrid.name == "hybrid" and hybrid.trust == config.hybrid_trust
    assert isinstance(hybrid.server, CloudStrategy) and hybrid.ensemble.name == "edge_ensemble"


@pytest.mark.slow  # compiles three Sionna links: ~3 min on 2 busy cores
def test_sweep_of_the_edge_ensembles_and_the_hybrid(tmp_path):
    config = tiny(
        strategies=("local", *EDGE, "hybrid"), snr_db=(-20.0, 30.0), encoder_bottleneck_steps=20
    )
    result = runner.run(strategies_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {(r["strategy"], r["snr_db"]): r for r in result.rows}
    for name, (uses, bits) in EDGE_COSTS.items():
        assert (rows[name, 30.0]["channel_uses"], rows[name, 30.0]["payload_bits"]) == (uses, bits)
    assert rows["hybrid", 30.0]["channel_uses"] == RETURN_USES + BLOCK_USES
    # at -20 dB every multicast copy fails its CRC: device 0 decides alone, as `local` does
    assert rows["edge_ensemble_direct", -20.0]["accuracy"] == rows["local", -20.0]["accuracy"]
    assert rows["hybrid", 30.0]["accuracy"] > 0.8


@pytest.mark.slow  # trains an inverse network per row: ~2 min on 2 busy cores
def test_table1_counts_the_multicast_in_cost_and_privacy(tmp_path):
    config = table1.Table1Config(
        **(TINY | {"strategies": ("edge_ensemble", "edge_ensemble_direct"), "attack_train": 400})
    )
    config = dataclasses.replace(config, attack_epochs=20, channel="awgn", snr_db=(20.0,))
    result = runner.run(table1.EXPERIMENT, config, out_dir=tmp_path / "t1", progress=False)
    shared, direct = result.rows
    assert direct["channel_uses"] == shared["channel_uses"] + BLOCK_USES
    assert direct["latency_s"] == pytest.approx(shared["latency_s"] + BLOCK_USES / 1e6, rel=1e-6)
    # a neighbour's softmax hides the image; the multicast pixels give it away
    assert direct["privacy_psnr_db"] > shared["privacy_psnr_db"] + 5
    assert direct["offline_accuracy"] == shared["offline_accuracy"]
    assert "| edge_ensemble_direct |" in (tmp_path / "t1" / "table1.md").read_text()


def test_hybrid_snr_points_config_and_plot(tmp_path):
    config = hybrid_snr.HybridSnrConfig(**(TINY | {"snr_db": (0.0, 10.0)}))
    points = hybrid_snr.points(config)
    assert len(points) == len(config.server_connectivities) * 2
    assert {p["server_connectivity"] for p in points} == set(config.server_connectivities)
    rows = [
        p | {s: 0.5 for s in hybrid_snr.SCHEMES} | {f"{s}_ci": 0.1 for s in hybrid_snr.SCHEMES}
        for p in points
    ]
    hybrid_snr.plot(rows, config, tmp_path / "hybrid_snr.png")
    assert (tmp_path / "hybrid_snr.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="server_connectivity: 0.5 has no effect"):
        hybrid_snr.HybridSnrConfig(server_connectivity=0.5)
    with pytest.raises(ConfigError, match="strategies: "):
        hybrid_snr.HybridSnrConfig(strategies=("local",))
    with pytest.raises(ConfigError, match="server_connectivities"):
        hybrid_snr.HybridSnrConfig(server_connectivities=(1.5,))


@pytest.mark.slow  # compiles the hybrid's Sionna uplink and trains the tiny models: ~2 min
def test_hybrid_snr_beats_or_meets_its_parents(tmp_path):
    config = hybrid_snr.HybridSnrConfig(
        **(TINY | {"snr_db": (-20.0, 30.0), "server_connectivities": (0.0, 0.5, 1.0)})
    )
    result = runner.run(hybrid_snr.EXPERIMENT, config, out_dir=tmp_path / "h", progress=False)
    rows = {(r["server_connectivity"], r["snr_db"]): r for r in result.rows}
    for snr in config.snr_db:
        # no server: the hybrid is its ensemble, the server alone answers nothing
        assert rows[0.0, snr]["hybrid"] == rows[0.0, snr]["ensemble"]
        assert rows[0.0, snr]["server"] == 0 and rows[0.0, snr]["server_reached"] == 0
    # a server that never decodes (-20 dB) counts nowhere
    assert rows[1.0, -20.0]["server_reached"] == 0
    assert rows[1.0, -20.0]["hybrid"] == rows[1.0, -20.0]["ensemble"]
    assert rows[1.0, 30.0]["server_reached"] == 1
    # half the answers missing: the server alone falls far behind, the hybrid does not
    assert rows[0.5, 30.0]["server"] < rows[0.5, 30.0]["hybrid"] - 0.2


def test_bad_configs_are_named():
    with pytest.raises(ConfigError, match="ensemble_devices"):
        tiny(ensemble_devices=3)
    with pytest.raises(ConfigError, match="analog_matched_bits"):
        tiny(analog_matched_bits=3)
    with pytest.raises(ConfigError, match="snr_db"):
        table1.Table1Config(snr_db=(0.0, 10.0))
    with pytest.raises(ConfigError, match="connectivity"):
        table1.Table1Config(connectivity=1.5)
    with pytest.raises(ConfigError, match="encoder_split_point: 'input'"):
        tiny(encoder_split_point="input")
    with pytest.raises(ConfigError, match="hybrid_server: unknown 'local'"):
        tiny(hybrid_server="local")
    with pytest.raises(ConfigError, match="hybrid_trust"):
        tiny(hybrid_trust=2.0)
    with pytest.raises(ConfigError, match="encoder_bits"):
        tiny(encoder_bits=0)


@pytest.mark.slow  # compiles an OFDM link per strategy: ~10 min on 2 busy cores
def test_every_strategy_runs_over_tdl_a(tmp_path):
    """On 3GPP TDL-A (OFDM) every built-in strategy runs; at 30 dB the digital links
    decode and give the clean models' decisions."""
    config = tiny(channels=("tdl-a",), snr_db=(30.0,), strategies=strategies_snr.STRATEGIES)
    result = runner.run(strategies_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {r["strategy"]: r for r in result.rows}
    assert set(rows) == set(strategies_snr.STRATEGIES)
    server, _, _, images, labels = strategies_snr.setup(config)
    clean = np.mean(np.asarray(server(images)).argmax(-1) == labels)
    for name in ("cloud_digital", "split_digital_b8", "partition_layer"):
        assert abs(rows[name]["accuracy"] - clean) <= 2 / len(labels), name
    assert all(r["accuracy"] > 0.5 for r in result.rows)
