"""The digital orthogonal baseline: quantisation, drops, fallback, simulate vs abstraction."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer import ota
from airinfer.phy import quantize
from tests.ota.conftest import member_probs

# A BLER table that is a cliff at 0 dB: below, every block is lost; above, none.
CLIFF = ota.BlerTable(
    np.array([-100.0, 0.0, 1e-3, 100.0], np.float32), np.array([1.0, 1.0, 0.0, 0.0], np.float32)
)


# One compiled program per configuration (the BLER table is a traced argument).
_orthogonal = jax.jit(ota.orthogonal_average, static_argnums=(3,))


def _quantized(values, config):
    middle, clip = (config.high + config.low) / 2, (config.high - config.low) / 2
    return middle + quantize.dequantize(
        quantize.quantize(values - middle, config.bits, clip), config.bits, clip
    )


def test_all_received_gives_the_average_of_the_quantised_values(key):
    probs, _ = member_probs(200, 5, 10)
    config = ota.OrthogonalConfig(channel="awgn", bits=6)
    estimate = _orthogonal(key, probs, 10.0, config, bler_table=CLIFF)
    assert bool(estimate.received.all())
    np.testing.assert_allclose(estimate.average, _quantized(probs, config).mean(1), atol=1e-6)
    step = 1 / 2**6
    assert float(jnp.abs(estimate.average - probs.mean(1)).max()) <= step / 2 + 1e-6


def test_nothing_received_falls_back_to_device_zero(key):
    probs, _ = member_probs(200, 5, 10)
    config = ota.OrthogonalConfig(channel="awgn")
    estimate = _orthogonal(key, probs, -10.0, config, bler_table=CLIFF)
    assert not bool(estimate.received.any())
    np.testing.assert_array_equal(estimate.average, probs[:, 0])


def test_p_zero_with_a_local_device_is_local_inference(key):
    probs, _ = member_probs(200, 5, 10)
    mask = ota.participation_mask(key, (200,), 5, 0.0)
    config = ota.OrthogonalConfig(channel="rayleigh", backend="jax", local_device=True)
    estimate = _orthogonal(key, probs, 30.0, config, mask, bler_table=CLIFF)
    np.testing.assert_array_equal(estimate.average, probs[:, 0])
    np.testing.assert_array_equal(estimate.num_received, 1.0)


def test_fading_drops_exactly_the_devices_below_the_cliff(key):
    probs, _ = member_probs(2000, 4, 10)
    config = ota.OrthogonalConfig(channel="rayleigh", backend="jax")
    estimate = _orthogonal(key, probs, 10.0, config, bler_table=CLIFF)
    # Received iff 10 dB + 10 log10 |h|^2 > 0 dB, i.e. |h|^2 > 0.1: P = e^-0.1.
    rate = float(estimate.received.mean())
    assert rate == pytest.approx(math.exp(-0.1), abs=4 * math.sqrt(0.09 / 8000))
    gains = ota.channel_power_gains(jax.random.split(key)[0], (2000,), 4, config)
    np.testing.assert_array_equal(estimate.received, gains > 0.1)


def test_bad_orthogonal_configuration():
    for field, value in [("bits", 0), ("code_rate", 1.0), ("power", -1.0), ("mode", "exact"),
                         ("channel", "umi"), ("modulation", "8psk"),
                         ("local_device", 1)]:  # fmt: skip
        with pytest.raises(ValueError, match=field):
            ota.OrthogonalConfig(**{field: value})


@pytest.mark.parametrize(
    "config, field",
    [
        (dict(channel="rayleigh", k_factor=2.0), "k_factor"),
        (dict(channel="rician"), "k_factor"),  # K = 0: that is Rayleigh fading
        (dict(channel="rayleigh", speed=3.0), "speed"),
        (dict(channel="awgn", delay_spread=300e-9), "delay_spread"),
        (dict(channel="awgn", num_rx_ant=2), "num_rx_ant"),
    ],
)
def test_an_orthogonal_field_without_effect_is_refused_by_name(config, field):
    with pytest.raises(ValueError, match=f"{field}=.*would have no effect|{field} must be > 0"):
        ota.OrthogonalConfig(**config)
    # ... and where it has an effect, it is accepted
    ota.OrthogonalConfig(channel="rician", k_factor=2.0, num_rx_ant=2)
    ota.OrthogonalConfig(channel="tdl-a", speed=3.0, delay_spread=300e-9)


@pytest.mark.slow
def test_ofdm_slots_decode_at_the_mutual_information_effective_snr(key):
    config = ota.OrthogonalConfig(channel="tdl-a", bits=4)
    effective = ota.effective_snr_db(key, jnp.full((300,), 10.0), 3, 4, config)
    assert effective.shape == (300, 3)
    linear = 10 ** (np.asarray(effective) / 10)
    assert np.all(np.isfinite(linear))
    # Jensen: 2^E[log2(1 + x)] - 1 <= E[x], so on average below the 10 dB mean SNR,
    # and fading spreads it.
    assert linear.mean() < 10.0
    assert linear.std() > 0.5
    probs, _ = member_probs(300, 3, 4)
    estimate = _orthogonal(key, probs, 10.0, config, bler_table=CLIFF)
    np.testing.assert_array_equal(estimate.received, np.asarray(effective) > 1e-3)


# the chunking does not depend on who draws: Sionna's OFDM channel against its JAX
# twin is tests/phy's, and Sionna's gains here the slow case
@pytest.mark.parametrize("backend", ["jax", pytest.param("sionna", marks=pytest.mark.slow)])
def test_ofdm_gains_are_drawn_in_bounded_calls(key, monkeypatch, backend):
    # 3 blocks per call: 8 blocks take 3 calls (the last one partly dropped), call i
    # drawing what one call with fold_in(key, i) draws (up to round-off: XLA fuses the
    # loop body differently); a batch that fits is one call, with the key itself.
    # Every call draws 3 blocks: one shape, one Sionna graph to build and compile.
    from airinfer.ota import orthogonal

    config = ota.OrthogonalConfig(channel="tdl-a", bits=4, backend=backend)
    num_symbols = config.link(4).num_symbols
    whole = orthogonal.ofdm_slot_gains(key, 3, 2, num_symbols, config)
    monkeypatch.setattr(orthogonal, "MAX_OFDM_ELEMENTS_PER_CALL", 3 * 2 * num_symbols)
    chunked = orthogonal.ofdm_slot_gains(key, 8, 2, num_symbols, config)
    assert chunked.shape == (8, 2, num_symbols) and whole.shape == (3, 2, num_symbols)
    for call in range(3):
        alone = orthogonal.ofdm_slot_gains(jax.random.fold_in(key, call), 3, 2, num_symbols, config)
        np.testing.assert_allclose(
            chunked[3 * call : 3 * call + 3], alone[: 8 - 3 * call], rtol=1e-5
        )
    assert not np.allclose(chunked[:3], whole)
    assert np.all(np.asarray(chunked) > 0)


# Small case: 4 values of 4 bits (k = 16, n = 32 LDPC, 16 QPSK symbols) from 4
# devices over Rayleigh fading, 600 inferences = 2400 codewords. The simulated
# drop indicators are Bernoulli(BLER(effective SNR)) given the channel, so the
# simulated drop rate differs from the mean BLER of the same channel draws by
# sqrt(sum p(1-p)) / N (<= 0.0103); the table is measured with 2000 blocks
# per point (binomial std <= 0.0112 per point, shared by the draws).
SIM_INFERENCES, SIM_DEVICES, TABLE_BLOCKS = 600, 4, 2000


@pytest.mark.slow
def test_simulate_and_abstraction_agree_within_monte_carlo_error(key):
    probs, _ = member_probs(SIM_INFERENCES, SIM_DEVICES, 4)
    config = ota.OrthogonalConfig(channel="rayleigh", bits=4, backend="jax")
    link = config.link(4)
    assert (link.k, link.n) == (16, 32)
    table = ota.measure_bler_table(link, np.arange(-4.0, 10.01, 0.5), TABLE_BLOCKS)
    assert table.bler[0] > 0.9 and table.bler[-1] == 0.0  # the table spans the waterfall
    snr_db = 4.0
    simulated = ota.orthogonal_average(
        key, probs, snr_db, dataclasses.replace(config, mode="simulate")
    )
    abstracted = ota.orthogonal_average(key, probs, snr_db, config, bler_table=table)
    # Same key: both modes see the same channel draws.
    gains = ota.channel_power_gains(jax.random.split(key)[0], (SIM_INFERENCES,), SIM_DEVICES,
                                    config)  # fmt: skip
    expected_bler = np.asarray(ota.bler_at(snr_db + 10 * jnp.log10(gains), table))
    drop_sim = 1.0 - float(simulated.received.mean())
    drop_abs = 1.0 - float(abstracted.received.mean())
    n = expected_bler.size
    conditional_std = math.sqrt(np.sum(expected_bler * (1 - expected_bler))) / n
    table_std = 0.0112
    assert 0.1 < expected_bler.mean() < 0.6  # a case where drops matter
    assert abs(drop_sim - expected_bler.mean()) < 4 * conditional_std + 3 * table_std
    assert abs(drop_abs - expected_bler.mean()) < 4 * conditional_std
    # Decoded blocks carry exactly the quantised values.
    both = np.asarray(simulated.received)
    quantized = np.asarray(_quantized(probs, config))
    weights = both[..., None]
    manual = (weights * quantized).sum(1) / np.maximum(weights.sum(1), 1)
    got_any = both.any(1)
    np.testing.assert_allclose(np.asarray(simulated.average)[got_any], manual[got_any], atol=1e-6)
