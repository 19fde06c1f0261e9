"""Latency vs uplink bitrate: the experiment (the model itself: tests/strategies/test_cost.py)."""

import dataclasses
import json

import numpy as np
import pytest

from airinfer.experiments import latency_bitrate, runner
from airinfer.experiments.config import ConfigError, apply_overrides
from airinfer.experiments.latency_bitrate import LatencyBitrateConfig

# Floating-point sums of a few terms: equal to within a few ulps.
REL = 1e-12
# Three lines (seconds, bits) with known crossings: edge 1 s; cloud 1e6 bits; a split
# of 0.1 s + 1e5 bits.
EDGE, CLOUD, SPLIT = (1.0, 0.0), (0.0, 1e6), (0.1, 1e5)


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
    options = latency_bitrate.config_placements(three)
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
