"""A digital link made of Sionna blocks (or their JAX twins), run inside jit-compiled JAX programs.

Transmitter, channel and receiver of one point-to-point link (one antenna on
each side)::

    info bits [batch, k] -> LDPC5GEncoder(k, n) -> Mapper("qam", m)
      flat channels ("awgn", "rayleigh"):
      -> AWGN | Rayleigh flat fading i.i.d. per symbol (FlatFadingChannel 1x1)
      -> one-tap equaliser with h or an estimate h + CN(0, receiver_csi_error_var)
      -> Demapper("app", "qam", m) with noise variance no / |h_est|^2
      OFDM channels ("tdl-a" ... "cdl-e", 3GPP TR 38.901):
      -> ResourceGridMapper (data and pilots on the resource grid of each slot)
      -> GenerateOFDMChannel + ApplyOFDMChannel (frequency domain, AWGN per RE)
      -> h (perfect CSI) or LSChannelEstimator on the pilots (csi="ls")
      -> LMMSEEqualizer per resource element -> Demapper("app") with its no_eff
      -> LDPC5GDecoder -> bits [batch, k]

The uncoded link skips encoder and decoder and decides each bit by the sign
of its LLR. SNR is **Es/N0 per complex symbol in dB** (per resource element on
OFDM); symbols have unit energy, so the noise is CN(0, no) with
``no = 10 ** (-snr_db / 10)`` (``no/2`` per real dimension). The channel gain is
1 on average over draws: ``E|h|^2 = 1`` for Rayleigh, and the 3GPP power delay
profiles have unit energy (the OFDM channel is not renormalised per draw, so a
slot keeps its own fade). LLRs follow Sionna 1.2: ``log(p(b=1) / p(b=0))``, so a
positive LLR means "1" (the LDPC decoder takes the same convention).

**Blocks on the OFDM resource grid.** Each block (codeword) has its own
``slots_per_block`` slots; a slot is a grid of ``num_ofdm_symbols`` OFDM symbols
by ``F = grid_fft_size`` subcarriers (no guard band, no DC null; the channel acts
per resource element: cyclic prefix long enough, no inter-carrier interference).
OFDM symbols ``pilot_ofdm_symbol_indices`` carry pilots on every subcarrier
(Sionna's Kronecker pattern, QPSK of unit energy); the other
``num_data_ofdm_symbols`` carry data. Symbol ``j`` of a block's ``n / m`` QAM
symbols goes to slot ``j // D``, with ``D`` the data resource elements per slot,
at data position ``i = j % D``: data OFDM symbol ``i // F`` (counting only data
OFDM symbols) and subcarrier ``i % F``, i.e. frequency first. The rest of the
last slot is empty (zero). ``fft_size=None`` takes the fewest subcarriers that
hold the block in one slot. Every slot draws its own channel, independent of
the others (slots far apart in time or frequency); within a slot the channel
varies over the OFDM symbols with the device's speed. The pilots are sent with
either CSI mode, so that both cost the same resources:
:attr:`LinkConfig.resource_elements_per_block` counts pilots and empty elements,
while the channel uses of a block stay ``n / m`` (:attr:`LinkConfig.num_symbols`).

``LinkConfig(backend="jax")`` runs the link on the JAX twins instead
(:mod:`airinfer.phy.digital_jax`: :mod:`~airinfer.phy.ldpc`, :mod:`~airinfer.phy.qam`,
on OFDM :mod:`~airinfer.phy.ofdm_receiver` and :mod:`~airinfer.phy.channels.tr38901`;
the same symbols and resource grid, the same signal model, JAX's random draws):
no TensorFlow is imported, and the link ``vmap``s; ``early_stop=True`` lets its
decoder stop a block at a zero syndrome.

With ``backend="sionna"``, two bridged functions serve each configuration, both
compiled to XLA inside the JAX program: the front end (encoder to demapper) and
the belief-propagation decoder (kept apart so that callers can inspect or
perturb the LLRs). Sionna blocks are built once per configuration, eagerly,
outside the traced functions, and cached together with the bridged functions.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.phy import digital_jax
from airinfer.phy.bridge import bridge
from airinfer.phy.channels.ofdm import tr38901_model
from airinfer.phy.link_config import (  # the link's vocabulary, re-exported
    _MIN_CHANNEL_POWER,
    _MIN_NOISE_POWER,
    BACKENDS,
    CHANNELS,
    CODINGS,
    CSI_MODES,
    FLAT_CHANNELS,
    LS_INTERPOLATIONS,
    MODULATIONS,
    OFDM_CHANNELS,
    LinkConfig,
    _is_int,
)
from airinfer.phy.link_rates import achievable_rate, goodput, nominal_rate
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

__all__ = [
    "BACKENDS",
    "MODULATIONS",
    "FLAT_CHANNELS",
    "OFDM_CHANNELS",
    "CHANNELS",
    "CODINGS",
    "CSI_MODES",
    "LS_INTERPOLATIONS",
    "LinkConfig",
    "ErrorCounts",
    "channel_llrs",
    "decode",
    "transmit",
    "count_errors",
    "error_counts",
    "simulate_ber",
    "achievable_rate",
    "nominal_rate",
    "goodput",
]


# ---------------------------------------------------------------------------
# Sionna blocks and the bridged functions, one set per configuration


class _OfdmBlocks(NamedTuple):
    grid_mapper: object  # ResourceGridMapper
    generate: object  # GenerateOFDMChannel (not renormalised per draw)
    apply: object  # ApplyOFDMChannel with AWGN
    estimator: object  # LSChannelEstimator, or None with perfect CSI
    equalizer: object  # LMMSEEqualizer


class _Blocks(NamedTuple):
    encoder: object  # LDPC5GEncoder or None
    decoder: object  # LDPC5GDecoder or None
    mapper: object
    demapper: object
    channel: object  # AWGN or FlatFadingChannel(1, 1, return_channel=True); None on OFDM
    ofdm: object  # _OfdmBlocks on OFDM channels, else None


def _ofdm_blocks(config):
    sn = sionna_phy()
    pilots = list(config.pilot_ofdm_symbol_indices)
    grid = sn.ofdm.ResourceGrid(
        config.num_ofdm_symbols, config.grid_fft_size, config.subcarrier_spacing,
        pilot_pattern="kronecker" if pilots else "empty",
        pilot_ofdm_symbol_indices=pilots or None,
    )  # fmt: skip
    model = tr38901_model(
        config.channel, 1, config.delay_spread, config.carrier_frequency, config.speed
    )
    streams = sn.mimo.StreamManagement(np.ones([1, 1], int), 1)
    estimator = None
    if config.csi == "ls":
        estimator = sn.ofdm.LSChannelEstimator(grid, interpolation_type=config.ls_interpolation)
    return _OfdmBlocks(
        sn.ofdm.ResourceGridMapper(grid),
        sn.channel.GenerateOFDMChannel(model, grid, normalize_channel=False),
        sn.channel.ApplyOFDMChannel(),
        estimator,
        sn.ofdm.LMMSEEqualizer(grid, streams),
    )


@functools.cache
def _blocks(config):
    sn = sionna_phy()
    tf = tensorflow()
    encoder = decoder = None
    if config.coding == "ldpc":
        try:
            encoder = sn.fec.ldpc.LDPC5GEncoder(config.k, config.codeword_length)
        except (ValueError, AssertionError) as err:
            raise ValueError(
                f"k={config.k}, n={config.codeword_length}: not a valid 5G LDPC code ({err})"
            ) from err
        # The encoder checks that its first input is binary with a tensor assert,
        # which XLA cannot compile; running it once eagerly spends that check.
        encoder(tf.zeros([1, config.k], tf.float32))
        decoder = sn.fec.ldpc.LDPC5GDecoder(encoder, num_iter=config.num_iter, hard_out=True)
    m = config.bits_per_symbol
    mapper = sn.mapping.Mapper("qam", m)
    demapper = sn.mapping.Demapper("app", "qam", m)
    channel = ofdm = None
    if config.is_ofdm:
        ofdm = _ofdm_blocks(config)
    elif config.channel == "awgn":
        channel = sn.channel.AWGN()
    else:
        channel = sn.channel.FlatFadingChannel(1, 1, return_channel=True)
    return _Blocks(encoder, decoder, mapper, demapper, channel, ofdm)


def _front_end_tf(config, blocks, bits, no):
    """TF body: info bits ``[batch, k]``, ``no`` ``[batch]`` -> LLRs ``[batch, n]``."""
    tf = tensorflow()
    sn = sionna_phy()
    codeword = blocks.encoder(bits) if blocks.encoder is not None else bits
    x = blocks.mapper(codeword)  # [batch, num_symbols] complex64
    if config.is_ofdm:
        # The OFDM blocks need no AutoGraph; converting them would cost most of
        # the tracing time.
        return tf.autograph.experimental.do_not_convert(_ofdm_tf)(config, blocks, x, no)
    no_per_symbol = tf.broadcast_to(no[:, None], tf.shape(x))
    if config.channel == "awgn":
        y = blocks.channel(x, no_per_symbol)
        h = tf.ones_like(x)
    else:
        # FlatFadingChannel draws one 1x1 matrix per batch row: make every
        # symbol a row so that the fading is i.i.d. per symbol.
        y, h = blocks.channel(tf.reshape(x, [-1, 1]), tf.reshape(no_per_symbol, [-1]))
        y = tf.reshape(y, tf.shape(x))
        h = tf.reshape(h, tf.shape(x))
    h_est = h
    if config.receiver_csi_error_var > 0:
        h_est = h + sn.utils.complex_normal(tf.shape(x), var=config.receiver_csi_error_var)
    power = tf.maximum(tf.abs(h_est) ** 2, _MIN_CHANNEL_POWER)
    y_eq = y * tf.math.conj(h_est) / tf.cast(power, y.dtype)
    return blocks.demapper(y_eq, no_per_symbol / power)


def _to_slots(config, blocks, x):
    """Symbols ``[batch, N]`` -> grids ``[batch * slots_per_block, 1, 1, S, F]`` (with pilots).

    Block ``b`` fills its slots ``b * slots_per_block`` … in order, each slot's data
    resource elements frequency first; the rest of its last slot stays empty.
    """
    tf = tensorflow()
    batch, num_symbols = x.shape
    slots, per_slot = config.slots_per_block, config.data_resource_elements_per_slot
    x = tf.pad(x, [[0, 0], [0, slots * per_slot - num_symbols]])
    return blocks.ofdm.grid_mapper(tf.reshape(x, [batch * slots, 1, 1, per_slot]))


def _ofdm_tf(config, blocks, x, no):
    """TF body of the OFDM channel and receiver: symbols ``[batch, N]`` -> LLRs ``[batch, n]``."""
    tf = tensorflow()
    sn = sionna_phy()
    ofdm = blocks.ofdm
    batch, num_symbols = x.shape
    slots, per_slot = config.slots_per_block, config.data_resource_elements_per_slot
    x_grid = _to_slots(config, blocks, x)
    no_slot = tf.repeat(no, slots)  # [batch * slots]
    h = ofdm.generate(batch * slots)  # [batch*slots, 1, 1, 1, 1, S, F]
    y = ofdm.apply(x_grid, h, no_slot)  # [batch*slots, 1, 1, S, F]
    no_rx = tf.maximum(no_slot, _MIN_NOISE_POWER)
    if ofdm.estimator is not None:
        h_hat, err_var = ofdm.estimator(y, no_rx)
    else:
        # One antenna sends one stream: h has the layout of Sionna's estimates.
        h_hat, err_var = h, tf.zeros([], tf.float32)
        if config.receiver_csi_error_var > 0:
            h_hat = h_hat + sn.utils.complex_normal(
                tf.shape(h_hat), var=config.receiver_csi_error_var
            )
    x_hat, no_eff = ofdm.equalizer(y, h_hat, err_var, no_rx)  # [batch*slots, 1, 1, D]
    x_hat = tf.reshape(x_hat, [batch, slots * per_slot])[:, :num_symbols]
    no_eff = tf.reshape(no_eff, [batch, slots * per_slot])[:, :num_symbols]
    return blocks.demapper(x_hat, no_eff)


def _decoder_tf(blocks, llr):
    return blocks.decoder(llr)


@functools.cache
def _bridged(config):
    """The bridged front end and decoder of ``config``."""
    blocks = _blocks(config)
    front = bridge(functools.partial(_front_end_tf, config, blocks))
    back = None
    if blocks.decoder is not None:
        back = bridge(functools.partial(_decoder_tf, blocks))
    return front, back


# ---------------------------------------------------------------------------
# Input checks (only on concrete values: under jit the data are tracers)


def _concrete(x):
    return not isinstance(x, jax.core.Tracer)


def _check_bits(bits, config):
    shape = jnp.shape(bits)
    if len(shape) != 2 or shape[1] != config.k:
        raise ValueError(f"bits must have shape [batch, k={config.k}], got {tuple(shape)}")
    if shape[0] < 1:
        raise ValueError(f"bits must hold at least one block, got shape {tuple(shape)}")
    if _concrete(bits):
        values = np.asarray(bits)
        if not np.all((values == 0) | (values == 1)):
            # The mapper would index past its constellation with anything else.
            raise ValueError(f"bits must be 0 or 1, got values {np.unique(values)[:8]}")
    return jnp.asarray(bits, jnp.float32)


def _per_block(name, value, batch):
    """A scalar or ``[batch]`` array as float32 ``[batch]``."""
    value = jnp.asarray(value, jnp.float32)
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, batch)):
        raise ValueError(f"{name} must be a scalar or have shape [{batch}], got {value.shape}")
    return jnp.broadcast_to(value, (batch,))


def _check_no(no):
    if _concrete(no):
        values = np.asarray(no, dtype=np.float64)
        if np.any(np.isnan(values)) or np.any(values < 0):
            raise ValueError(f"no must be >= 0 and not NaN, got {values}")


def _check_snr_db(snr_db):
    if _concrete(snr_db) and np.any(np.isnan(np.asarray(snr_db, dtype=np.float64))):
        raise ValueError(f"snr_db must not be NaN, got {snr_db}")


# ---------------------------------------------------------------------------
# The link


def channel_llrs(key, bits, no, config):
    """Encode, map, send through the channel and demap: the decoder's input.

    Parameters:
        key: JAX PRNG key seeding the channel and noise draws.
        bits: ``[batch, k]`` float32 (or int/bool) info bits of 0/1.
        no: scalar or ``[batch]`` float, noise power per complex symbol (per
            resource element on OFDM; noise CN(0, no); ``no = 10**(-snr_db/10)``
            for Es/N0 ``snr_db`` dB).
        config: :class:`LinkConfig`.

    Output:
        ``[batch, n]`` float32 LLRs ``log(p(b=1)/p(b=0))`` of the coded bits
        (of the info bits when uncoded), computed with the post-equalisation
        noise variance: ``no / |h_est|^2`` on flat channels, the LMMSE
        equaliser's effective noise (channel-estimation error included) on OFDM.
    """
    bits = _check_bits(bits, config)
    _check_no(no)
    no = _per_block("no", no, bits.shape[0])
    if config.backend == "jax":
        return digital_jax.channel_llrs(key, bits, no, config)
    front, _ = _bridged(config)
    return front(key, bits, no)


def decode(llr, config):
    """Info-bit decisions from LLRs: LDPC belief propagation, or their signs uncoded.

    Belief propagation runs ``config.num_iter`` iterations (Sionna's decoder, or
    the JAX twin with ``backend="jax"``, which with ``early_stop`` freezes a
    block at its first zero syndrome).

    Parameters:
        llr: ``[batch, n]`` float32 LLRs ``log(p(b=1)/p(b=0))``.
        config: :class:`LinkConfig`.

    Output:
        ``[batch, k]`` float32 of 0/1.
    """
    n = config.codeword_length
    if jnp.ndim(llr) != 2 or jnp.shape(llr)[1] != n:
        raise ValueError(f"llr must have shape [batch, n={n}], got {tuple(jnp.shape(llr))}")
    llr = jnp.asarray(llr, jnp.float32)
    if config.backend == "jax":
        return digital_jax.decode(llr, config)
    _, back = _bridged(config)
    if back is None:
        return (llr > 0).astype(jnp.float32)
    # The decoder draws nothing random; the bridge still wants a key.
    return back(jax.random.PRNGKey(0), llr)


def transmit(key, bits, snr_db, config):
    """Send info bits over the link and decide them at the receiver.

    Parameters:
        key: JAX PRNG key; the same key gives the same output bit for bit.
        bits: ``[batch, k]`` info bits of 0/1.
        snr_db: scalar or ``[batch]``, Es/N0 per complex symbol (per resource
            element on OFDM) in dB, average over the fading; noise CN(0, no),
            ``no = 10**(-snr_db/10)``.
        config: :class:`LinkConfig` (static under ``jax.jit``).

    Output:
        bits_hat: ``[batch, k]`` float32 of 0/1, the decided info bits.
        llr: ``[batch, n]`` float32 channel LLRs ``log(p(b=1)/p(b=0))``.
    """
    bits = _check_bits(bits, config)
    _check_snr_db(snr_db)
    snr_db = _per_block("snr_db", snr_db, bits.shape[0])
    no = jnp.power(10.0, -snr_db / 10.0)
    llr = channel_llrs(key, bits, no, config)
    return decode(llr, config), llr


def count_errors(bits, bits_hat):
    """Bit errors and block errors per block.

    Input ``bits`` and ``bits_hat``: ``[batch, k]`` of 0/1 (any dtype).

    Output:
        bit_errors: ``[batch]`` int32, wrong bits per block.
        block_error: ``[batch]`` bool, whether the block has any wrong bit.
    """
    wrong = jnp.asarray(bits) != jnp.asarray(bits_hat)
    bit_errors = jnp.sum(wrong, axis=-1, dtype=jnp.int32)
    return bit_errors, bit_errors > 0


class ErrorCounts(NamedTuple):
    """Error counts of a batch of blocks (int32 scalars, or Python ints once summed)."""

    bit_errors: object
    bits: object
    block_errors: object
    blocks: object


@functools.partial(jax.jit, static_argnames=("config", "num_blocks"))
def _error_counts(key, snr_db, config, num_blocks):
    key_bits, key_link = jax.random.split(key)
    bits = jax.random.bernoulli(key_bits, 0.5, (num_blocks, config.k)).astype(jnp.float32)
    bits_hat, _ = transmit(key_link, bits, snr_db, config)
    bit_errors, block_error = count_errors(bits, bits_hat)
    return jnp.sum(bit_errors), jnp.sum(block_error, dtype=jnp.int32)


def error_counts(key, config, snr_db, num_blocks):
    """Draw ``num_blocks`` random blocks, send them, count the errors: one jitted call.

    Parameters:
        key: JAX PRNG key (info bits, channel and noise all derive from it).
        config: :class:`LinkConfig`.
        snr_db: scalar, Es/N0 per complex symbol in dB (traced: changing it
            does not recompile).
        num_blocks: int, blocks in this batch (static).

    Output:
        :class:`ErrorCounts` with int32 ``bit_errors`` and ``block_errors``
        arrays and the Python ints ``bits = num_blocks * k``, ``blocks``.
    """
    if not isinstance(config, LinkConfig):
        raise ValueError(f"config must be a LinkConfig, got {type(config).__name__}")
    if not _is_int(num_blocks) or num_blocks < 1:
        raise ValueError(f"num_blocks must be an int >= 1, got {num_blocks!r}")
    if num_blocks * config.codeword_length >= 2**31:
        raise ValueError(f"num_blocks={num_blocks} too large: counts would overflow int32")
    if jnp.ndim(snr_db) != 0:
        raise ValueError(f"snr_db must be a scalar, got shape {jnp.shape(snr_db)}")
    _check_snr_db(snr_db)
    bit_errors, block_errors = _error_counts(
        key, jnp.asarray(snr_db, jnp.float32), config, int(num_blocks)
    )
    return ErrorCounts(bit_errors, num_blocks * config.k, block_errors, num_blocks)


def simulate_ber(
    key, config, snr_db, *, min_bit_errors=100, max_bits=1_000_000, blocks_per_batch=100
):
    """Monte-Carlo bit and block errors at one SNR, with Sionna's ``sim_ber`` stopping rule.

    Batches of ``blocks_per_batch`` blocks (one jitted call each, batch ``i``
    keyed by ``fold_in(key, i)``) run until ``min_bit_errors`` bit errors are
    seen or ``max_bits`` info bits are sent, whichever comes first.

    Parameters:
        key: JAX PRNG key.
        config: :class:`LinkConfig`.
        snr_db: float, Es/N0 per complex symbol in dB.
        min_bit_errors: int >= 1.
        max_bits: int >= 1; at least one batch always runs.
        blocks_per_batch: int >= 1.

    Output:
        :class:`ErrorCounts` of Python ints, summed over the batches.
    """
    for name, value in (
        ("min_bit_errors", min_bit_errors),
        ("max_bits", max_bits),
        ("blocks_per_batch", blocks_per_batch),
    ):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    bit_errors = bits = block_errors = blocks = 0
    batch = 0
    while True:
        counts = error_counts(jax.random.fold_in(key, batch), config, snr_db, blocks_per_batch)
        bit_errors += int(counts.bit_errors)
        block_errors += int(counts.block_errors)
        bits += counts.bits
        blocks += counts.blocks
        batch += 1
        if bit_errors >= min_bit_errors or bits >= max_bits:
            return ErrorCounts(bit_errors, bits, block_errors, blocks)
