"""The link_ber experiment: its sweep, one measured point, the Wilson interval, the plot."""

import dataclasses

import jax
import numpy as np
import pytest

from airinfer.experiments import link_ber, registry
from airinfer.experiments.config import ConfigError, apply_overrides

# Long programs (LDPC decoding of many blocks): full XLA optimisation pays
# (tests/conftest.py).
pytestmark = pytest.mark.xla_optimized

# k = 512 and 100 blocks per batch, as in tests/phy/test_digital.py, so that a
# session running both compiles each link once.
TINY = link_ber.LinkBerConfig(
    snr_db=(2.0, 30.0),
    modulations=("qpsk",),
    channels=("awgn",),
    codings=("uncoded", "ldpc"),
    min_bit_errors=50,
    max_bits=2 * 100 * 512,
    blocks_per_batch=100,
)


def test_registered_and_loadable():
    experiment = registry.load("link_ber")
    assert experiment is link_ber.EXPERIMENT
    assert experiment.config is link_ber.LinkBerConfig


def test_points_cover_every_curve_and_snr():
    config = link_ber.LinkBerConfig()
    points = link_ber.points(config)
    assert len(points) == 2 * 2 * 2 * len(config.snr_db)
    assert set(points[0]) == {"modulation", "channel", "coding", "snr_db"}
    curves = {(p["modulation"], p["channel"], p["coding"]) for p in points}
    assert curves == {
        (m, c, d)
        for m in ("qpsk", "16qam")
        for c in ("awgn", "rayleigh")
        for d in ("uncoded", "ldpc")
    }
    assert all(isinstance(p["snr_db"], float) for p in points)


def test_quick_overrides_apply_and_resolve_a_ber_of_1e_3():
    quick = apply_overrides(link_ber.LinkBerConfig(), link_ber.EXPERIMENT.quick)
    # ~100 errors at BER 1e-3 need 1e5 bits.
    assert quick.max_bits >= 100_000 and quick.min_bit_errors >= 100
    assert len(link_ber.points(quick)) <= 80


def test_run_point_gives_sane_columns():
    uncoded, coded = (
        link_ber.run_point(jax.random.key(0), TINY, point) for point in link_ber.points(TINY)[::2]
    )
    # 2 dB uncoded QPSK: BER ≈ 0.104, 100 blocks (51,200 bits) reach 50 errors at once.
    assert uncoded["bits"] == 51_200 and uncoded["blocks"] == 100
    assert uncoded["bit_errors"] >= 50 and 0.08 < uncoded["ber"] < 0.13
    assert uncoded["ber"] == uncoded["bit_errors"] / uncoded["bits"]
    assert uncoded["bler"] == uncoded["block_errors"] / uncoded["blocks"] == 1.0
    assert uncoded["ber_ci_low"] < uncoded["ber"] < uncoded["ber_ci_high"]
    assert uncoded["ber_ci"] == pytest.approx((uncoded["ber_ci_high"] - uncoded["ber_ci_low"]) / 2)
    assert uncoded["ber_theory"] == pytest.approx(0.104, abs=0.002)
    # The coded point at 2 dB: far fewer errors, no closed form.
    assert coded["ber"] < uncoded["ber"] / 10 and coded["ber_theory"] is None
    assert coded["bits"] in (51_200, 102_400)


def test_zero_error_point_runs_to_max_bits():
    row = link_ber.run_point(jax.random.key(1), TINY, link_ber.points(TINY)[1])  # 30 dB uncoded
    assert row["bit_errors"] == 0 and row["bits"] == TINY.max_bits
    assert row["ber"] == 0.0 and 0 < row["ber_ci_high"] < 4 / TINY.max_bits


