"""Payloads over the digital link: LDPC blocks and channel uses, exact."""

import jax.numpy as jnp
import numpy as np

from airinfer.phy.digital_payload import channel_uses_per_sample, digital_link_config


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
