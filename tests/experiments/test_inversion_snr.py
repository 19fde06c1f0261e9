"""inversion_snr: what the receiver of each link gives an attacker, vs the SNR."""

import math

import pytest

from airinfer.experiments import inversion_snr, runner
from airinfer.experiments.config import ConfigError
from tests.experiments.test_strategy_experiments import TINY as STRATEGY_TINY
from tests.experiments.test_strategy_experiments import own_cache  # noqa: F401 (autouse)

# the strategy experiments' tiny models and own model cache, plus a small attacker
TINY = STRATEGY_TINY | {"attack_train": 400, "attack_epochs": 20}


def test_points_cover_every_strategy_channel_and_snr():
    config = inversion_snr.InversionSnrConfig(
        **(TINY | {"channels": ("awgn", "rayleigh"), "snr_db": (-5.0, 5.0)})
    )
    points = inversion_snr.points(config)
    assert len(points) == 2 * 3 * 2
    assert {p["strategy"] for p in points} == {"split_analog", "split_digital_b2", "cloud_digital"}
    with pytest.raises(ConfigError, match="attack_epochs: 0 >= 1"):
        inversion_snr.InversionSnrConfig(attack_epochs=0)


def test_plot_draws_a_panel_per_channel(tmp_path):
    config = inversion_snr.InversionSnrConfig(**(TINY | {"channels": ("awgn", "rayleigh")}))
    rows = [
        {"strategy": s, "channel": c, "snr_db": snr, "psnr_db": 10 + snr / 2, "blind_psnr_db": 9.0}
        for c in config.channels
        for s in config.strategies
        for snr in (-5.0, 5.0)
    ]
    inversion_snr.plot(rows, config, tmp_path / "inversion_snr.png")
    assert (tmp_path / "inversion_snr.png").stat().st_size > 10_000


@pytest.mark.slow  # trains the tiny models and four inverse networks: ~2 min on 2 cores
def test_the_digital_split_leaks_above_its_cliff_and_not_below(tmp_path):
    config = inversion_snr.InversionSnrConfig(
        **(TINY | {"strategies": ("local", "split_digital_b8"), "snr_db": (-20.0, 30.0)})
    )
    result = runner.run(inversion_snr.EXPERIMENT, config, out_dir=tmp_path / "run", progress=False)
    rows = {(r["strategy"], r["snr_db"]): r for r in result.rows}
    floor = rows["local", 30.0]["blind_psnr_db"]
    # nothing leaves the local device: the blind floor at every SNR
    assert rows["local", -20.0]["psnr_db"] == rows["local", 30.0]["psnr_db"] == floor
    # above the cliff the features arrive whole; below it the bits are noise
    high, low = (
        rows["split_digital_b8", 30.0]["psnr_db"],
        rows["split_digital_b8", -20.0]["psnr_db"],
    )
    assert high > low + 3
    assert abs(low - floor) < 1.5
    assert all(math.isfinite(r["psnr_db"]) for r in result.rows)
