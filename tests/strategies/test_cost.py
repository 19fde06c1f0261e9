"""The cost of one inference and the latency-vs-bitrate model: closed forms, envelopes."""

import math

import jax
import numpy as np
import pytest

from airinfer.models.zoo import ModelConfig, abstract_model, build_model
from airinfer.strategies import cost
from airinfer.strategies.cost import Hardware, ModelProfile, Placement, SplitCost, latency_s

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
    options = cost.placements(PROFILE, input_bits=8, feature_bits=4, bottleneck=0.5)
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
        got = cost.placement_latency(option, 1000.0, HARDWARE, rtt_s=0.5)
        assert got.device_s == pytest.approx(device, rel=REL)
        assert got.uplink_s == pytest.approx(uplink, rel=REL)
        assert got.server_s == pytest.approx(server, rel=REL)
        assert got.latency_s == pytest.approx(device + uplink + server, rel=REL)


def test_latency_matches_the_base_interface_at_one_bit_per_channel_use():
    for option in cost.placements(PROFILE, feature_bits=3, bottleneck=0.25):
        for rate in (1e3, 2.5e5):
            got = cost.placement_latency(option, rate, HARDWARE).latency_s
            hardware = Hardware(100.0, 1e4, symbol_rate_hz=rate)
            base = latency_s(
                option.device_flops, option.payload_bits, option.server_flops, hardware
            )
            assert got == pytest.approx(base, rel=REL)


def test_bottleneck_keeps_a_whole_number_of_values():
    profile = ModelProfile(100, 1.0, (SplitCost("p", 0.5, 0.5, 100),))
    # 0.07 * 100 is 7.000000000000001 in floating point: still 7 values, not 8
    assert cost.placements(profile, feature_bits=8, bottleneck=0.07)[2].payload_bits == 56.0
    assert cost.placements(profile, feature_bits=8, bottleneck=0.071)[2].payload_bits == 64.0
    assert cost.placements(profile, feature_bits=32)[2].payload_bits == 3200.0  # float32


# Three lines with known crossings: edge 1 s; cloud 1e6 bits; a split of 0.1 s + 1e5 bits.
# split < edge iff R > 1e5 / 0.9; split < cloud iff R < 9e5 / 0.1 = 9e6.
EDGE, CLOUD, SPLIT = (1.0, 0.0), (0.0, 1e6), (0.1, 1e5)


def test_lower_envelope_constructed_case():
    envelope = cost.lower_envelope([EDGE, CLOUD, SPLIT], 1e4, 1e8)
    assert [i for i, _, _ in envelope] == [0, 2, 1]
    (_, low0, high0), (_, low1, high1), (_, low2, high2) = envelope
    assert low0 == 1e4 and high2 == 1e8
    assert high0 == pytest.approx(1e5 / 0.9, rel=REL) and low1 == high0
    assert high1 == pytest.approx(9e6, rel=REL) and low2 == high1
    # A range inside the split's regime: the split alone. A dominated line changes nothing.
    assert [i for i, _, _ in cost.lower_envelope([EDGE, CLOUD, SPLIT], 2e5, 1e6)] == [2]
    worse = (0.2, 2e5)  # more compute and more bits than SPLIT
    assert [i for i, _, _ in cost.lower_envelope([EDGE, worse, CLOUD, SPLIT], 1e4, 1e8)] == [
        0,
        3,
        2,
    ]
    # Without the split, edge and cloud cross where 1 = 1e6 / R.
    two = cost.lower_envelope([EDGE, CLOUD], 1e4, 1e8)
    assert [i for i, _, _ in two] == [0, 1] and two[0][2] == pytest.approx(1e6, rel=REL)


