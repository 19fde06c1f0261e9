"""Latency vs uplink bitrate: the latency model (strategies.latency) and the experiment."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from airinfer.experiments import latency_bitrate, runner
from airinfer.experiments.config import ConfigError, apply_overrides
from airinfer.experiments.latency_bitrate import LatencyBitrateConfig
from airinfer.models.zoo import ModelConfig, abstract_model, build_model
from airinfer.strategies import latency
from airinfer.strategies.base import Hardware
from airinfer.strategies.latency import ModelProfile, Placement, SplitCost

# Floating-point sums of a few terms: equal to within a few ulps.
REL = 1e-12

# A model by hand: 100 input values, 1000 FLOPs; cut "a" early (big features),
# cut "b" late (small features).
PROFILE = ModelProfile(
    input_values=100,
    full_flops=1000.0,
    splits=(SplitCost("a", 200.0, 800.0, 400), SplitCost("b", 900.0, 100.0, 10)),
)
HARDWARE = Hardware(device_flops_per_s=100.0, server_flops_per_s=1e4)


def test_latency_formulas_hand_computed():
    options = latency.placements(PROFILE, input_bits=8, feature_bits=4, bottleneck=0.5)
    assert [o.label for o in options] == ["edge_only", "cloud_only", "split@a", "split@b"]
    # payloads: 100 * 8 = 800; ceil(0.5 * 400) * 4 = 800; ceil(0.5 * 10) * 4 = 20
    assert [o.payload_bits for o in options] == [0.0, 800.0, 800.0, 20.0]
    assert [o.device_flops for o in options] == [1000.0, 0.0, 200.0, 900.0]
    assert [o.server_flops for o in options] == [0.0, 1000.0, 800.0, 100.0]
    expected = [  # device, uplink (rtt 0.5 s + bits / 1000 bit/s), server
        (10.0, 0.0, 0.0),
        (0.0, 0.5 + 0.8, 0.1),
        (2.0, 0.5 + 0.8, 0.08),
        (9.0, 0.5 + 0.02, 0.01),
    ]
    for option, (device, uplink, server) in zip(options, expected, strict=True):
        got = latency.placement_latency(option, 1000.0, HARDWARE, rtt_s=0.5)
        assert got.device_s == pytest.approx(device, rel=REL)
        assert got.uplink_s == pytest.approx(uplink, rel=REL)
        assert got.server_s == pytest.approx(server, rel=REL)
        assert got.latency_s == pytest.approx(device + uplink + server, rel=REL)


def test_latency_matches_the_base_interface_at_one_bit_per_channel_use():
    from airinfer.strategies.base import latency_s

    for option in latency.placements(PROFILE, feature_bits=3, bottleneck=0.25):
        for rate in (1e3, 2.5e5):
            got = latency.placement_latency(option, rate, HARDWARE).latency_s
            hardware = Hardware(100.0, 1e4, symbol_rate_hz=rate)
            base = latency_s(
                option.device_flops, option.payload_bits, option.server_flops, hardware
            )
            assert got == pytest.approx(base, rel=REL)


def test_bottleneck_keeps_a_whole_number_of_values():
    profile = ModelProfile(100, 1.0, (SplitCost("p", 0.5, 0.5, 100),))
    # 0.07 * 100 is 7.000000000000001 in floating point: still 7 values, not 8
    assert latency.placements(profile, feature_bits=8, bottleneck=0.07)[2].payload_bits == 56.0
    assert latency.placements(profile, feature_bits=8, bottleneck=0.071)[2].payload_bits == 64.0
    assert latency.placements(profile, feature_bits=32)[2].payload_bits == 3200.0  # float32


# Three lines with known crossings: edge 1 s; cloud 1e6 bits; a split of 0.1 s + 1e5 bits.
# split < edge iff R > 1e5 / 0.9; split < cloud iff R < 9e5 / 0.1 = 9e6.
EDGE, CLOUD, SPLIT = (1.0, 0.0), (0.0, 1e6), (0.1, 1e5)


def test_lower_envelope_constructed_case():
    envelope = latency.lower_envelope([EDGE, CLOUD, SPLIT], 1e4, 1e8)
    assert [i for i, _, _ in envelope] == [0, 2, 1]
    (_, low0, high0), (_, low1, high1), (_, low2, high2) = envelope
    assert low0 == 1e4 and high2 == 1e8
    assert high0 == pytest.approx(1e5 / 0.9, rel=REL) and low1 == high0
    assert high1 == pytest.approx(9e6, rel=REL) and low2 == high1
    # A range inside the split's regime: the split alone. A dominated line changes nothing.
    assert [i for i, _, _ in latency.lower_envelope([EDGE, CLOUD, SPLIT], 2e5, 1e6)] == [2]
    worse = (0.2, 2e5)  # more compute and more bits than SPLIT
    assert [i for i, _, _ in latency.lower_envelope([EDGE, worse, CLOUD, SPLIT], 1e4, 1e8)] == [
        0,
        3,
        2,
    ]
    # Without the split, edge and cloud cross where 1 = 1e6 / R.
    two = latency.lower_envelope([EDGE, CLOUD], 1e4, 1e8)
    assert [i for i, _, _ in two] == [0, 1] and two[0][2] == pytest.approx(1e6, rel=REL)


def test_lower_envelope_matches_a_dense_argmin():
    rng = np.random.default_rng(0)
    grid = np.geomspace(1e4, 1e8, 4001)
    for _ in range(20):
        lines = [
            (float(a), float(b))
            for a, b in zip(rng.exponential(1, 6), rng.exponential(1e5, 6), strict=True)
        ]
        envelope = latency.lower_envelope(lines, grid[0], grid[-1])
        values = np.array([[a + b / r for r in grid] for a, b in lines])
        winners = values.argmin(axis=0)
        for index, low, high in envelope:
            inside = (grid > low * (1 + 1e-9)) & (grid < high * (1 - 1e-9))
            assert np.all(winners[inside] == index)
        # contiguous, increasing, covering the range
        assert envelope[0][1] == grid[0] and envelope[-1][2] == grid[-1]
        assert all(envelope[k][2] == envelope[k + 1][1] for k in range(len(envelope) - 1))


def test_faster_interval_and_split_window():
    assert latency.faster_interval(SPLIT, EDGE) == pytest.approx((1e5 / 0.9, math.inf))
    assert latency.faster_interval(SPLIT, CLOUD) == pytest.approx((0.0, 9e6))
    assert latency.faster_interval(EDGE, SPLIT) == pytest.approx((0.0, 1e5 / 0.9))
    assert latency.faster_interval(CLOUD, SPLIT) == pytest.approx((9e6, math.inf))
    assert latency.faster_interval((0.1, 5.0), (0.2, 5.0)) == (0.0, math.inf)
    assert latency.faster_interval((0.3, 5.0), (0.2, 9.0)) == pytest.approx((0.0, 40.0))
    assert latency.faster_interval((0.3, 5.0), (0.2, 5.0)) is None
    assert latency.faster_interval((0.3, 9.0), (0.2, 5.0)) is None  # more of both: never
    hardware = Hardware(device_flops_per_s=1.0, server_flops_per_s=1e12)
    edge = Placement("edge_only", None, 1.0, 0.0, 0.0)
    cloud = Placement("cloud_only", None, 0.0, 0.0, 1e6)
    split = Placement("split", "p", 0.1, 0.0, 1e5)
    window = latency.split_window(split, edge, cloud, hardware)
    assert window == pytest.approx((1e5 / 0.9, 9e6))
    big = Placement("split", "p", 0.1, 0.0, 1e6)  # features as large as the input
    assert latency.split_window(big, edge, cloud, hardware) is None


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="bottleneck"):
        latency.placements(PROFILE, bottleneck=0.0)
    with pytest.raises(ValueError, match="feature_bits"):
        latency.placements(PROFILE, feature_bits=0)
    with pytest.raises(ValueError, match="input_bits"):
        latency.placements(PROFILE, input_bits=math.nan)
    with pytest.raises(ValueError, match="split_point"):
        Placement("split", None, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="split_point"):
        Placement("edge_only", "a", 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="strategy"):
        Placement("fog", None, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="payload_bits"):
        Placement("cloud_only", None, 0.0, 1.0, -1.0)
    option = latency.placements(PROFILE)[1]
    with pytest.raises(ValueError, match="bitrate_bps"):
        latency.placement_latency(option, 0.0, HARDWARE)
    with pytest.raises(ValueError, match="rtt_s"):
        latency.placement_latency(option, 1.0, HARDWARE, rtt_s=-1.0)
    with pytest.raises(ValueError, match="low_bps"):
        latency.lower_envelope([EDGE], 1e6, 1e5)
    with pytest.raises(ValueError, match="lines"):
        latency.lower_envelope([], 1e5, 1e6)


def test_profile_needs_only_the_architecture():
    config = ModelConfig("cnn", (8, 8, 1), 10, width=0.5)
    shape_only = latency.profile_model(abstract_model(config), config.input_shape)
    with_weights = latency.profile_model(build_model(config, jax.random.key(3)), config.input_shape)
    assert shape_only == with_weights
    assert [s.split_point for s in shape_only.splits] == ["conv1", "conv2", "hidden"]
    # 8x8 -> 4x4x16 -> 2x2x32 -> 64 hidden units
    assert [s.feature_values for s in shape_only.splits] == [256, 128, 64]
    for split in shape_only.splits:
        assert split.front_flops + split.back_flops == shape_only.full_flops


def test_default_cnn_on_28x28_has_no_split_regime_and_the_bottleneck_setting_has_three():
    """Why split never wins by default, and the documented setting where it does."""
    analysis = latency_bitrate.analysis(LatencyBitrateConfig())
    assert [r["strategy"] for r in analysis["regimes"]] == ["edge_only", "cloud_only"]
    # they cross where full / 5e8 = 784 * 8 / R + full / 1e12
    full = analysis["full_flops"]
    crossing = 784 * 8 / (full / 5e8 - full / 1e12) / 1e6
    assert analysis["regimes"][0]["high_mbps"] == pytest.approx(crossing, rel=1e-9)
    assert 0.39 < crossing < 0.40  # the figure the docs quote
    conv1, conv2, hidden = analysis["splits"]
    # early features cost more bits than the input: never faster than the cloud
    assert conv1["payload_vs_cloud"] == 8.0 and conv2["payload_vs_cloud"] == 4.0
    assert not conv1["beats_cloud"] and not conv2["beats_cloud"]
    # the late cut sends little, but after nearly all the compute: it would beat the
    # edge only far above 100 Mbps
    assert hidden["device_flops_share"] > 0.999
    assert hidden["beats_edge_above_mbps"] > 100
    assert all(s["window_mbps"] is None for s in analysis["splits"])

    three = LatencyBitrateConfig(feature_bits=4, bottleneck=0.125)
    regimes = latency_bitrate.analysis(three)["regimes"]
    assert [(r["strategy"], r["split_point"]) for r in regimes] == [
        ("edge_only", None),
        ("split", "conv1"),
        ("cloud_only", None),
    ]
    # by hand: split@conv1 runs 499,328 FLOPs on the device (1 ms at 5e8 FLOP/s) and
    # sends 784 values x 4 bits; edge takes full / 5e8; cloud sends 784 x 8 bits.
    options = latency_bitrate._placements(three)
    a_edge, a_split = options[0].device_flops / 5e8, options[2].device_flops / 5e8
    a_split += options[2].server_flops / 1e12
    a_cloud = options[1].server_flops / 1e12
    assert options[2].payload_bits == 784 * 4
    assert regimes[0]["high_mbps"] == pytest.approx(3136 / (a_edge - a_split) / 1e6, rel=1e-9)
    assert regimes[1]["high_mbps"] == pytest.approx(3136 / (a_split - a_cloud) / 1e6, rel=1e-9)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("latency_bitrate")
    return runner.run(latency_bitrate.EXPERIMENT, None, out, quick=True, progress=False)


def test_quick_run_columns_and_files(quick_run):
    rows = quick_run.rows
    config = apply_overrides(LatencyBitrateConfig(), latency_bitrate.QUICK)
    rates = config.bitrates_mbps
    assert len(rows) == len(rates) * 5  # edge, cloud, 3 split points of the 8x8 CNN
    for column in ("strategy", "split_point", "bitrate_mbps", "latency_s", "device_s",
                   "uplink_s", "server_s", "payload_bits"):  # fmt: skip
        assert all(column in row for row in rows)
    assert {r["strategy"] for r in rows} == {"edge_only", "cloud_only", "split"}
    assert all((r["split_point"] is None) == (r["strategy"] != "split") for r in rows)
    assert min(rates) == 0.1 and max(rates) == 100.0
    assert {1.1, 5.85, 18.88} <= set(rates)
    assert quick_run.plot_path.exists()
    stored = json.loads((quick_run.out_dir / "regimes.json").read_text())
    assert stored["regimes"] == latency_bitrate.regimes(rows)
    again = runner.run(latency_bitrate.EXPERIMENT, None, quick_run.out_dir, quick=True,
                       progress=False)  # fmt: skip
    assert again.computed == 0 and again.resumed == len(rows)


def test_quick_rows_obey_the_latency_model(quick_run):
    rows = quick_run.rows
    edge = [r["latency_s"] for r in rows if r["strategy"] == "edge_only"]
    assert len(set(edge)) == 1 and edge[0] > 0  # independent of the bitrate
    curves = {}
    for row in rows:
        if row["strategy"] != "edge_only":
            curves.setdefault(row["split_point"], []).append(row)
        # rtt 0: latency = device + payload / bitrate + server
        expected = row["device_s"] + row["payload_bits"] / (row["bitrate_mbps"] * 1e6)
        assert row["latency_s"] == pytest.approx(expected + row["server_s"], rel=REL)
    for curve in curves.values():
        curve.sort(key=lambda r: r["bitrate_mbps"])
        latencies = [r["latency_s"] for r in curve]
        assert all(
            x > y for x, y in zip(latencies[:-1], latencies[1:], strict=True)
        )  # strictly decreasing


def test_best_split_and_fastest_are_the_argmins(quick_run):
    by_rate = {}
    for row in quick_run.rows:
        by_rate.setdefault(row["bitrate_mbps"], []).append(row)
    for group in by_rate.values():
        splits = [r for r in group if r["strategy"] == "split"]
        best = min(splits, key=lambda r: r["latency_s"])
        assert [r["best_split"] for r in splits] == [r is best for r in splits]
        fastest = min(group, key=lambda r: r["latency_s"])
        assert [r["fastest"] for r in group] == [r is fastest for r in group]
        assert all(r["best_split"] is None for r in group if r["strategy"] != "split")


def test_regimes_from_rows_agree_with_the_grid_and_find_narrow_regimes():
    def rows_at(rates):
        return [
            {
                "strategy": s, "split_point": p, "bitrate_mbps": r, "payload_bits": b,
                "latency_s": a + b / (r * 1e6),
            }
            for s, p, (a, b) in (("edge_only", None, EDGE), ("cloud_only", None, CLOUD),
                                 ("split", "p", SPLIT))
            for r in rates
        ]  # fmt: skip

    expected = [
        ("edge_only", None, 0.01, 1e5 / 0.9 / 1e6),
        ("split", "p", 1e5 / 0.9 / 1e6, 9.0),
        ("cloud_only", None, 9.0, 100.0),
    ]
    # the two ends only: no grid point inside the split's regime, still found
    for rates in ((0.01, 100.0), tuple(np.geomspace(0.01, 100.0, 9))):
        got = latency_bitrate.regimes(rows_at(rates))
        assert len(got) == 3
        for regime, (strategy, point, low, high) in zip(got, expected, strict=True):
            assert (regime["strategy"], regime["split_point"]) == (strategy, point)
            assert regime["low_mbps"] == pytest.approx(low, rel=1e-9)
            assert regime["high_mbps"] == pytest.approx(high, rel=1e-9)


@pytest.mark.parametrize(
    "override, field",
    [
        ("bottleneck=0", "bottleneck"),
        ("bottleneck=1.5", "bottleneck"),
        ("feature_bits=0", "feature_bits"),
        ("bitrates_mbps=[1,-2]", "bitrates_mbps"),
        ("bitrates_mbps=[1,1]", "bitrates_mbps"),
        ("device_flops_per_s=0", "device_flops_per_s"),
        ("server_flops_per_s=inf", "server_flops_per_s"),
        ("rtt_s=-0.1", "rtt_s"),
        ("input_bits=0", "input_bits"),
        ("width=0", "width"),
        ("dataset=imagenet", "dataset"),
        ("model=resnet", "model"),
    ],
)
def test_bad_config_values_are_rejected(override, field):
    with pytest.raises(ConfigError, match=field):
        apply_overrides(LatencyBitrateConfig(), [override])


def test_rtt_adds_to_every_placement_that_sends():
    base = LatencyBitrateConfig(dataset="digits", bitrates_mbps=(1.0,))
    with_rtt = LatencyBitrateConfig(dataset="digits", bitrates_mbps=(1.0,), rtt_s=0.02)
    for point in latency_bitrate.points(base):
        plain = latency_bitrate.run_point(None, base, point)
        delayed = latency_bitrate.run_point(None, with_rtt, point)
        extra = 0.0 if point["strategy"] == "edge_only" else 0.02
        assert delayed["latency_s"] == pytest.approx(plain["latency_s"] + extra, rel=REL)


@pytest.mark.slow  # MobileNetV2's FLOPs: 19 lowerings, ~30 s on a busy 2-core CPU
def test_documented_mobilenet_settings():
    phone = LatencyBitrateConfig(
        model="mobilenet_v2", dataset="cifar10", device_flops_per_s=1e10, bottleneck=0.0625
    )
    regimes = latency_bitrate.analysis(phone)["regimes"]
    assert [(r["strategy"], r["split_point"]) for r in regimes] == [
        ("edge_only", None),
        ("split", "stage4"),
        ("split", "stage1"),
        ("cloud_only", None),
    ]
    bounds = [round(r["high_mbps"], 2) for r in regimes[:-1]]
    assert bounds == [0.21, 0.76, 44.88]
    two_bit = latency_bitrate.analysis(dataclasses.replace(phone, bottleneck=1.0, feature_bits=2))
    assert [(r["strategy"], r["split_point"]) for r in two_bit["regimes"]] == [
        ("edge_only", None),
        ("split", "stage4"),
        ("cloud_only", None),
    ]
    mcu = latency_bitrate.analysis(
        dataclasses.replace(phone, device_flops_per_s=5e8, bottleneck=1.0)
    )
    assert [r["strategy"] for r in mcu["regimes"]] == ["cloud_only"]
