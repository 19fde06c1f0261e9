"""Digital strategies at a 5G NR MCS: fixed indices, refusals, and adapt_mcs."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.zoo import ModelConfig, build_model
from airinfer.phy import digital
from airinfer.phy.digital_payload import LinkSettings
from airinfer.phy.link_adaptation import get_mcs, link_config, mcs_table, select_mcs
from airinfer.strategies.adaptation import adapt_mcs, digital_links
from airinfer.strategies.base import Link
from airinfer.strategies.cloud import CloudStrategy, ImageLink
from airinfer.strategies.digital_hop import DigitalHop
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.hybrid import HybridStrategy
from airinfer.strategies.jscc import JSCCConfig, JSCCSplitStrategy
from airinfer.strategies.jscc.codec import JSCCCodec
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.observation import DirectObservation, SharedEncoder
from airinfer.strategies.partition import HorizontalPartitionStrategy, LayerPartitionStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy

IMAGE = (8, 8, 1)  # digits: 8 x 8 x 8 bits = 512 bits, one LDPC block of k = 512

# Table 2, MCS 27: 256QAM (Qm = 8), R = 948/1024. For k = 512 info bits the codeword
# is the fewest whole symbols reaching R: n = 8 ceil(512 / (8 * 948/1024)) =
# 8 ceil(69.13) = 560 bits, i.e. 70 channel uses, against 512 / (1/2) / 2 = 512
# for QPSK at rate 1/2 (the default).
MCS27_N, MCS27_USES, QPSK_HALF_USES = 560, 70, 512
# Table 2, MCS 10: 16QAM (Qm = 4), R = 658/1024: n = 4 ceil(512 / (4 * 658/1024)) =
# 4 ceil(199.20) = 800 bits, 200 channel uses.
MCS10_N, MCS10_USES = 800, 200


@pytest.fixture(scope="module")
def cnn():
    """An untrained width-1 CNN on 8x8 inputs: conv2 -> 2x2x64, hidden 128 (costs and
    links do not depend on the weights)."""
    return build_model(ModelConfig("cnn", IMAGE, 10, 1.0), jax.random.key(0))


@pytest.fixture(scope="module")
def members():
    """Two untrained width-0.5 CNNs: an edge ensemble's devices."""
    config = ModelConfig("cnn", IMAGE, 10, 0.5)
    return [build_model(config, jax.random.key(k)) for k in (1, 2)]


def _split(cnn, **kwargs):
    """The digital split after ``hidden``: 128 values x 4 bits = 512 bits, one block."""
    return SplitDigitalStrategy(cnn, "hidden", 4, 3.0, signed=False, **kwargs)


def _chain(cnn, **hop_kwargs):
    """Three devices cut after conv2 (256 values x 8 bits = 2048 bits: 4 blocks of 512)
    and hidden (128 x 8 = 1024 bits: 2 blocks of 512)."""
    hop = DigitalHop(bits=8, low=0.0, high=4.0, max_block_bits=512, **hop_kwargs)
    return LayerPartitionStrategy(cnn, ("conv2", "hidden"), hop)


# ---------------------------------------------------------------------------
# A fixed MCS


def test_a_fixed_mcs_gives_the_38214_link_and_its_cost(cnn, digits_pixels):
    entry = get_mcs(27, 2)
    assert (entry.modulation, entry.code_rate) == ("256qam", 948 / 1024)
    expected = digital.LinkConfig("256qam", "awgn", "ldpc", 512, MCS27_N)
    assert link_config(entry, "awgn", 512) == expected
    cloud = CloudStrategy(cnn, digits_pixels, mcs=27)
    assert cloud.link_config("awgn") == expected
    assert cloud.uplink.sent(IMAGE, "awgn") == (MCS27_USES, 512.0)
    assert CloudStrategy(cnn, digits_pixels).uplink.sent(IMAGE, "awgn") == (QPSK_HALF_USES, 512.0)
    split = _split(cnn, mcs=27)
    assert split.link_config("rayleigh") == dataclasses.replace(expected, channel="rayleigh")
    assert split.cost(IMAGE, "awgn").channel_uses == MCS27_USES
    assert _split(cnn).cost(IMAGE, "awgn").channel_uses == QPSK_HALF_USES
    # table 1 names other entries: MCS 27 of table 1 is 64QAM 910/1024
    assert _split(cnn, mcs=27, mcs_table=1).link_config("awgn").modulation == "64qam"