def test_lower_envelope_matches_a_dense_argmin():
    rng = np.random.default_rng(0)
    grid = np.geomspace(1e4, 1e8, 4001)
    for _ in range(20):
        lines = [
            (float(a), float(b))
            for a, b in zip(rng.exponential(1, 6), rng.exponential(1e5, 6), strict=True)
        ]
        envelope = cost.lower_envelope(lines, grid[0], grid[-1])
        values = np.array([[a + b / r for r in grid] for a, b in lines])
        winners = values.argmin(axis=0)
        for index, low, high in envelope:
            inside = (grid > low * (1 + 1e-9)) & (grid < high * (1 - 1e-9))
            assert np.all(winners[inside] == index)
        # contiguous, increasing, covering the range
        assert envelope[0][1] == grid[0] and envelope[-1][2] == grid[-1]
        assert all(envelope[k][2] == envelope[k + 1][1] for k in range(len(envelope) - 1))


def test_faster_interval_and_split_window():
    assert cost.faster_interval(SPLIT, EDGE) == pytest.approx((1e5 / 0.9, math.inf))
    assert cost.faster_interval(SPLIT, CLOUD) == pytest.approx((0.0, 9e6))
    assert cost.faster_interval(EDGE, SPLIT) == pytest.approx((0.0, 1e5 / 0.9))
    assert cost.faster_interval(CLOUD, SPLIT) == pytest.approx((9e6, math.inf))
    assert cost.faster_interval((0.1, 5.0), (0.2, 5.0)) == (0.0, math.inf)
    assert cost.faster_interval((0.3, 5.0), (0.2, 9.0)) == pytest.approx((0.0, 40.0))
    assert cost.faster_interval((0.3, 5.0), (0.2, 5.0)) is None
    assert cost.faster_interval((0.3, 9.0), (0.2, 5.0)) is None  # more of both: never
    hardware = Hardware(device_flops_per_s=1.0, server_flops_per_s=1e12)
    edge = Placement("edge_only", None, 1.0, 0.0, 0.0)
    cloud = Placement("cloud_only", None, 0.0, 0.0, 1e6)
    split = Placement("split", "p", 0.1, 0.0, 1e5)
    window = cost.split_window(split, edge, cloud, hardware)
    assert window == pytest.approx((1e5 / 0.9, 9e6))
    big = Placement("split", "p", 0.1, 0.0, 1e6)  # features as large as the input
    assert cost.split_window(big, edge, cloud, hardware) is None


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="bottleneck"):
        cost.placements(PROFILE, bottleneck=0.0)
    with pytest.raises(ValueError, match="feature_bits"):
        cost.placements(PROFILE, feature_bits=0)
    with pytest.raises(ValueError, match="input_bits"):
        cost.placements(PROFILE, input_bits=math.nan)
    with pytest.raises(ValueError, match="split_point"):
        Placement("split", None, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="split_point"):
        Placement("edge_only", "a", 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="strategy"):
        Placement("fog", None, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="payload_bits"):
        Placement("cloud_only", None, 0.0, 1.0, -1.0)
    option = cost.placements(PROFILE)[1]
    with pytest.raises(ValueError, match="bitrate_bps"):
        cost.placement_latency(option, 0.0, HARDWARE)
    with pytest.raises(ValueError, match="rtt_s"):
        cost.placement_latency(option, 1.0, HARDWARE, rtt_s=-1.0)
    with pytest.raises(ValueError, match="low_bps"):
        cost.lower_envelope([EDGE], 1e6, 1e5)
    with pytest.raises(ValueError, match="lines"):
        cost.lower_envelope([], 1e5, 1e6)


def test_profile_needs_only_the_architecture():
    config = ModelConfig("cnn", (8, 8, 1), 10, width=0.5)
    shape_only = cost.profile_model(abstract_model(config), config.input_shape)
    with_weights = cost.profile_model(build_model(config, jax.random.key(3)), config.input_shape)
    assert shape_only == with_weights
    assert [s.split_point for s in shape_only.splits] == ["conv1", "conv2", "hidden"]
    # 8x8 -> 4x4x16 -> 2x2x32 -> 64 hidden units
    assert [s.feature_values for s in shape_only.splits] == [256, 128, 64]
    for split in shape_only.splits:
        assert split.front_flops + split.back_flops == shape_only.full_flops
