"""Channels: Sionna's models run through the bridge, with JAX-native twins.

Every function takes a JAX key first and follows the conventions of
:mod:`airinfer.phy.conventions`: complex baseband symbols, ``no`` the noise power per
complex symbol (CN(0, no), ``no / 2`` per real dimension), so that the
received SNR of device k is ``P_k * E|h_k|^2 / no``.

``backend="sionna"`` (the default) runs Sionna's blocks inside the JAX program
(:func:`airinfer.phy.bridge.bridge`); ``backend="jax"`` runs the pure-JAX twin, which is
``vmap``-able and needs no TensorFlow. The twins draw from the same
distributions and apply the channel identically; the tests tie them together.
On the multiple-access channel Sionna draws the fading and the noise, and the
superposition is formed in JAX (the same code for both backends), so that no
gradient has to cross the bridge.

``no`` broadcasts over the leading (batch) dimensions of ``x`` only, so SNR
points and Monte-Carlo trials can share one call: give ``x`` the shape
``[num_snr, num_trials, ...]`` and ``no`` the shape ``[num_snr, 1]``.

Modules: :mod:`~airinfer.phy.channels.flat` (AWGN, the flat block-fading MAC and its
draws), :mod:`~airinfer.phy.channels.ofdm` (3GPP TDL/CDL over OFDM) and
:mod:`~airinfer.phy.channels.base` (the output type and checks they share); their
public names are re-exported here.
"""

from airinfer.phy.channels.base import BACKENDS, Backend, ChannelOutput, complex_normal
from airinfer.phy.channels.flat import (
    FADINGS,
    apply_mac,
    awgn,
    draw_flat_fading,
    exponential_correlation,
    flat_fading_mac,
    truncated_rayleigh_draws,
)
from airinfer.phy.channels.ofdm import OFDM_MODELS, ofdm_mac

__all__ = [
    "Backend",
    "BACKENDS",
    "FADINGS",
    "OFDM_MODELS",
    "ChannelOutput",
    "awgn",
    "flat_fading_mac",
    "draw_flat_fading",
    "truncated_rayleigh_draws",
    "apply_mac",
    "ofdm_mac",
    "exponential_correlation",
    "complex_normal",
]
