"""The OFDM resource grid, LS channel estimation and LMMSE equalisation in pure JAX.

The JAX twins of the Sionna 1.2 blocks that the digital OFDM link uses with one
transmit antenna, one stream and one receive antenna (no TensorFlow imported):

* :func:`kronecker_pilots`: the pilots of Sionna's ``KroneckerPilotPattern``
  (``seed=0``), the same complex64 values: QPSK from the first bits of
  ``tf.random.Generator.from_seed(0)`` (Philox-4x32-10, key 0, counter 0; each
  32-bit output gives one bit, its lowest), scaled to unit mean energy.
* :func:`to_grid` / :func:`data_symbols`: ``ResourceGridMapper`` and its inverse,
  with the layout of :mod:`airinfer.phy.digital` (pilots on whole OFDM symbols,
  data frequency first, slots in order, the rest of the last slot empty).
* :func:`ls_estimate`: ``LSChannelEstimator`` with ``"nn"``, ``"lin"`` or
  ``"lin_time_avg"`` interpolation. Pilots fill every subcarrier of their OFDM
  symbols, so Sionna's frequency interpolation is the identity there and only
  its time interpolation acts: nearest pilot symbol (ties to the earlier one,
  as its Manhattan-distance ``argmin`` picks), linear between the two pilot
  symbols around (extrapolated beyond the first and last), or their mean. The
  error variance is ``no / |p|^2 = no`` on every resource element, as Sionna's
  interpolation of a constant gives.
* :func:`lmmse_equalize`: ``LMMSEEqualizer`` for one stream: noise ``s = no +
  err_var`` whitened, ``g = conj(h_w) / (|h_w|^2 + 1)``, ``x_hat = g y_w / (g h_w)``
  (unbiased) and ``no_eff = 1 / (g h_w) - 1``, which equal ``y / h`` and
  ``s / |h|^2`` in exact arithmetic.

Shapes: a grid is ``[..., S, F]`` (OFDM symbols by subcarriers of one slot).
"""

import functools

import jax.numpy as jnp
import numpy as np

from airinfer.phy import qam

__all__ = ["kronecker_pilots", "to_grid", "data_symbols", "ls_estimate", "lmmse_equalize"]