def test_a_point_stops_at_the_first_batch_with_enough_block_errors():
    # LDPC rate 1/2 QPSK at 1.5 dB: BLER ~0.06, so 15 block errors take a few batches
    # of 100 blocks while 1 bit error takes one.
    config = dataclasses.replace(
        TINY, snr_db=(1.5,), codings=("ldpc",), min_bit_errors=1, min_block_errors=15,
        max_bits=40 * 100 * 512,
    )  # fmt: skip
    point = link_ber.points(config)[0]
    row = link_ber.run_point(jax.random.key(2), config, point)
    assert row["block_errors"] >= 15 and row["blocks"] < 40 * 100
    bits_only = dataclasses.replace(config, min_block_errors=1)
    assert link_ber.run_point(jax.random.key(2), bits_only, point)["blocks"] == 100
    # The same batches one short of the stop had fewer than 15 block errors.
    shorter = dataclasses.replace(config, max_bits=(row["blocks"] - 100) * 512)
    before = link_ber.run_point(jax.random.key(2), shorter, point)
    assert before["blocks"] == row["blocks"] - 100 and before["block_errors"] < 15
    assert row["bler_ci_low"] < row["bler"] < row["bler_ci_high"]


def test_ber_interval_covers_clustered_errors():
    """Coded links fail whole blocks: the bits of a block are not independent. Blocks fail
    with probability 0.05 and then lose Binomial(512, 0.1) bits (true BER 0.005); over 400
    replicates of 400 blocks the interval must cover the truth ~95 % of the time, where
    Wilson's over bits alone (which treats the bits as independent) covers far less."""
    rng = np.random.default_rng(0)
    k, blocks, replicates, truth = 512, 400, 400, 0.05 * 0.1
    failed = rng.random((replicates, blocks)) < 0.05
    errors = np.where(failed, rng.binomial(k, 0.1, (replicates, blocks)), 0)
    covered = covered_wilson = 0
    for e in errors:
        low, high = link_ber.ber_interval(int(e.sum()), int((e**2).sum()), blocks, k)
        covered += low <= truth <= high
        w_low, w_high = link_ber.wilson_interval(int(e.sum()), blocks * k)
        covered_wilson += w_low <= truth <= w_high
    # 400 replicates: binomial std of a 95 % coverage is 1.1 %; 0.91 is 3.6 std below.
    assert covered / replicates > 0.91
    assert covered_wilson / replicates < 0.5


def test_bad_configs_raise_config_error_naming_the_field():
    with pytest.raises(ConfigError, match="min_block_errors"):
        link_ber.LinkBerConfig(min_block_errors=0)
    with pytest.raises(ConfigError, match="min_bit_errors"):
        link_ber.LinkBerConfig(min_bit_errors=0)
    with pytest.raises(ConfigError, match="code_rate"):
        link_ber.LinkBerConfig(code_rate=1.5)
    with pytest.raises(ConfigError, match="snr_db"):
        link_ber.LinkBerConfig(snr_db=(0.0, float("nan")))
    # k = 511 bits do not fill whole QPSK symbols uncoded: refused before running.
    with pytest.raises(ConfigError, match=r"n=511 must be a multiple"):
        link_ber.points(dataclasses.replace(link_ber.LinkBerConfig(), k=511))


def test_plot_draws_a_png(tmp_path):
    rows = []
    for channel in ("awgn", "rayleigh"):
        for coding, ber in (("uncoded", 0.05), ("ldpc", 0.0)):
            for snr_db in (0.0, 10.0):
                rows.append(
                    {
                        "modulation": "qpsk",
                        "channel": channel,
                        "coding": coding,
                        "snr_db": snr_db,
                        "ber": ber / (1 + snr_db),
                        "ber_ci": 0.001,
                        "ber_ci_low": ber / (1 + snr_db) * 0.9,
                        "ber_ci_high": ber / (1 + snr_db) * 1.1,
                        "bit_errors": 100 if ber else 0,
                        "bits": 10_000,
                    }
                )
    path = tmp_path / "link_ber.png"
    link_ber.plot(rows, link_ber.LinkBerConfig(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