def test_every_digital_strategy_costs_what_its_mcs_sends(cnn, members, digits_pixels):
    # the hops: 4 + 2 blocks of k = 512, each n = 800 bits of 16QAM: 200 uses
    chain = _chain(cnn, mcs=10)
    assert chain.cost(IMAGE).channel_uses == 6 * MCS10_USES
    assert chain.cost(IMAGE).payload_bits == 2048 + 1024
    assert chain.hops[0].link(256, "awgn") == digital.LinkConfig(
        "16qam", "awgn", "ldpc", 512, MCS10_N
    )
    # the hop keeps its own decoder iterations
    assert DigitalHop(mcs=10, num_iter=7).link(64, "awgn").num_iter == 7
    # horizontal, 4 devices: 32 hidden units x 8 bits = 256 bits each: one block of
    # k = 256 at 16QAM 658/1024: n = 4 ceil(256 / 2.5703) = 4 * 100 = 400 bits, 100 uses
    hop = DigitalHop(bits=8, low=0.0, high=4.0, mcs=10)
    horizontal = HorizontalPartitionStrategy(cnn, "hidden", 4, hop)
    assert horizontal.cost(IMAGE).channel_uses == 4 * 100
    # the shared encoder's multicast: member 0 cut after hidden (64 units) x 8 bits = 512
    encoder = SharedEncoder(members[0], "hidden", bits=8, clip=3.0, signed=False, mcs=27)
    assert encoder.sent(IMAGE) == (MCS27_USES, 512.0)
    direct = DirectObservation(ImageLink(digits_pixels, mcs=10))
    assert direct.sent(IMAGE) == (MCS10_USES, 512.0)
    # a 256QAM hop (which modulation= does not offer) counts 8 bits per symbol
    assert DigitalHop(mcs=27).bits_per_symbol == 8


def test_a_fixed_mcs_runs_on_the_link(cnn, digits_pixels, digits):
    # 256QAM at rate 0.93 decodes at 40 dB and fails at 5 dB, far below its
    # waterfall (about 20 dB on AWGN); the cost is the MCS's
    cloud = CloudStrategy(cnn, digits_pixels, mcs=27)
    run = jax.jit(cloud.outcome_with_crc)
    images = jnp.asarray(digits.test_images[:8])
    high, intact_high = run(jax.random.key(0), images, Link(snr_db=jnp.float32(40.0)))
    _, intact_low = run(jax.random.key(1), images, Link(snr_db=jnp.float32(5.0)))
    assert bool(np.all(intact_high)) and not bool(np.any(intact_low))
    assert float(high.cost.channel_uses) == MCS27_USES
    np.testing.assert_allclose(high.logits, cnn(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda c, p: CloudStrategy(c, p, mcs=27, modulation="16qam"), "modulation: '16qam'"),
        (lambda c, p: ImageLink(p, mcs=27, code_rate=0.75), "code_rate: 0.75"),
        (lambda c, p: _split(c, mcs_table=1), "mcs_table: 1 has no effect without an mcs"),
        (lambda c, p: _split(c, mcs=0), "mcs: 0 of table 2 has rate 120/1024"),
        (lambda c, p: _split(c, mcs=28), r"mcs: MCS index must be an int in \[0, 27\]"),
        (lambda c, p: _split(c, mcs="adaptive"), "mcs: 'adaptive' is neither None"),
        (lambda c, p: _split(c, mcs=5, mcs_table=3), "mcs_table: 3 is not one of 1, 2"),
        (lambda c, p: DigitalHop(mcs=5, coding="uncoded"), "coding: 'uncoded' with mcs=5"),
        (lambda c, p: DigitalHop(mcs=5, modulation="64qam"), "modulation: '64qam'"),
        (
            lambda c, p: SharedEncoder(None, None, analog=True, mcs=5),
            "mcs: 5 applies to the digital link",
        ),
    ],
)
def test_settings_without_effect_or_out_of_the_table_are_refused(cnn, digits_pixels, build, match):
    with pytest.raises(ValueError, match=match) as caught:
        build(cnn, digits_pixels)
    assert "\n" not in str(caught.value)


