"""Payloads over the digital link: LDPC blocks and channel uses, exact; links of an MCS."""

import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy.digital_payload import (
    channel_uses_per_sample,
    digital_link_config,
    mcs_link_config,
    resolve_mcs,
)
from airinfer.phy.link_adaptation import get_mcs, link_config, select_mcs


def test_link_cost_hand_computed():
    # 8x8x1 pixels: 512 bits; k = 512, n = 1024, QPSK: 1 block of 512 symbols
    qpsk = digital_link_config("awgn", "qpsk", 0.5, 512)
    assert channel_uses_per_sample(8 * 8 * 8, qpsk) == 512
    # k = 256, rate 1/3 -> n = 768; 16-QAM: 192 symbols per block, 2 blocks
    qam = digital_link_config("rayleigh", "16qam", 1 / 3, 256)
    assert (qam.n, qam.channel) == (768, "rayleigh")
    assert channel_uses_per_sample(512, qam) == 384
    assert channel_uses_per_sample(513, qam) == 576  # one bit more: a third block
    np.testing.assert_array_equal(
        channel_uses_per_sample(jnp.array([1, 256, 257]), qam), [192, 192, 384]
    )


def test_mcs_link_config_fixed_index():
    # 38.214 table 2, MCS 27: 256QAM at 948/1024; n = 8 ceil(512 / (948/1024 * 8)) = 560
    top = mcs_link_config("awgn", 27, 512)
    assert (top.modulation, top.k, top.n, top.channel) == ("256qam", 512, 560, "awgn")
    assert channel_uses_per_sample(8 * 8 * 8, top) == 70
    # table 1, MCS 10: 16QAM at 340/1024; n = 4 ceil(256 / (340/1024 * 4)) = 772
    qam = mcs_link_config("rayleigh", 10, 256, table_index=1)
    assert (qam.modulation, qam.n, qam.channel) == ("16qam", 772, "rayleigh")
    assert resolve_mcs(10, "awgn", 256, table_index=1) == get_mcs(10, 1)
    assert mcs_link_config("rayleigh", get_mcs(10, 1), 256) == qam  # an MCS as is
    # a fixed MCS runs on the OFDM channels too (with the link's OFDM defaults)
    ofdm = mcs_link_config("tdl-a", 10, 256, table_index=1)
    assert (ofdm.modulation, ofdm.n, ofdm.channel) == ("16qam", 772, "tdl-a")


def test_mcs_link_config_adaptive_follows_select_mcs():
    for channel, snr_db in (("awgn", 7.3), ("rayleigh", 7.3), ("awgn", 25.0)):
        chosen = select_mcs(snr_db, 0.1, channel=channel)
        assert chosen is not None
        config = mcs_link_config(channel, "adaptive", 512, snr_db=snr_db)
        assert config == link_config(chosen, channel, 512)
        assert resolve_mcs("adaptive", channel, 512, snr_db=snr_db) == chosen
    # a stricter target never gives a faster link
    loose = mcs_link_config("awgn", "adaptive", 512, snr_db=6.6)
    strict = mcs_link_config("awgn", "adaptive", 512, snr_db=6.6, target_bler=0.01)
    assert strict.bits_per_symbol * strict.code_rate < loose.bits_per_symbol * loose.code_rate
    # nothing meets the target at -10 dB: the lowest supported MCS (table 2: MCS 2)
    assert select_mcs(-10.0) is None
    assert resolve_mcs("adaptive", "awgn", 512, snr_db=-10.0) == get_mcs(2, 2)


def test_mcs_link_config_errors():
    with pytest.raises(ValueError, match="link.channel: 'tdl-z' has no digital path"):
        mcs_link_config("tdl-z", 5, 512)
    with pytest.raises(ValueError, match="channel must be one of \\['awgn', 'rayleigh'\\]"):
        mcs_link_config("tdl-a", "adaptive", 512, snr_db=10.0)  # no BLER curves on OFDM
    with pytest.raises(
        ValueError, match="mcs: 'fast' is neither an MCS index \\(int\\) nor \"adaptive\""
    ):
        mcs_link_config("awgn", "fast", 512)
    with pytest.raises(ValueError, match='snr_db: None; mcs="adaptive"'):
        mcs_link_config("awgn", "adaptive", 512)
    with pytest.raises(
        ValueError, match="MCS index must be an int in \\[0, 27\\] for table 2, got 28"
    ):
        mcs_link_config("awgn", 28, 512)
    with pytest.raises(ValueError, match="MCS 1 of table 2 .* not supported"):
        mcs_link_config("awgn", 1, 512)
    with pytest.raises(ValueError, match="snr_db must be finite"):
        mcs_link_config("awgn", "adaptive", 512, snr_db=float("nan"))
    with pytest.raises(ValueError, match="target_bler must be a number in \\(0, 1\\)"):
        mcs_link_config("awgn", "adaptive", 512, snr_db=5.0, target_bler=1.5)
