"""The digital link over 3GPP OFDM channels: grid layout, CSI, Sionna's own OFDM link, checks."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import digital
from airinfer.phy.digital import LinkConfig
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

# Long programs (OFDM links decoding 100 LDPC blocks per call, shared by the
# tests): full XLA optimisation pays (tests/conftest.py). The uncoded link and
# the grid's checks compile at the suite's cheap default.
long_program = pytest.mark.xla_optimized

# One codeword fills one slot exactly, as in Sionna's OFDM tutorials: 576 info
# bits at rate 1/2 give 576 QPSK symbols = 12 data OFDM symbols x 48 subcarriers
# (14 OFDM symbols, pilots on symbols 2 and 11).
K, N = 576, 1152
LS = LinkConfig(channel="tdl-a", k=K, n=N, csi="ls")
PERFECT = LinkConfig(channel="tdl-a", k=K, n=N)
# Every call sends batches of 100 blocks: one static shape, one compilation per link.
BLOCKS = 100
# Es/N0 per resource element where TDL-A with LS CSI loses ~1/3 of its blocks
# (measured: 0.33 with this link and with Sionna's own).
MIDDLE_SNR_DB = 8.0
# The BLER comparison sends 4 batches (400 blocks) through each simulation. Two
# independent binomial estimates of the same p differ by sigma = sqrt(2 p (1-p) / 400)
# (0.033 at p = 1/3); 3.5 sigma (0.12) misses a correct link with probability 5e-4.
REFERENCE_BATCHES = 4
TOLERANCE_SIGMAS = 3.5


def _block_errors(config, snr_db, batches, seed=11):
    """Block errors of ``batches`` x BLOCKS blocks, batch ``i`` keyed by ``fold_in(key, i)``."""
    key = jax.random.key(seed)
    return sum(
        int(digital.error_counts(jax.random.fold_in(key, i), config, snr_db, BLOCKS).block_errors)
        for i in range(batches)
    )


@functools.cache
def _middle_snr_block_errors(csi):
    return _block_errors(LS if csi == "ls" else PERFECT, MIDDLE_SNR_DB, REFERENCE_BATCHES)


def _sionna_reference_block_errors(csi, snr_db, batches, seed=3):
    """Block errors of Sionna's own OFDM link, built from its blocks only (graph mode).

    The canonical chain of Sionna's OFDM tutorials: binary source, 5G LDPC encoder,
    QPSK mapper, resource grid mapper, OFDMChannel (TDL-A, 100 ns, 3.5 GHz, static,
    not renormalised per draw: unit average gain, the link's convention), LS
    estimation with linear interpolation or the true channel, LMMSE equaliser,
    APP demapper, 5G LDPC decoder. Sionna's own random generator, seeded.
    """
    tf = tensorflow()
    sn = sionna_phy()
    sn.config.seed = seed
    grid = sn.ofdm.ResourceGrid(
        num_ofdm_symbols=14, fft_size=48, subcarrier_spacing=30e3,
        pilot_pattern="kronecker", pilot_ofdm_symbol_indices=[2, 11],
    )  # fmt: skip
    streams = sn.mimo.StreamManagement(np.ones([1, 1], int), 1)
    tdl = sn.channel.tr38901.TDL("A", 100e-9, 3.5e9, min_speed=0.0, max_speed=0.0)
    encoder = sn.fec.ldpc.LDPC5GEncoder(K, N)
    decoder = sn.fec.ldpc.LDPC5GDecoder(encoder, hard_out=True, num_iter=20)
    mapper = sn.mapping.Mapper("qam", 2)
    demapper = sn.mapping.Demapper("app", "qam", 2)
    grid_mapper = sn.ofdm.ResourceGridMapper(grid)
    channel = sn.channel.OFDMChannel(tdl, grid, normalize_channel=False, return_channel=True)
    estimator = sn.ofdm.LSChannelEstimator(grid, interpolation_type="lin")
    equalizer = sn.ofdm.LMMSEEqualizer(grid, streams)
    source = sn.mapping.BinarySource()

    @tf.function
    def block_errors(no):
        bits = source([BLOCKS, 1, 1, K])
        y, h = channel(grid_mapper(mapper(encoder(bits))), no)
        h_hat, err_var = estimator(y, no) if csi == "ls" else (h, 0.0)
        x_hat, no_eff = equalizer(y, h_hat, err_var, no)
        bits_hat = decoder(demapper(x_hat, no_eff))
        wrong = tf.reduce_any(tf.not_equal(bits, bits_hat), axis=-1)
        return tf.reduce_sum(tf.cast(wrong, tf.int32))

    no = tf.constant(10.0 ** (-snr_db / 10.0), tf.float32)
    return sum(int(block_errors(no)) for _ in range(batches))


def _assert_same_bler(ours, reference, blocks):
    pooled = (ours + reference) / (2 * blocks)
    assert 0.05 < pooled < 0.95, f"not a waterfall point: BLER {pooled}"
    sigma = math.sqrt(2 * pooled * (1 - pooled) / blocks)
    assert abs(ours - reference) / blocks <= TOLERANCE_SIGMAS * sigma, (ours, reference, blocks)


# --------------------------------------------------------------------------- the link


# slow (5 min of Sionna OFDM under load): the default suite has the JAX twin's error-free
# run at 40 dB and this link's BLER against Sionna's own OFDM link at 8 dB
@pytest.mark.slow
@long_program
def test_error_free_at_40_db_with_perfect_and_ls_csi():
    for config in (PERFECT, LS):
        counts = digital.error_counts(jax.random.key(40), config, 40.0, BLOCKS)
        assert int(counts.bit_errors) == 0 and int(counts.block_errors) == 0, config.csi


@long_program
def test_bler_matches_sionnas_own_ofdm_link():
    blocks = REFERENCE_BATCHES * BLOCKS
    ours = _middle_snr_block_errors("ls")
    reference = _sionna_reference_block_errors("ls", MIDDLE_SNR_DB, REFERENCE_BATCHES)
    _assert_same_bler(ours, reference, blocks)


@pytest.mark.slow
@long_program
def test_bler_matches_sionnas_own_ofdm_link_closely():
    # 2000 blocks each: 3.5 sigma = 0.05 at BLER 1/3, for both CSI modes.
    batches = 20
    for csi, config in (("ls", LS), ("perfect", PERFECT)):
        ours = _block_errors(config, MIDDLE_SNR_DB, batches, seed=12)
        reference = _sionna_reference_block_errors(csi, MIDDLE_SNR_DB, batches, seed=4)
        _assert_same_bler(ours, reference, batches * BLOCKS)


# slow: the perfect-CSI link is one more OFDM link to build and compile (some 30
# CPU-seconds); the default run has the LS link against Sionna's own LS link above
# and the LS estimator against Sionna's (tests/phy/test_digital_ofdm_jax.py)
@pytest.mark.slow
@long_program
def test_ls_estimation_loses_blocks_that_perfect_csi_decodes():
    # Same keys: both links see the same channels and noise (LS draws nothing),
    # so the difference of block errors is the number of blocks only one of them
    # lost, minus the reverse. A sign test on the discordant blocks, whose number
    # is at most the sum of both counts: the difference exceeds 3 sigma of it.
    ls, perfect = _middle_snr_block_errors("ls"), _middle_snr_block_errors("perfect")
    assert perfect > 0
    assert ls - perfect > 3 * math.sqrt(ls + perfect), (ls, perfect)


@long_program
def test_another_snr_does_not_recompile():
    digital.error_counts(jax.random.key(0), LS, 40.0, BLOCKS)
    size = digital._error_counts._cache_size()
    digital.error_counts(jax.random.key(1), LS, 3.0, BLOCKS)
    digital.error_counts(jax.random.key(2), LS, -5.0, BLOCKS)
    assert digital._error_counts._cache_size() == size


def test_per_block_snr_and_extreme_snr_give_finite_llrs():
    # Uncoded: the LLR signs are the decisions. Blocks alternate between a
    # noise-free slot (no = 0), 60 dB and -40 dB.
    config = LinkConfig(channel="tdl-a", coding="uncoded", k=K)
    bits = jnp.asarray(np.random.default_rng(5).integers(0, 2, (BLOCKS, K)), jnp.float32)
    no = jnp.tile(jnp.asarray([0.0, 1e-6, 1e4]), BLOCKS // 3 + 1)[:BLOCKS]
    llr = np.asarray(digital.channel_llrs(jax.random.key(5), bits, no, config))
    assert llr.shape == (BLOCKS, K) and np.all(np.isfinite(llr))
    decided = llr > 0
    clean = np.asarray(no) <= 1e-6
    # 60 dB: P(bit error) ~ 1 / (4 snr) = 2.5e-7 per bit under Rayleigh-like fading.
    np.testing.assert_array_equal(decided[clean], np.asarray(bits)[clean] == 1)
    assert np.mean(np.abs(llr[~clean])) < 0.1  # -40 dB: no confidence
    assert 0.4 < np.mean(decided[~clean] != (np.asarray(bits)[~clean] == 1)) < 0.6


@pytest.mark.slow
@long_program
def test_cdl_over_several_slots_with_doppler_is_error_free_at_40_db():
    # 512 QPSK symbols on 24 subcarriers: 2 slots, the second partly empty.
    config = LinkConfig(channel="cdl-c", csi="ls", fft_size=24, speed=30.0, delay_spread=300e-9)
    assert config.slots_per_block == 2
    counts = digital.error_counts(jax.random.key(3), config, 40.0, BLOCKS)
    assert int(counts.block_errors) == 0
    assert int(digital.error_counts(jax.random.key(3), config, 0.0, BLOCKS).block_errors) > 0


# --------------------------------------------------------------------------- the grid


def test_grid_layout_and_overhead():
    default = LinkConfig(channel="tdl-a")  # 512 QPSK symbols
    assert default.num_data_ofdm_symbols == 12
    assert default.grid_fft_size == 43 and default.slots_per_block == 1  # 43 x 12 = 516 >= 512
    assert default.resource_elements_per_block == 14 * 43
    assert default.pilot_resource_elements_per_block == 2 * 43
    assert default.num_symbols == 512  # channel uses: data only
    fixed = LinkConfig(
        channel="cdl-a", fft_size=16, num_ofdm_symbols=7, pilot_ofdm_symbol_indices=[3]
    )
    assert fixed.data_resource_elements_per_slot == 6 * 16
    assert fixed.slots_per_block == 6  # ceil(512 / 96)
    assert fixed.resource_elements_per_block == 6 * 7 * 16
    assert fixed.pilot_resource_elements_per_block == 6 * 16
    no_pilots = LinkConfig(channel="tdl-b", pilot_ofdm_symbol_indices=())
    assert no_pilots.grid_fft_size == 37 and no_pilots.pilot_resource_elements_per_block == 0
    flat = LinkConfig(channel="rayleigh")
    assert flat.resource_elements_per_block == flat.num_symbols
    assert flat.pilot_resource_elements_per_block == 0 and flat.slots_per_block is None
    # Pilot indices are stored sorted, as a tuple: equal settings, one configuration.
    a = LinkConfig(channel="tdl-a", pilot_ofdm_symbol_indices=[11, 2])
    assert a == default and hash(a) == hash(default)


def test_blocks_fill_their_slots_frequency_first():
    # 50 symbols per block, 4 OFDM symbols with pilots on symbol 1, 6 subcarriers:
    # 18 data REs per slot, 3 slots, 4 empty REs at the end of the last one.
    config = LinkConfig(
        channel="tdl-a", coding="uncoded", k=100, num_ofdm_symbols=4, fft_size=6,
        pilot_ofdm_symbol_indices=(1,),
    )  # fmt: skip
    assert config.slots_per_block == 3
    tf = tensorflow()
    x = (np.arange(2 * 50) + 1).reshape(2, 50).astype(np.complex64)
    grid = digital._to_slots(config, digital._blocks(config), tf.constant(x)).numpy()
    assert grid.shape == (6, 1, 1, 4, 6)
    data_rows = (0, 2, 3)
    expected = np.zeros((6, 3, 6), np.complex64)
    for b in range(2):
        for j in range(50):
            slot, i = divmod(j, 18)
            expected[3 * b + slot, i // 6, i % 6] = x[b, j]
    np.testing.assert_array_equal(grid[:, 0, 0, data_rows], expected)
    np.testing.assert_allclose(np.abs(grid[:, 0, 0, 1]), 1.0, rtol=1e-6)  # QPSK pilots


def test_channel_has_unit_average_gain_and_a_fade_per_slot():
    # Not renormalised per draw (as the flat Rayleigh link): E|h|^2 = 1 over draws,
    # and a slot's mean gain varies from slot to slot (it would be exactly 1 if
    # every draw were normalised).
    config = LinkConfig(channel="tdl-a", k=K, n=N)
    generate = digital._blocks(config).ofdm.generate
    sn = sionna_phy()
    sn.config.seed = 1
    h = generate(2000).numpy()  # [2000, 1, 1, 1, 1, 14, 48]
    slot_gain = np.mean(np.abs(h) ** 2, axis=(1, 2, 3, 4, 5, 6))
    # A slot's gain is a sum of ~exponential tap powers with variance <= 1, so
    # 5 sigma of the mean over 2000 slots is <= 5 / sqrt(2000) = 0.11.
    assert abs(np.mean(slot_gain) - 1.0) < 0.11
    assert np.std(slot_gain) > 0.3


# --------------------------------------------------------------------------- checks

PILOTS, CSI_ERROR = "pilot_ofdm_symbol_indices", "receiver_csi_error_var"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"channel": "tdl-f"}, "channel"),
        ({"channel": "awgn", "fft_size": 64}, "fft_size"),
        ({"channel": "rayleigh", "csi": "ls"}, "csi"),
        ({"channel": "rayleigh", "speed": 3.0}, "speed"),
        ({"channel": "awgn", PILOTS: (2,)}, PILOTS),
        ({"channel": "tdl-a", "csi": "mmse"}, "csi"),
        ({"channel": "tdl-a", "ls_interpolation": "nn"}, "ls_interpolation"),
        ({"channel": "tdl-a", "csi": "ls", "ls_interpolation": "cubic"}, "ls_interpolation"),
        ({"channel": "tdl-a", "csi": "ls", CSI_ERROR: 0.1}, CSI_ERROR),
        ({"channel": "tdl-a", "csi": "ls", PILOTS: ()}, PILOTS),
        ({"channel": "tdl-a", PILOTS: (2, 14)}, PILOTS),
        ({"channel": "tdl-a", PILOTS: (2, 2)}, PILOTS),
        ({"channel": "tdl-a", PILOTS: "2"}, PILOTS),
        ({"channel": "tdl-a", "num_ofdm_symbols": 2, PILOTS: (0, 1)}, PILOTS),
        ({"channel": "tdl-a", "num_ofdm_symbols": 0}, "num_ofdm_symbols"),
        ({"channel": "tdl-a", "fft_size": 0}, "fft_size"),
        ({"channel": "tdl-a", "fft_size": 12.0}, "fft_size"),
        ({"channel": "cdl-b", "delay_spread": -1e-7}, "delay_spread"),
        ({"channel": "cdl-b", "subcarrier_spacing": float("nan")}, "subcarrier_spacing"),
        ({"channel": "cdl-b", "carrier_frequency": True}, "carrier_frequency"),
        ({"channel": "cdl-b", "speed": -1.0}, "speed"),
    ],
)
def test_bad_ofdm_config_raises_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        LinkConfig(**kwargs)
