"""The interface every collaboration strategy implements.

A strategy is a callable ``strategy(key, images, link) -> Outcome``: a JAX key,
a batch of device inputs ``[B, H, W, C]`` and the link conditions; it returns
the server's (or device's) logits ``[B, num_classes]`` and the cost of one
inference. Calls are jit-able: :class:`Link` is a pytree whose SNR and
connectivity are traced values, while the channel model and backend are static
(they choose the program), so one compiled function serves a whole SNR sweep::

    run = jax.jit(strategy)
    for snr_db in (-5.0, 0.0, 10.0):
        outcome = run(key, images, Link(snr_db=snr_db, channel="rayleigh"))

Costs count one inference of one sample (:class:`airinfer.strategies.cost.Cost`).
Latency is the critical path: device compute, then the link, then server
compute (see :func:`airinfer.strategies.cost.latency_s`).
"""

from typing import Literal, NamedTuple, Protocol

import jax
from flax import struct

from airinfer.strategies.cost import Cost

__all__ = ["CHANNELS", "Link", "Outcome", "Strategy"]

Channel = Literal["awgn", "rayleigh", "tdl-a"]
CHANNELS = ("awgn", "rayleigh", "tdl-a")


@struct.dataclass
class Link:
    """Conditions of the links a strategy uses.

    Attributes:
        snr_db: Es/N0 per complex symbol in dB at each receiver (traced).
        connectivity: probability that a neighbour device joins (traced;
            used by strategies with several devices).
        channel: ``awgn``, ``rayleigh`` (flat block fading, perfect CSI at the
            receiver) or ``tdl-a`` (3GPP TDL-A over OFDM) (static).
        backend: ``sionna`` (Sionna's channels through the bridge) or ``jax``
            (the twins; their LDPC decoders stop a block at its first zero
            syndrome, always: no decision of a converged block changes, and the
            others run every iteration, so it is not a setting; see
            :func:`airinfer.phy.link_adaptation.on_backend`) (static).
        server_connectivity: probability that the server is reachable at all
            for an inference (traced; used by the hybrid strategy, whose
            ensemble falls back on itself when the server is not).
    """

    snr_db: jax.Array | float
    connectivity: jax.Array | float = 1.0
    channel: Channel = struct.field(pytree_node=False, default="awgn")
    backend: Literal["sionna", "jax"] = struct.field(pytree_node=False, default="sionna")
    server_connectivity: jax.Array | float = 1.0

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel: unknown {self.channel!r}; allowed: {', '.join(CHANNELS)}")
        if self.backend not in ("sionna", "jax"):
            raise ValueError(f"backend: unknown {self.backend!r}; allowed: sionna, jax")


class Outcome(NamedTuple):
    """What a strategy returns.

    Attributes:
        logits: ``[B, num_classes]`` float32, the final decision's scores.
        cost: :class:`airinfer.strategies.cost.Cost` of one inference.
    """

    logits: jax.Array
    cost: Cost


class Strategy(Protocol):
    """A collaboration strategy (see the module docstring)."""

    name: str

    def __call__(self, key: jax.Array, images: jax.Array, link: Link) -> Outcome: ...

    def message(self, images: jax.Array, snr_db: float) -> jax.Array | None:
        """What leaves a device for ``images`` ``[B, H, W, C]``, before the channel.

        ``[B, ...]`` float32: the values or symbols its transmitter sends (as
        reals), for links at ``snr_db`` (only SNR-aware encoders look at it);
        None when nothing leaves the device. Privacy proxies attack this message.
        """
        ...

    # Optional: strategies that send something over a link may also offer
    #   received(key, images, link) -> [B, ...] float32,
    # what the receiver (or an eavesdropper at the same SNR) gets of ``message``
    # after the channel, errors and all (experiments.inversion_snr attacks it).