def test_link_settings_are_one_implementation():
    # without an MCS: n = k / code_rate; with one: the 38.214 rule
    assert LinkSettings("16qam", 0.5).link_config("awgn", 512) == digital.LinkConfig(
        "16qam", "awgn", "ldpc", 512, 1024
    )
    assert LinkSettings(mcs=10).link_config("awgn", 512).n == MCS10_N
    assert LinkSettings(mcs=10).bits_per_symbol == 4
    with pytest.raises(ValueError, match="link.channel: 'umi'"):
        LinkSettings(mcs=10).link_config("umi", 512)


# ---------------------------------------------------------------------------
# adapt_mcs


def test_adapt_mcs_picks_select_mcs_for_each_message(cnn, digits_pixels):
    split = _split(cnn, modulation="16qam")  # any settings: the MCS replaces them
    adaptation = adapt_mcs(split, "awgn", 12.0, IMAGE)
    expected = select_mcs(12.0, 0.1, channel="awgn", block_bits=512, num_blocks=1)
    (link,) = adaptation.links
    assert (link.where, link.mcs, link.block_bits, link.num_blocks, link.fallback) == (
        "uplink", expected, 512, 1, False,
    )  # fmt: skip
    adapted = adaptation.strategy
    assert (adapted.mcs, adapted.mcs_table, adapted.modulation) == (expected.index, 2, "qpsk")
    assert adapted.link_config("awgn") == link_config(expected, "awgn", 512)
    assert split.mcs is None  # a copy: the input is unchanged
    # a message of 4 blocks must arrive whole: at 8 dB on Rayleigh that costs an MCS
    chain = adapt_mcs(_chain(cnn), "rayleigh", 8.0, IMAGE)
    first, second = chain.links
    assert (first.where, first.num_blocks, second.where, second.num_blocks) == (
        "hops[0]", 4, "hops[1]", 2,
    )  # fmt: skip
    for link in chain.links:
        assert link.mcs == select_mcs(
            8.0, 0.1, channel="rayleigh", block_bits=512, num_blocks=link.num_blocks
        )
    single = select_mcs(8.0, 0.1, channel="rayleigh", block_bits=512)
    assert first.mcs.index < single.index  # the 4-block message is held to the target
    assert tuple(h.mcs for h in chain.strategy.hops) == chain.indices
    # the target and the table are the caller's
    strict = adapt_mcs(split, "awgn", 12.0, IMAGE, target_bler=0.01, table_index=1).links[0]
    assert strict.mcs == select_mcs(12.0, 0.01, channel="awgn", table_index=1)
    assert adapt_mcs(split, "awgn", 12.0, IMAGE).strategy.cost(IMAGE, "awgn").channel_uses < (
        QPSK_HALF_USES
    )


def test_adapt_mcs_walks_composite_strategies(cnn, members, digits_pixels):
    direct = EdgeEnsembleStrategy(members, observation=DirectObservation(ImageLink(digits_pixels)))
    hybrid = HybridStrategy(direct, _split(cnn))
    adaptation = adapt_mcs(hybrid, "awgn", 20.0, IMAGE)
    assert [link.where for link in adaptation.links] == [
        "ensemble.observation", "server.uplink",
    ]  # fmt: skip
    top = select_mcs(20.0, 0.1, channel="awgn")
    assert adaptation.indices == (top.index, top.index)
    adapted = adaptation.strategy
    assert adapted.ensemble.observation.image_link.mcs == top.index
    assert adapted.server.mcs == top.index
    # digital_links reads the settings back without choosing anything
    found = digital_links(adapted, IMAGE)
    assert [(d.where, d.settings.mcs, d.num_blocks) for d in found] == [
        ("ensemble.observation", top.index, 1), ("server.uplink", top.index, 1),
    ]  # fmt: skip
    # a digital shared encoder is a multicast too
    encoder = SharedEncoder(members[0], "hidden", bits=8, clip=3.0, signed=False)
    heads = EdgeEnsembleStrategy(members, observation=encoder)
    (link,) = adapt_mcs(heads, "rayleigh", 20.0, IMAGE).links
    assert link.where == "observation" and link.num_blocks == 1
    # horizontal partitioning: one hop, the message is every slice: 43, 43 and 42 of
    # the 128 hidden units x 16 bits = 688, 688 and 672 bits, one block each, held
    # to the target together at the smallest block (slices under 512 bits would
    # have their BLER curves measured first: minutes per MCS)
    hop = DigitalHop(bits=16, low=0.0, high=4.0)
    horizontal = HorizontalPartitionStrategy(cnn, "hidden", 3, hop)
    adaptation = adapt_mcs(horizontal, "awgn", 30.0, IMAGE)
    (link,) = adaptation.links
    assert (link.where, link.block_bits, link.num_blocks) == ("hop", 672, 3)
    assert link.mcs == select_mcs(30.0, 0.1, channel="awgn", block_bits=672, num_blocks=3)
    assert adaptation.strategy.hop.mcs == link.mcs.index


