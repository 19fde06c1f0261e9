"""What one inference costs (compute, channel uses, latency) and where its latency is lowest.

Every strategy returns the :class:`Cost` of one inference of one sample with
its logits: complex channel uses and payload bits on the critical path, device
and server FLOPs, and the latency of the critical path, device compute, then
the link, then server compute (:func:`latency_s`), on a :class:`Hardware`.

Where the latency is lowest: the latency-vs-bitrate model of the survey's
Fig. 3 (and of Neurosurgeon, Kang et al., ASPLOS 2017). One inference of one
sample is device compute, then the uplink, then server compute, one after the
other (the critical path of :func:`latency_s`)::

    latency = device_flops / device_flops_per_s
              + rtt_s + payload_bits / bitrate        (only if something is sent)
              + server_flops / server_flops_per_s

Three kinds of :class:`Placement`:

* ``edge_only``: the whole model on the device; nothing is sent.
* ``cloud_only``: the raw input is sent (``input_bits`` per value: 8 for pixels,
  or a codec's bits per pixel) and the whole model runs on the server.
* ``split`` at a split point ``p``: the front runs on the device, its features
  are sent with ``feature_bits`` per value after an optional bottleneck that
  keeps a fraction ``bottleneck`` of the values, the back runs on the server.

Only the architecture matters (FLOPs and feature shapes), not the weights:
:func:`profile_model` works on a shape-only model. The downlink (a class index)
and the bottleneck's own encoder/decoder FLOPs are not counted.

In ``x = 1 / bitrate`` every placement's latency is affine, ``a + b x`` with
``a`` the compute time (plus ``rtt_s``) and ``b`` the payload in bits, so the
fastest placement over a range of bitrates is the lower envelope of lines,
computed exactly by :func:`fastest_regimes` (no grid), and the bitrates where a
split beats both edge-only and cloud-only inference are an interval,
:func:`split_window`.

Example::

    from airinfer.models.zoo import ModelConfig, abstract_model
    from airinfer.strategies.cost import Hardware
    config = ModelConfig("cnn", (28, 28, 1), 10)
    profile = profile_model(abstract_model(config), config.input_shape)
    options = placements(profile, input_bits=8, feature_bits=8)
    hardware = Hardware(device_flops_per_s=5e8, server_flops_per_s=1e12)
    for regime in fastest_regimes(options, 1e5, 1e8, hardware):
        print(regime)
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

from airinfer.models.zoo import feature_shape, flops

__all__ = [
    "Hardware",
    "Cost",
    "latency_s",
    "make_cost",
    "STRATEGIES",
    "SplitCost",
    "ModelProfile",
    "Placement",
    "Breakdown",
    "Regime",
    "profile_model",
    "placements",
    "placement_latency",
    "line",
    "lower_envelope",
    "fastest_regimes",
    "faster_interval",
    "split_window",
]

# --------------------------------------------------------------------------- one inference


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


# --------------------------------------------------------------------------- latency vs bitrate

STRATEGIES = ("edge_only", "cloud_only", "split")


class SplitCost(NamedTuple):
    """What cutting a model after one split point costs, per sample.

    Attributes:
        split_point: the stage after which the model is cut.
        front_flops: FLOPs of the device part.
        back_flops: FLOPs of the server part.
        feature_values: number of feature values the front emits.
    """

    split_point: str
    front_flops: float
    back_flops: float
    feature_values: int


class ModelProfile(NamedTuple):
    """The compute and sizes of a model that latency depends on.

    Attributes:
        input_values: number of input values of one sample (``H * W * C``).
        full_flops: FLOPs of one inference of the whole model.
        splits: one :class:`SplitCost` per split point, input to output.
    """

    input_values: int
    full_flops: float
    splits: tuple[SplitCost, ...]


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one inference runs and what crosses the uplink.

    Attributes:
        strategy: ``edge_only``, ``cloud_only`` or ``split``.
        split_point: the split point of a ``split``, else None.
        device_flops: FLOPs on the device.
        server_flops: FLOPs on the server.
        payload_bits: bits sent on the uplink (0 for ``edge_only``).
    """

    strategy: str
    split_point: str | None
    device_flops: float
    server_flops: float
    payload_bits: float

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy: unknown {self.strategy!r}; allowed: {', '.join(STRATEGIES)}"
            )
        if (self.strategy == "split") != (self.split_point is not None):
            raise ValueError(
                f"split_point: {self.split_point!r} given for strategy {self.strategy!r}; "
                "a split needs one, edge_only and cloud_only take none"
            )
        for name in ("device_flops", "server_flops", "payload_bits"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: {value!r} is not a finite number >= 0")

    @property
    def label(self) -> str:
        """``edge_only``, ``cloud_only`` or ``split@POINT``."""
        return self.strategy if self.split_point is None else f"split@{self.split_point}"


class Breakdown(NamedTuple):
    """Latency of one inference, in seconds, stage by stage.

    Attributes:
        device_s: device compute.
        uplink_s: ``rtt_s + payload_bits / bitrate`` (0 when nothing is sent).
        server_s: server compute.
        latency_s: the sum of the three.
    """

    device_s: float
    uplink_s: float
    server_s: float
    latency_s: float


class Regime(NamedTuple):
    """A range of bitrates over which one placement is the fastest.

    Attributes:
        strategy, split_point: the placement (see :class:`Placement`).
        low_bps, high_bps: the bitrates (bit/s) where it starts and stops winning.
    """

    strategy: str
    split_point: str | None
    low_bps: float
    high_bps: float


def profile_model(model, input_shape: tuple[int, ...]) -> ModelProfile:
    """FLOPs and feature sizes of ``model`` at every split point, for one ``input_shape`` sample.

    Args:
        model: a :class:`airinfer.models.zoo.SplitClassifier`; a shape-only one
            (:func:`airinfer.models.zoo.abstract_model`) suffices: weights play no part.
        input_shape: ``(H, W, C)`` of one sample.

    Returns:
        A :class:`ModelProfile` (FLOPs by XLA's cost analysis, a multiply-add
        counting 2).
    """
    splits = tuple(
        SplitCost(
            point,
            flops(model, input_shape, point, "front"),
            flops(model, input_shape, point, "back"),
            math.prod(feature_shape(model, point, input_shape)),
        )
        for point in model.split_points
    )
    return ModelProfile(math.prod(input_shape), flops(model, input_shape), splits)


def placements(
    profile: ModelProfile,
    *,
    input_bits: float = 8.0,
    feature_bits: float = 8.0,
    bottleneck: float = 1.0,
) -> tuple[Placement, ...]:
    """Edge-only, cloud-only and a split at every split point of ``profile``, in that order.

    Args:
        profile: the model's :class:`ModelProfile`.
        input_bits: bits per input value sent by ``cloud_only`` (8 for raw
            8-bit pixels; a codec's bits per pixel otherwise).
        feature_bits: bits per feature value sent by a split (8 for a uniform
            8-bit quantiser, 32 for float32).
        bottleneck: fraction in (0, 1] of the feature values a split sends (a
            learned bottleneck that keeps ``ceil(bottleneck * values)`` of them).

    Returns:
        A tuple of :class:`Placement`.
    """
    for name, value in (("input_bits", input_bits), ("feature_bits", feature_bits)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: {value!r} is not a finite number > 0")
    if not 0 < bottleneck <= 1:
        raise ValueError(f"bottleneck: {bottleneck!r} is not in (0, 1]")
    full = profile.full_flops
    options = [
        Placement("edge_only", None, full, 0.0, 0.0),
        Placement("cloud_only", None, 0.0, full, profile.input_values * input_bits),
    ]
    for split in profile.splits:
        # round first: 0.07 * 100 is 7.000000000000001 in floating point, not 8 values
        sent = math.ceil(round(bottleneck * split.feature_values, 9))
        options.append(
            Placement(
                "split", split.split_point, split.front_flops, split.back_flops,
                float(sent * feature_bits),
            )
        )  # fmt: skip
    return tuple(options)


def _check_link(bitrate_bps, rtt_s):
    if not (math.isfinite(rtt_s) and rtt_s >= 0):
        raise ValueError(f"rtt_s: {rtt_s!r} is not a finite number >= 0")
    if not bitrate_bps > 0:
        raise ValueError(f"bitrate_bps: {bitrate_bps!r} is not > 0")


def placement_latency(
    placement: Placement, bitrate_bps: float, hardware: Hardware, rtt_s: float = 0.0
) -> Breakdown:
    """The :class:`Breakdown` of one inference at an uplink bitrate.

    Args:
        placement: what runs where and what is sent.
        bitrate_bps: uplink info bitrate in bit/s (> 0).
        hardware: device and server speeds (its ``symbol_rate_hz`` is not used:
            the bitrate already folds in the symbol rate and the bits per
            channel use).
        rtt_s: fixed delay in seconds added whenever something is sent
            (propagation, protocol, server dispatch); 0 ignores it.

    Returns:
        A :class:`Breakdown` in seconds; ``latency_s`` equals
        :func:`latency_s` with one bit per channel use at a
        symbol rate of ``bitrate_bps``, plus ``rtt_s`` when something is sent.
    """
    _check_link(bitrate_bps, rtt_s)
    device_s = placement.device_flops / hardware.device_flops_per_s
    uplink_s = rtt_s + placement.payload_bits / bitrate_bps if placement.payload_bits > 0 else 0.0
    server_s = placement.server_flops / hardware.server_flops_per_s
    return Breakdown(device_s, uplink_s, server_s, device_s + uplink_s + server_s)


def line(placement: Placement, hardware: Hardware, rtt_s: float = 0.0) -> tuple[float, float]:
    """``(a, b)``: the placement's latency is ``a + b / bitrate`` (seconds, bit/s)."""
    _check_link(1.0, rtt_s)
    compute = (
        placement.device_flops / hardware.device_flops_per_s
        + placement.server_flops / hardware.server_flops_per_s
    )
    sends = placement.payload_bits > 0
    return compute + (rtt_s if sends else 0.0), placement.payload_bits


def lower_envelope(
    lines: Sequence[tuple[float, float]], low_bps: float, high_bps: float
) -> list[tuple[int, float, float]]:
    """Which line ``a + b / R`` is lowest, over the bitrates ``R`` in ``[low_bps, high_bps]``.

    Exact: a line's latency is affine in ``x = 1 / R``, so the winners form the
    lower envelope of the lines on ``[1 / high_bps, 1 / low_bps]``; walking
    from the highest bitrate down, the winner only ever changes to a line with
    a smaller payload ``b`` (at most ``len(lines)`` changes). Ties go to the
    line that stays lowest (smaller ``b``), then to the earlier one.

    Args:
        lines: ``(a, b)`` per candidate: seconds and bits.
        low_bps, high_bps: the range of bitrates, ``0 < low_bps <= high_bps``.

    Returns:
        ``(index, low, high)`` per regime, in increasing bitrate, contiguous:
        the first starts at ``low_bps``, the last ends at ``high_bps``.
    """
    if not lines:
        raise ValueError("lines: empty; need at least one (a, b)")
    if not (0 < low_bps <= high_bps < math.inf):
        raise ValueError(
            f"low_bps, high_bps: ({low_bps!r}, {high_bps!r}) is not 0 < low <= high < inf"
        )
    x, x_end = 1.0 / high_bps, 1.0 / low_bps

    def order(i, at):  # lowest value at ``at``, then smallest slope, then first
        a, b = lines[i]
        return (a + b * at, b, i)

    current = min(range(len(lines)), key=lambda i: order(i, x))
    segments = []  # (index, x_from, x_to), x increasing = bitrate decreasing
    while True:
        a_c, b_c = lines[current]
        best = None
        for j, (a_j, b_j) in enumerate(lines):
            if b_j < b_c:
                crossing = max(x, (a_j - a_c) / (b_c - b_j))
                candidate = (crossing, b_j, j)
                if crossing < x_end and (best is None or candidate < best):
                    best = candidate
        if best is None:
            segments.append((current, x, x_end))
            break
        crossing, _, nxt = best
        if crossing > x:
            segments.append((current, x, crossing))
        current, x = nxt, crossing
    # back to bitrates, increasing; the ends are the given ones exactly (no 1/(1/R) rounding)
    regimes = []
    for index, x_from, x_to in reversed(segments):
        low = low_bps if x_to == x_end else 1.0 / x_to
        high = high_bps if x_from == 1.0 / high_bps else 1.0 / x_from
        regimes.append((index, low, high))
    return regimes


def fastest_regimes(
    options: Sequence[Placement],
    low_bps: float,
    high_bps: float,
    hardware: Hardware,
    rtt_s: float = 0.0,
) -> list[Regime]:
    """The fastest placement over ``[low_bps, high_bps]``, as contiguous :class:`Regime` s.

    Exact crossings (see :func:`lower_envelope`), in increasing bitrate.
    """
    envelope = lower_envelope([line(o, hardware, rtt_s) for o in options], low_bps, high_bps)
    return [
        Regime(options[i].strategy, options[i].split_point, low, high) for i, low, high in envelope
    ]


def faster_interval(first: tuple[float, float], second: tuple[float, float]):
    """Bitrates ``R > 0`` where line ``first`` is strictly below ``second``.

    Args:
        first, second: ``(a, b)`` lines, latency ``a + b / R``.

    Returns:
        ``(low, high)`` in bit/s, the open interval (``high`` may be ``inf``),
        or None where ``first`` is never faster.
    """
    da, db = first[0] - second[0], first[1] - second[1]
    # solve da + db / R < 0 for R > 0
    if db == 0:
        return (0.0, math.inf) if da < 0 else None
    if db > 0:  # first sends more: it can only win on compute, at high enough rates
        return (db / -da, math.inf) if da < 0 else None
    # first sends less: it wins at every rate, or below the rate where its compute catches up
    return (0.0, -db / da) if da > 0 else (0.0, math.inf)


def split_window(split: Placement, edge: Placement, cloud: Placement, hardware, rtt_s=0.0):
    """Bitrates where ``split`` beats both edge-only and cloud-only inference.

    A split wins against the edge only once its payload goes fast enough,
    ``R > b_split / (a_edge - a_split)``, and against the cloud only while its
    device compute costs less than the payload it saves,
    ``R < (b_cloud - b_split) / (a_split - a_cloud)``; it has a regime of its
    own somewhere only if the first bound lies below the second.

    Returns:
        ``(low, high)`` in bit/s (open interval), or None if there is none.
    """
    beats_edge = faster_interval(line(split, hardware, rtt_s), line(edge, hardware, rtt_s))
    beats_cloud = faster_interval(line(split, hardware, rtt_s), line(cloud, hardware, rtt_s))
    if beats_edge is None or beats_cloud is None:
        return None
    low, high = max(beats_edge[0], beats_cloud[0]), min(beats_edge[1], beats_cloud[1])
    return (low, high) if low < high else None