# Philox-4x32-10 (Salmon et al. 2011), the constants TensorFlow uses
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _philox_words(count):
    """The first ``count`` uint32 outputs of Philox-4x32-10 with key 0 from counter 0."""
    blocks = np.arange(-(-count // 4), dtype=np.uint64)
    zeros = np.zeros_like(blocks)
    c = [blocks & 0xFFFFFFFF, blocks >> 32, zeros, zeros]
    k0 = k1 = 0
    for _ in range(10):
        p0, p1 = c[0] * _PHILOX_M[0], c[2] * _PHILOX_M[1]  # 32 x 32 bits fit in uint64
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c[3] ^ k1, p0 & 0xFFFFFFFF]
        k0, k1 = (k0 + _PHILOX_W[0]) & 0xFFFFFFFF, (k1 + _PHILOX_W[1]) & 0xFFFFFFFF
    return np.stack(c, axis=-1).reshape(-1)[:count]


@functools.cache
def kronecker_pilots(num_pilot_symbols, fft_size):
    """Sionna's Kronecker pilots of one stream: ``[num_pilot_symbols, fft_size]`` complex64.

    Row ``i`` fills pilot OFDM symbol ``i`` (in increasing index order).
    """
    bits = (_philox_words(2 * num_pilot_symbols * fft_size) & 1).astype(np.int64)
    points = qam.qam_constellation(2)[2 * bits[0::2] + bits[1::2]]
    # unit mean energy, in single precision as Sionna scales them
    # TensorFlow's |p| of a QPSK point is 1.0, the correctly rounded value
    energy = np.mean(np.abs(points.astype(np.complex128)).astype(np.float32) ** 2)
    scale = np.float32(1) / np.sqrt(energy, dtype=np.float32)
    pilots = (points * scale.astype(np.complex64)).reshape(num_pilot_symbols, fft_size)
    pilots.setflags(write=False)
    return pilots


def _layout(config):
    """Pilot and data OFDM symbol indices of a slot (numpy int arrays)."""
    pilots = np.asarray(config.pilot_ofdm_symbol_indices, int)
    data = np.setdiff1d(np.arange(config.num_ofdm_symbols), pilots)
    return pilots, data


def to_grid(x, config):
    """Data symbols ``[batch, N]`` -> slot grids ``[batch, slots_per_block, S, F]`` complex64.

    Block ``b``'s symbols fill its slots in order, the data resource elements of
    each slot frequency first; pilots sit on ``pilot_ofdm_symbol_indices``; the
    rest of the last slot is zero.
    """
    batch, num_symbols = x.shape
    slots, per_slot = config.slots_per_block, config.data_resource_elements_per_slot
    f = config.grid_fft_size
    pilot_idx, data_idx = _layout(config)
    x = jnp.pad(x, ((0, 0), (0, slots * per_slot - num_symbols)))
    data = x.reshape(batch, slots, len(data_idx), f)
    grid = jnp.zeros((batch, slots, config.num_ofdm_symbols, f), jnp.complex64)
    grid = grid.at[:, :, data_idx].set(data)
    if len(pilot_idx):
        grid = grid.at[:, :, pilot_idx].set(kronecker_pilots(len(pilot_idx), f))
    return grid


def data_symbols(grid, config):
    """The inverse of :func:`to_grid`: ``[batch, slots, S, F]`` -> ``[batch, N]``."""
    _, data_idx = _layout(config)
    data = grid[..., data_idx, :]
    return data.reshape(grid.shape[0], -1)[:, : config.num_symbols]


def ls_estimate(y, no, config):
    """LS channel estimates on the pilots, interpolated over the slot.

    Input:
        y: ``[..., S, F]`` complex64 received slot grids.
        no: float32, broadcastable to ``[...]``: noise power per resource element.
        config: :class:`~airinfer.phy.link_config.LinkConfig` with ``csi="ls"``.

    Output:
        h_hat: ``[..., S, F]`` complex64. err_var: ``[..., 1, 1]`` float32, ``no``
        (the LS error of a unit-energy pilot, the same on every resource element).
    """
    pilots, _ = _layout(config)
    h_pilots = y[..., pilots, :] / kronecker_pilots(len(pilots), config.grid_fft_size)
    shape = (*h_pilots.shape[:-2], config.num_ofdm_symbols, h_pilots.shape[-1])
    if config.ls_interpolation == "lin":
        h_hat = _linear(h_pilots, pilots, config.num_ofdm_symbols)
    elif config.ls_interpolation == "lin_time_avg":
        # the mean of the pilot symbols, constant over the slot
        h_hat = jnp.broadcast_to(jnp.sum(h_pilots, -2, keepdims=True) / len(pilots), shape)
    else:
        # nearest pilot symbol; argmin keeps the first of equal distances, the earlier
        s = np.arange(config.num_ofdm_symbols)
        h_hat = h_pilots[..., np.argmin(np.abs(s[:, None] - pilots[None, :]), axis=1), :]
    err_var = jnp.asarray(no, jnp.float32)[..., None, None]
    return h_hat, err_var


def _linear(h_pilots, pilots, num_ofdm_symbols):
    """Sionna's linear time interpolation between consecutive pilot symbols.

    ``y0 + (s - s0) (y1 - y0) / (s1 - s0)``, Sionna's form (so that it rounds the
    same), with ``(s0, s1)`` the pilot symbols around ``s`` (the first two before
    the first pilot symbol, the last two after the last).
    """
    if len(pilots) == 1:
        return jnp.broadcast_to(h_pilots, (*h_pilots.shape[:-2], num_ofdm_symbols,
                                           h_pilots.shape[-1]))  # fmt: skip
    s = np.arange(num_ofdm_symbols)
    # Sionna advances to the next pair after passing a pilot symbol other than the last
    left = np.clip(np.searchsorted(pilots, s, side="left") - 1, 0, len(pilots) - 2)
    right = left + 1
    y0, y1 = h_pilots[..., left, :], h_pilots[..., right, :]
    step = (s - pilots[left]).astype(np.float32)[:, None]
    span = (pilots[right] - pilots[left]).astype(np.float32)[:, None]
    return step * ((y1 - y0) / span) + y0


def lmmse_equalize(y, h_hat, err_var, no):
    """Single-stream LMMSE per resource element, as Sionna's ``LMMSEEqualizer``.

    Input:
        y, h_hat: ``[..., S, F]`` complex64. err_var, no: float32 broadcastable to them.

    Output:
        x_hat: ``[..., S, F]`` complex64, unbiased estimates of the sent symbols.
        no_eff: ``[..., S, F]`` float32, their effective noise variance.
    """
    root = jnp.sqrt(jnp.asarray(no, jnp.float32) + jnp.asarray(err_var, jnp.float32))
    y_w, h_w = y / root, h_hat / root  # whitened: unit noise
    g = jnp.conj(h_w) / (jnp.abs(h_w) ** 2 + 1)
    d = g * h_w
    return g * y_w / d, jnp.real(1 / d - 1)