def test_strategies_without_a_digital_link_come_back_unchanged(cnn, members):
    codec = JSCCCodec((128,), 16, 32, True, rngs=nnx.Rngs(0))
    unchanged = [
        LocalStrategy(members[0]),
        JSCCSplitStrategy(cnn, codec, JSCCConfig(split_point="hidden", symbols=16)),
        EdgeEnsembleStrategy(members),  # the shared scene
        EdgeEnsembleStrategy(members, observation=SharedEncoder(None, None, analog=True)),
    ]
    for strategy in unchanged:
        adaptation = adapt_mcs(strategy, "rayleigh", 10.0, IMAGE)
        assert adaptation.strategy is strategy and adaptation.links == ()
        assert not adaptation.fallback and digital_links(strategy, IMAGE) == ()
    # a hybrid whose only digital link is the server's keeps its ensemble as it is
    hybrid = HybridStrategy(EdgeEnsembleStrategy(members), _split(cnn))
    adaptation = adapt_mcs(hybrid, "awgn", 5.0, IMAGE)
    assert adaptation.strategy.ensemble is hybrid.ensemble
    assert [link.where for link in adaptation.links] == ["server.uplink"]


def test_a_hopeless_snr_falls_back_to_the_lowest_mcs_and_says_so(cnn, digits_pixels):
    cloud = CloudStrategy(cnn, digits_pixels)
    assert select_mcs(-10.0, 0.1, channel="awgn") is None
    adaptation = adapt_mcs(cloud, "awgn", -10.0, IMAGE)
    lowest = next(e for e in mcs_table(2) if e.supported)
    assert lowest.index == 2
    assert adaptation.fallback and adaptation.links[0].fallback
    assert adaptation.links[0].mcs == lowest and adaptation.strategy.mcs == 2
    # table 1's lowest supported entry is MCS 3
    fallback = adapt_mcs(cloud, "rayleigh", -10.0, IMAGE, table_index=1)
    assert fallback.fallback and fallback.strategy.mcs == 3
    # and above the waterfall nothing falls back
    assert not adapt_mcs(cloud, "awgn", 10.0, IMAGE).fallback


def test_adapt_mcs_refuses_what_it_cannot_adapt(cnn):
    split = _split(cnn)
    with pytest.raises(ValueError, match="snr_db: a traced value"):
        jax.jit(lambda snr: adapt_mcs(split, "awgn", snr, IMAGE).strategy.mcs)(3.0)
    with pytest.raises(ValueError, match="channel: 'tdl-a' has no BLER curves"):
        adapt_mcs(split, "tdl-a", 3.0, IMAGE)
    with pytest.raises(ValueError, match="snr_db: nan is not finite"):
        adapt_mcs(split, "awgn", math.nan, IMAGE)
    with pytest.raises(ValueError, match="target_bler: 1.5 is not in"):
        adapt_mcs(split, "awgn", 3.0, IMAGE, target_bler=1.5)
    with pytest.raises(ValueError, match="strategy: function is not a strategy"):
        adapt_mcs(lambda key, images, link: None, "awgn", 3.0, IMAGE)


# ---------------------------------------------------------------------------
# The adapted link meets the target at the SNR it was chosen for

SIGMAS = 3.0  # one-sided tolerance: target + 3 binomial sigmas of the message error rate
SIM_SEED = 31_337  # fresh keys (the shipped curves were measured with seed 0's)


def _sigma(p, n):
    """Binomial standard error of a rate ``p`` measured on ``n`` trials."""
    return math.sqrt(p * (1 - p) / n)


def _edge(channel, block_bits, num_blocks, index, target=0.1):
    """The lowest SNR on a 0.01 dB grid at which the message of ``num_blocks`` blocks gets
    MCS ``index``: where its tabulated message error rate is the target (the tightest
    point for the claim)."""
    curve_start = -5.0
    for snr_db in np.arange(curve_start, 40.0, 0.01):
        chosen = select_mcs(
            float(snr_db), target, channel=channel, block_bits=block_bits, num_blocks=num_blocks
        )
        if chosen is not None and chosen.index >= index:
            assert chosen.index == index, "the entry is skipped: pick another"
            return float(snr_db)
    raise AssertionError(index)


