"""Block-error abstraction: drawn CRC verdicts against the closed form and the simulated link."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import abstraction, digital, link_adaptation
from airinfer.phy.digital_payload import digital_link_config, send_bits

DEFAULT_LINK = digital_link_config("awgn", "qpsk", 0.5, 512)


def test_shipped_curve_only_for_the_link_it_was_measured_with():
    assert link_adaptation.shipped_curve(DEFAULT_LINK) is not None
    rayleigh = digital_link_config("rayleigh", "qpsk", 0.5, 512)
    assert link_adaptation.shipped_curve(rayleigh) is not None
    for other in (
        digital_link_config("awgn", "qpsk", 0.5, 256),  # another block size
        dataclasses.replace(DEFAULT_LINK, num_iter=10),
        dataclasses.replace(DEFAULT_LINK, receiver_csi_error_var=0.1),
    ):
        assert link_adaptation.shipped_curve(other) is None
    mcs = link_adaptation.get_mcs(9, 1)
    np.testing.assert_array_equal(
        link_adaptation.shipped_curve(link_adaptation.link_config(mcs)).block_errors,
        link_adaptation.bler_curve(mcs).block_errors,
    )
    assert abstraction.link_bler_curve(DEFAULT_LINK) is link_adaptation.shipped_curve(DEFAULT_LINK)


def test_message_intact_draws_the_closed_form_probability():
    curve = abstraction.link_bler_curve(DEFAULT_LINK)
    snr_db = 1.125  # between two grid points of the waterfall
    bler = np.interp(snr_db, curve.snr_db, curve.bler)
    assert 0.1 < bler < 0.9
    draws = 20_000
    for blocks in (1, 3):
        intact = abstraction.message_intact(
            jax.random.key(blocks), snr_db, DEFAULT_LINK, blocks, (draws,)
        )
        expected = (1 - bler) ** blocks
        # 5 standard errors of a binomial proportion
        assert abs(np.mean(intact) - expected) < 5 * math.sqrt(expected * (1 - expected) / draws)
    # per-message block counts, traced SNR; off the grid: all lost below, all intact above
    count = jnp.array([0, 1, 4])
    draw = jax.jit(lambda key, s: abstraction.message_intact(key, s, DEFAULT_LINK, count, (3,)))
    np.testing.assert_array_equal(draw(jax.random.key(0), -10.0), [True, False, False])
    np.testing.assert_array_equal(draw(jax.random.key(0), 10.0), [True, True, True])


@pytest.mark.xla_optimized
def test_abstraction_agrees_with_the_simulated_link():
    """The delivery rate of one-block messages at a point of the waterfall: the drawn and
    the decoded (1,000 blocks, independent of the curve's own) within 4 standard errors."""
    snr_db, blocks = 1.5, 1000
    curve = abstraction.link_bler_curve(DEFAULT_LINK)
    index = int(np.argmin(np.abs(curve.snr_db - snr_db)))
    p_curve, n_curve = curve.block_errors[index] / curve.blocks[index], curve.blocks[index]
    bits = jax.random.bernoulli(jax.random.key(11), 0.5, (blocks, DEFAULT_LINK.k))
    decided = send_bits(jax.random.key(12), bits.astype(jnp.float32), snr_db, DEFAULT_LINK)
    p_link = 1 - np.mean(np.all(np.asarray(decided) == np.asarray(bits), axis=-1))
    drawn = abstraction.message_intact(jax.random.key(13), snr_db, DEFAULT_LINK, 1, (blocks,))
    p_drawn = 1 - np.mean(drawn)
    sigma = math.sqrt(p_curve * (1 - p_curve) * (1 / n_curve + 1 / blocks))
    assert 0.02 < p_curve < 0.3
    assert abs(p_link - p_curve) < 4 * sigma
    assert abs(p_drawn - p_curve) < 4 * math.sqrt(p_curve * (1 - p_curve) / blocks)


def test_refuses_what_cannot_be_abstracted():
    ofdm = digital_link_config("tdl-a", "qpsk", 0.5, 512)
    with pytest.raises(ValueError, match="cannot be abstracted block by block"):
        abstraction.message_intact(jax.random.key(0), 0.0, ofdm, 1)
    uncoded = digital.LinkConfig("qpsk", "awgn", "uncoded", 512, 512)
    with pytest.raises(ValueError, match="is not an LDPC"):
        abstraction.link_bler_curve(uncoded)
