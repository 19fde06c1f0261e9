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

Costs count one inference of one sample. Latency is the critical path:
device compute, then the link, then server compute (see :func:`latency_s`).
"""

import dataclasses
from typing import Literal, NamedTuple, Protocol

import jax
from flax import struct

__all__ = ["CHANNELS", "Link", "Hardware", "Cost", "Outcome", "Strategy", "latency_s", "make_cost"]

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
            (the twins) (static).
    """

    snr_db: jax.Array | float
    connectivity: jax.Array | float = 1.0
    channel: Channel = struct.field(pytree_node=False, default="awgn")
    backend: Literal["sionna", "jax"] = struct.field(pytree_node=False, default="sionna")

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel: unknown {self.channel!r}; allowed: {', '.join(CHANNELS)}")
        if self.backend not in ("sionna", "jax"):
            raise ValueError(f"backend: unknown {self.backend!r}; allowed: sionna, jax")


@dataclasses.dataclass(frozen=True)
class Hardware:
    """Compute speeds and link bandwidth behind the latency of a strategy.

    The defaults are those of ``latency_bitrate`` (see there for the sources): a
    Cortex-M7 microcontroller running int8 CMSIS-NN kernels (about 0.5 GOP/s at
    480 MHz), a datacenter GPU at batch 1 (5 % of an A100's 19.5 TFLOP/s FP32
    peak) and a 1 MHz uplink (1 M complex channel uses per second, the order of
    an LTE-M carrier).

    Attributes:
        device_flops_per_s: sustained FLOP/s of an IoT device.
        server_flops_per_s: sustained FLOP/s of the edge/cloud server.
        symbol_rate_hz: complex channel uses per second of the uplink (its
            bandwidth for Nyquist signalling).
    """

    device_flops_per_s: float = 5e8
    server_flops_per_s: float = 1e12
    symbol_rate_hz: float = 1e6

    def __post_init__(self):
        for name in ("device_flops_per_s", "server_flops_per_s", "symbol_rate_hz"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name}: {value!r} is not > 0")


class Cost(NamedTuple):
    """Resources of one inference of one sample.

    Attributes:
        channel_uses: complex channel uses on the critical path (all hops).
        payload_bits: info bits sent before coding (0 for analog symbols).
        device_flops: FLOPs on the devices' critical path.
        server_flops: FLOPs on the server.
        latency_s: device compute + channel uses / symbol rate + server compute.
    """

    channel_uses: float
    payload_bits: float
    device_flops: float
    server_flops: float
    latency_s: float


def latency_s(device_flops, channel_uses, server_flops, hardware: Hardware):
    """End-to-end latency in seconds of work done one stage after the other."""
    return (
        device_flops / hardware.device_flops_per_s
        + channel_uses / hardware.symbol_rate_hz
        + server_flops / hardware.server_flops_per_s
    )


def make_cost(channel_uses, payload_bits, device_flops, server_flops, hardware: Hardware) -> Cost:
    """A :class:`Cost` whose latency follows from the other fields and ``hardware``."""
    return Cost(
        channel_uses, payload_bits, device_flops, server_flops,
        latency_s(device_flops, channel_uses, server_flops, hardware),
    )  # fmt: skip


class Outcome(NamedTuple):
    """What a strategy returns.

    Attributes:
        logits: ``[B, num_classes]`` float32, the final decision's scores.
        cost: :class:`Cost` of one inference.
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