@functools.cache
def _transmit(config):
    return jax.jit(lambda key, bits, snr_db: digital.transmit(key, bits, snr_db, config)[0])


def _message_error_rate(config, snr_db, num_blocks, messages, seed):
    """Fraction of ``messages`` of ``num_blocks`` uniformly random blocks with any wrong
    bit, sent over ``config`` at ``snr_db``."""
    bits = np.random.default_rng(seed).integers(0, 2, (messages * num_blocks, config.k))
    bits = bits.astype(np.float32)
    decided = _transmit(config)(jax.random.key(seed), bits, jnp.float32(snr_db))
    block_failed = np.any(np.asarray(decided) != bits, axis=1)
    return float(np.mean(block_failed.reshape(messages, num_blocks).any(axis=1)))


def _check_adapted_link(strategy, channel, index, messages, seed):
    """Adapt ``strategy`` (one digital link) at the edge SNR of MCS ``index`` for its
    message, send ``messages`` messages over the link it then runs, and check the
    message error rate against the target; returns it."""
    (link,) = digital_links(strategy, IMAGE)
    snr_db = _edge(channel, link.block_bits, link.num_blocks, index)
    adaptation = adapt_mcs(strategy, channel, snr_db, IMAGE)
    (adapted,) = adaptation.links
    assert adapted.mcs.index == index and not adapted.fallback
    assert adapted.num_blocks == link.num_blocks
    config = adaptation.strategy.link_config(channel)
    assert config == link_config(adapted.mcs, channel, link.block_bits)
    measured = _message_error_rate(config, snr_db, link.num_blocks, messages, seed)
    bound = 0.1 + SIGMAS * _sigma(0.1, messages)
    assert measured <= bound, (channel, index, snr_db, measured, bound)
    # the point is tight: at the edge of the MCS's range its messages do fail, near
    # the target (0.02 lies more than 4 sigmas below 0.1), so the bound is no formality
    assert measured >= 0.02, (channel, index, snr_db, measured)
    return measured


# slow: phy's test_adaptive_mcs_meets_the_target_on_the_link checks the same rule on the link
@pytest.mark.slow
@pytest.mark.xla_optimized
def test_the_adapted_link_meets_the_target_where_it_was_chosen(cnn):
    # High rates keep the decoder cheap. AWGN, one 512-bit block per message (the
    # split after hidden, 4 bits), table 2 MCS 26 (256QAM 916.5/1024, 576 coded
    # bits; edge 24.36 dB), 400 messages: sigma(0.1) = 0.015, bound 0.145 (measured
    # when written: 0.117).
    _check_adapted_link(_split(cnn), "awgn", 26, 400, SIM_SEED)
    # Rayleigh, four blocks per message (the split after conv2, 256 values x 8 bits):
    # MCS 18 (64QAM 822/1024, 642 coded bits) where the whole message's tabulated
    # error rate is the target (22.13 dB), each block's about 1 - 0.9 ** (1/4) =
    # 0.026; 300 messages: sigma(0.1) = 0.017, bound 0.152 (measured: 0.073).
    four = SplitDigitalStrategy(cnn, "conv2", 8, 3.0, signed=False)
    _check_adapted_link(four, "rayleigh", 18, 300, SIM_SEED + 1)


@pytest.mark.xla_optimized
@pytest.mark.slow
@pytest.mark.parametrize(
    ("channel", "split_point", "bits", "index"),
    [("awgn", "conv2", 8, 9), ("awgn", "hidden", 4, 20), ("rayleigh", "hidden", 4, 5),
     ("rayleigh", "conv2", 8, 14), ("rayleigh", "conv2", 8, 22)],
)  # fmt: skip
def test_the_adapted_link_meets_the_target_where_it_was_chosen_slow(
    cnn, channel, split_point, bits, index
):
    # more entries, both message sizes on both channels, 1000 messages: sigma(0.1)
    # = 0.0095, bound 0.128
    strategy = SplitDigitalStrategy(cnn, split_point, bits, 3.0, signed=False)
    _check_adapted_link(strategy, channel, index, 1000, SIM_SEED + index)
