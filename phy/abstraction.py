"""Block-error abstraction of the digital link: which messages arrive intact, without decoding.

A message of ``B`` LDPC blocks sent with an ideal CRC either arrives exactly
as sent (every block decoded right) or is dropped. Over AWGN, and over the
link's Rayleigh fading (i.i.d. per symbol, so blocks fail independently), it
arrives with probability ``(1 - BLER(snr_db)) ** B``: :func:`message_intact`
draws that verdict from the link's measured BLER curve instead of running
Sionna's decoder on every block, which is what makes a multicast to many
receivers affordable (the edge ensemble's first round sends one copy per
neighbour). It does not apply to OFDM channels (the blocks of a slot share
one channel draw) nor where the receiver uses a message with its bit errors
(no CRC): those must be simulated.

The curve (:func:`link_bler_curve`) is measured with
:func:`airinfer.phy.link_adaptation.measure_bler_curve` on the link itself,
once per :class:`~airinfer.phy.digital.LinkConfig` and process, or taken from
the curves that ship with the package where one was measured for exactly that
link (the MCS entries, and QPSK at rate 1/2, the strategies' default, with
512-bit blocks). Between grid points the BLER is interpolated linearly in dB;
below the grid it is 1, above it 0. The curves stop at 1000 blocks per point,
so BLERs under about 0.003 read as 0: a message of ``B`` blocks is then
delivered up to ``0.003 B`` too often, at the upper edge of the waterfall.

SNR is **Es/N0 per complex symbol in dB**: unit-energy symbols, noise CN(0, no)
with ``no = 10 ** (-snr_db / 10)``; the average Es/N0 under Rayleigh fading.
"""

import functools

import jax
import jax.numpy as jnp

from airinfer.phy import digital, link_adaptation

__all__ = ["ABSTRACTED_CHANNELS", "link_bler_curve", "message_intact"]

#: Channels on which blocks fail independently given the SNR.
ABSTRACTED_CHANNELS = link_adaptation.CHANNELS


def _check_link(link):
    if not isinstance(link, digital.LinkConfig) or link.coding != "ldpc":
        raise ValueError(f"link: {link!r} is not an LDPC phy.digital.LinkConfig")
    if link.channel not in ABSTRACTED_CHANNELS:
        raise ValueError(
            f"link.channel: {link.channel!r} cannot be abstracted block by block (the blocks "
            f"of an OFDM slot share its channel draw); abstracted: {', '.join(ABSTRACTED_CHANNELS)}"
        )


@functools.cache
def link_bler_curve(link) -> link_adaptation.BlerCurve:
    """The :class:`~airinfer.phy.link_adaptation.BlerCurve` of ``link`` (LDPC, AWGN or
    Rayleigh): shipped where measured for exactly this link, else measured now
    (a minute or so on two CPU cores) and kept for the process."""
    _check_link(link)
    shipped = link_adaptation.shipped_curve(link)
    return shipped if shipped is not None else link_adaptation.measure_bler_curve(link)


def message_intact(key, snr_db, link, num_blocks, shape=()):
    """Draw whether messages of ``num_blocks`` blocks arrive with every bit right.

    Parameters:
        key: JAX PRNG key.
        snr_db: Es/N0 per complex symbol in dB (average for Rayleigh),
            broadcastable to ``shape``; may be traced.
        link: :class:`~airinfer.phy.digital.LinkConfig`, LDPC over ``"awgn"`` or
            ``"rayleigh"`` (its curve is looked up or measured outside any trace).
        num_blocks: blocks per message, an int or an int array broadcastable to
            ``shape`` (codec streams differ in length).
        shape: the messages' shape.

    Output:
        ``shape`` bool, True with probability ``(1 - BLER(snr_db)) ** num_blocks``.
    """
    curve = link_bler_curve(link)
    bler = jnp.interp(
        jnp.asarray(snr_db, jnp.float32),
        jnp.asarray(curve.snr_db, jnp.float32),
        jnp.asarray(curve.bler, jnp.float32),
        left=1.0,
        right=0.0,
    )
    delivered = jnp.power(1.0 - bler, jnp.asarray(num_blocks, jnp.float32))
    return jax.random.uniform(key, shape) < delivered
