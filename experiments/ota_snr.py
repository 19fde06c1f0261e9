"""Edge-ensemble accuracy vs SNR: over-the-air aggregation against orthogonal digital links.

K trained members classify the test set. As in the survey's edge ensembles,
device 0 is the inferring device: its own output enters the average exactly,
and its K - 1 neighbours send theirs (:mod:`ota`) at every Es/N0 of the
sweep, on AWGN, Rayleigh block fading and 3GPP TDL-A over OFDM. Schemes:

* ``noiseless``: the average of the members' softmax outputs, no channel (the
  upper bound);
* ``ota_belief`` / ``ota_vote`` / ``ota_sign``: softmax outputs, one-hot votes
  or one-bit sign votes summed over the air, the devices precoding with
  ``precoding``: truncated channel inversion by default, or full inversion,
  phase compensation, or the optimal power control of Cao, Zhu, Xu and Huang
  (``"optimal"``, :func:`airinfer.ota.precoding.optimal_power_control`); with
  ``num_rx_ant`` receive antennas combined by ``combiner``;
* ``orthogonal``: each device quantises its softmax output to ``bits`` bits and
  sends it LDPC-coded in its own slot (:mod:`airinfer.ota.orthogonal`);
* ``best_single``: the member with the best validation accuracy, alone.

The devices' power budget ``P`` holds per block (``power_constraint="peak"``,
the default) or on average over the fading (``"average"``: truncated
inversion on Rayleigh fading, received amplitude ``sqrt(P / E1(threshold))``
instead of ``sqrt(P threshold)``); rows of the fading channels say which.

Each accuracy's 95 % Wilson interval (``accuracy_ci``, half-width) counts test
images (``ci_test_images`` of them), not image x draw pairs: the draws of one
image share it, so they are not independent trials.

At equal channel uses (``equal_channel_uses=True``) the over-the-air block is
repeated until it uses as many channel uses as the orthogonal scheme does for
the same K. ``snr_db`` is the received Es/N0 per complex symbol of one device
at full power through a unit-average-gain channel.

Each (scheme, channel, K) curve is one jitted call over every SNR point, draw
and test sample; the points of a curve are then saved one by one. With
``backend="jax"`` the draws of every curve (over the air and orthogonal; TDL-A
on the 38.901 twin) are sharded over ``devices`` devices
(:mod:`airinfer.experiments.sharding`), with the same results for any number;
the Sionna backend runs on one device.
"""

import dataclasses
import functools
import io
import math
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import aggregation
from airinfer.experiments.checks import check_orthogonal_link
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, member_outputs
from airinfer.experiments.plotting import (
    channel_name,
    display_name,
    dodges,
    draw_curve,
    save_figure,
    style,
)
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.experiments.unused import refuse_invalid, refuse_unused
from airinfer.ota import COMBINERS
from airinfer.ota.aircomp import AirCompConfig
from airinfer.ota.cost import channel_uses
from airinfer.ota.orthogonal import OrthogonalConfig
from airinfer.ota.precoding import POWER_CONSTRAINTS, PRECODINGS, check_power_constraint

__all__ = ["OtaSnrConfig", "EXPERIMENT", "air_config", "channel_costs"]

Scheme = Literal["noiseless", "ota_belief", "ota_vote", "ota_sign", "orthogonal", "best_single"]
Channel = Literal["awgn", "rayleigh", "tdl-a"]
SCHEMES = ("noiseless", "ota_belief", "ota_vote", "ota_sign", "orthogonal", "best_single")
DEFAULT_THRESHOLD = 0.1


@dataclasses.dataclass(frozen=True)
class OtaSnrConfig:
    """Configuration of ``ota_snr``.

    Attributes:
        seed: root of every curve's key.
        ensemble: the members (the first K of them serve K devices).
        snr_db: Es/N0 per complex symbol in dB.
        num_devices: the ensemble sizes K.
        channels: ``awgn``, ``rayleigh`` (flat block fading), ``tdl-a`` (OFDM).
        schemes: which curves to draw.
        draws: channel draws per test sample.
        precoding: the devices' policy over the air: ``truncated``, ``full``,
            ``phase`` or ``optimal`` (see :mod:`airinfer.ota.precoding`).
        threshold: truncated inversion's threshold on the channel power gain
            (only with ``precoding="truncated"``).
        power_constraint: ``peak`` (``P`` on every block) or ``average`` (``P``
            on average over the fading; truncated inversion, one antenna, on
            the Rayleigh channel; AWGN has no fading and keeps full power).
        num_rx_ant: receive antennas on the fading channels (AWGN has one
            stream), for both the over-the-air and the orthogonal schemes.
        combiner: how the over-the-air receiver combines its antennas:
            ``eigen`` or ``lmmse`` (needs ``num_rx_ant >= 2``).
        bits, modulation, code_rate: the orthogonal scheme's quantiser and link.
        equal_channel_uses: repeat the over-the-air block to match the
            orthogonal scheme's channel uses.
        backend: ``sionna`` (Sionna's channels via the bridge) or ``jax`` (twins).
        save_logits: keep the members' test logits (``member_logits.npz``).
        devices: devices sharing the draws of the JAX curves (None: all).
    """

    seed: int = 0
    ensemble: EnsembleSpec = EnsembleSpec(dataset="fashion_mnist", width=0.5, members=20, epochs=2)
    snr_db: tuple[float, ...] = tuple(float(s) for s in range(-20, 31, 2))
    num_devices: tuple[int, ...] = (4, 8, 16)
    channels: tuple[Channel, ...] = ("awgn", "rayleigh", "tdl-a")
    schemes: tuple[Scheme, ...] = SCHEMES
    draws: int = 10
    precoding: Literal["truncated", "full", "phase", "optimal"] = "truncated"
    threshold: float = DEFAULT_THRESHOLD
    power_constraint: Literal["peak", "average"] = "peak"
    num_rx_ant: int = 1
    combiner: Literal["eigen", "lmmse"] = "eigen"
    bits: int = 8
    modulation: Literal["qpsk", "16qam", "64qam"] = "qpsk"
    code_rate: float = 0.5
    equal_channel_uses: bool = True
    backend: Literal["sionna", "jax"] = "sionna"
    save_logits: bool = False
    devices: int | None = None

    def __post_init__(self):
        if any(k < 1 or k > self.ensemble.members for k in self.num_devices):
            raise ConfigError(
                f"num_devices: {self.num_devices} must lie in [1, ensemble.members="
                f"{self.ensemble.members}]"
            )
        if self.draws < 1:
            raise ConfigError(f"draws: {self.draws} is not >= 1")
        if not self.threshold > 0:
            raise ConfigError(f"threshold: {self.threshold} is not > 0")
        if self.precoding not in PRECODINGS:
            raise ConfigError(f"precoding: {self.precoding!r} is not one of {PRECODINGS}")
        if self.precoding != "truncated" and self.threshold != DEFAULT_THRESHOLD:
            raise ConfigError(
                f"threshold: {self.threshold} would have no effect with precoding="
                f"{self.precoding!r} (only truncated inversion has a threshold)"
            )
        if self.num_rx_ant < 1:
            raise ConfigError(f"num_rx_ant: {self.num_rx_ant} is not >= 1")
        self._check_power_constraint()
        if self.combiner not in COMBINERS:
            raise ConfigError(f"combiner: {self.combiner!r} is not one of {COMBINERS}")
        if self.combiner != "eigen" and self.num_rx_ant == 1:
            raise ConfigError(
                f"combiner: {self.combiner!r} would have no effect with num_rx_ant=1 "
                "(one antenna has nothing to combine)"
            )
        if not 0 < self.code_rate < 1:
            raise ConfigError(f"code_rate: {self.code_rate} is not in (0, 1)")
        if any(not math.isfinite(s) for s in self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} has a non-finite value")
        check_orthogonal_link(self.bits, self.modulation, self.code_rate)
        self._refuse_unused()
        for channel in self.channels:  # what the curves build after training, built now
            refuse_invalid(f"over the air on {channel}", air_config, self, channel, 1)
            refuse_invalid(f"orthogonal on {channel}", _orthogonal_config, self, channel)

    def _refuse_unused(self):
        """Fields that the schemes and channels chosen leave without effect."""
        over_the_air = any(s.startswith("ota_") for s in self.schemes)
        if not over_the_air:
            refuse_unused(
                self, ("precoding", "threshold", "power_constraint", "combiner",
                       "equal_channel_uses"),
                "no over-the-air scheme (ota_belief, ota_vote, ota_sign) in schemes",
            )  # fmt: skip
        if "orthogonal" not in self.schemes and not (over_the_air and self.equal_channel_uses):
            refuse_unused(
                self, ("bits", "modulation", "code_rate"),
                "the orthogonal link only matters to the orthogonal scheme and, with "
                "equal_channel_uses, to the over-the-air repetitions",
            )  # fmt: skip
        if not over_the_air and "orthogonal" not in self.schemes:
            refuse_unused(
                self, ("num_rx_ant", "backend"),
                "noiseless and best_single use no channel",
            )  # fmt: skip
        if set(self.channels) <= {"awgn"}:
            refuse_unused(
                self, ("num_rx_ant", "power_constraint"),
                "AWGN alone has one stream and no fading (devices send at full power)",
            )  # fmt: skip

    def _check_power_constraint(self):
        """``peak`` anywhere; ``average`` with truncated inversion, one antenna, awgn/rayleigh."""
        if self.power_constraint not in POWER_CONSTRAINTS:
            raise ConfigError(
                f"power_constraint: {self.power_constraint!r} is not one of {POWER_CONSTRAINTS}"
            )
        if self.power_constraint == "peak":
            return
        try:
            check_power_constraint(self.power_constraint, self.precoding)
        except ValueError as error:
            raise ConfigError(f"power_constraint: {error}") from None
        if self.num_rx_ant != 1 or any(c not in ("awgn", "rayleigh") for c in self.channels):
            raise ConfigError(
                "power_constraint: 'average' needs the devices' gain |g|^2 exponential for its "
                "closed form: channels awgn (full power) and rayleigh only, num_rx_ant=1; got "
                f"channels={self.channels}, num_rx_ant={self.num_rx_ant}"
            )


QUICK = {
    "ensemble.dataset": "digits",
    "ensemble.epochs": 10,
    "num_devices": (4, 16),
    "snr_db": tuple(float(s) for s in range(-20, 31, 5)),
    "draws": 5,
}


def points(config):
    """One point per (K, channel, scheme, snr_db)."""
    return [
        {"num_devices": k, "channel": channel, "scheme": scheme, "snr_db": snr}
        for k in config.num_devices
        for channel in config.channels
        for scheme in config.schemes
        for snr in config.snr_db
    ]


def _receive_antennas(config, channel):
    """``{"num_rx_ant": M}`` on fading channels; AWGN has one stream."""
    return {} if channel == "awgn" else {"num_rx_ant": config.num_rx_ant}


def air_config(config, channel, repetitions):
    """The over-the-air curves' :class:`~airinfer.ota.aircomp.AirCompConfig` on ``channel``."""
    receiver = _receive_antennas(config, channel)
    if config.num_rx_ant > 1 and channel != "awgn":
        receiver["combiner"] = config.combiner
    if config.precoding == "truncated":
        receiver["threshold"] = config.threshold
    if channel != "awgn":
        receiver["power_constraint"] = config.power_constraint
    return AirCompConfig(
        channel=channel, precoding=config.precoding, repetitions=repetitions, local_device=True,
        backend=config.backend, **receiver,
    )  # fmt: skip


def _orthogonal_config(config, channel):
    return OrthogonalConfig(
        channel=channel, bits=config.bits, modulation=config.modulation,
        code_rate=config.code_rate, local_device=True, backend=config.backend,
        **_receive_antennas(config, channel),
    )  # fmt: skip


def channel_costs(config, num_devices, num_classes):
    """``(orthogonal channel uses, over-the-air repetitions)`` when K - 1 neighbours send."""
    if num_devices == 1:  # the device alone: nothing crosses the channel
        return 0, 1
    orthogonal = channel_uses(
        "orthogonal", num_classes, num_devices - 1, bits=config.bits, code_rate=config.code_rate,
        bits_per_symbol=_orthogonal_config(config, "awgn").bits_per_symbol,
    )  # fmt: skip
    per_block = channel_uses("ota_belief", num_classes, num_devices)
    repetitions = math.ceil(orthogonal / per_block) if config.equal_channel_uses else 1
    return orthogonal, repetitions


@functools.cache
def _curve(config, num_devices, channel, scheme):
    """{snr_db: (accuracy, channel_uses, undecided)} of one curve (computed once per process)."""
    outputs = member_outputs(config.ensemble)
    probs = aggregation.softmax(outputs.test_logits[:num_devices])  # [K, N, C]
    labels = outputs.test_labels
    num_classes = probs.shape[-1]
    orthogonal_uses, repetitions = channel_costs(config, num_devices, num_classes)
    snr = np.asarray(config.snr_db, np.float32)

    if scheme in ("noiseless", "best_single"):
        if scheme == "noiseless":
            accuracy = aggregation.noiseless_accuracy(np.moveaxis(probs, 0, 1), labels)
        else:
            accuracy, _ = aggregation.best_single_member(
                outputs.val_logits[:num_devices], outputs.test_logits[:num_devices],
                labels, outputs.val_labels,
            )  # fmt: skip
        return {s: (accuracy, 0, 0) for s in config.snr_db}  # finite outputs: checked

    key = aggregation.curve_key(config.seed, num_devices, channel, scheme)
    device_major = np.moveaxis(probs, 0, 1)  # [N, K, C]
    if scheme == "orthogonal":
        curve = aggregation.orthogonal_accuracy_curve(
            key, device_major, labels, snr, config=_orthogonal_config(config, channel),
            draws=config.draws, devices=config.devices, num_devices=num_devices,
            return_undecided=True,
        )  # fmt: skip
        uses = orthogonal_uses
    else:
        air = air_config(config, channel, repetitions)
        curve = aggregation.ota_accuracy_curve(
            key, device_major, labels, snr, scheme=scheme, config=air, draws=config.draws,
            devices=config.devices, num_devices=num_devices, return_undecided=True,
        )  # fmt: skip
        uses = repetitions * math.ceil(num_classes / 2)
    return {
        s: (float(a), uses, int(u))
        for s, a, u in zip(config.snr_db, curve.accuracy, curve.undecided, strict=True)
    }


def run_point(key, config, point):
    """Accuracy of one point with its 95 % Wilson interval.

    The curve's key, not ``key``, drives the draws: a curve is computed in one
    call. The interval counts test images (``ci_test_images``), not draws,
    since the draws of one image share it. Over the air on a fading channel,
    ``power_constraint`` says which convention the devices met. ``undecided``
    counts the inferences (test image x draw) whose estimate was not finite
    and got no decision (counted as wrong; 0 unless something went wrong).
    """
    accuracy, uses, undecided = _curve(
        config, point["num_devices"], point["channel"], point["scheme"]
    )[point["snr_db"]]
    num_images = len(member_outputs(config.ensemble).test_labels)
    low, high = wilson_interval(round(accuracy * num_images), num_images)
    faded = point["scheme"].startswith("ota") and point["channel"] != "awgn"
    return {
        "accuracy": accuracy,
        "accuracy_ci": (high - low) / 2,
        "ci_test_images": num_images,
        "channel_uses": uses,
        "power_constraint": config.power_constraint if faded else None,
        "undecided": undecided,
    }


def _uses_text(uses: set) -> str:
    """The channel uses of a panel's links: one number, or the over-the-air and orthogonal ones."""
    if len(uses) == 1:
        return f"{next(iter(uses))} channel uses"
    return "channel uses " + " / ".join(str(u) for u in sorted(uses))


def plot(rows, config, path):
    """A grid: one row of panels per K (devices), one column per channel; thin 95 %
    error bars, the schemes nudged sideways so that close curves stay apart; each
    panel's title gives the channel uses the links spent per inference."""
    ks, channels = config.num_devices, config.channels
    figure = Figure(figsize=(4.2 * len(channels), 3.0 * len(ks) + 1.0), layout="constrained")
    # One y-range per K: the small ensembles dip far under fading, and a shared
    # axis would flatten the larger ones' differences of a point or two.
    axes = figure.subplots(len(ks), len(channels), squeeze=False, sharex=True, sharey="row")
    shifts = dodges(len(config.schemes), config.snr_db)
    for i, k in enumerate(ks):
        for j, channel in enumerate(channels):
            ax = axes[i][j]
            uses = set()
            for index, scheme in enumerate(config.schemes):
                curve = sorted(
                    (r["snr_db"], r["accuracy"], r["accuracy_ci"], r.get("channel_uses") or 0)
                    for r in rows
                    if r["num_devices"] == k and r["channel"] == channel and r["scheme"] == scheme
                )
                if not curve:
                    continue
                x, y, ci, spent = (np.asarray(c) for c in zip(*curve, strict=True))
                uses.update(int(u) for u in spent if u)
                draw_curve(ax, x, y, ci, label=display_name(scheme), dodge=shifts[index],
                           **style(scheme, index))  # fmt: skip
            budget = f"\n{_uses_text(uses)} per inference" if uses else ""
            ax.set_title(f"{channel_name(channel)}, K = {k} devices{budget}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(ks) - 1:
                ax.set_xlabel("Es/N0 per device [dB]")
            if j == 0:
                ax.set_ylabel("accuracy")
    receiver = [f"{config.power_constraint} power constraint"]
    if config.precoding != "truncated":
        receiver.append(f"over the air: {config.precoding} precoding")
    if config.num_rx_ant > 1:
        receiver.append(f"{config.num_rx_ant} receive antennas ({config.combiner} combiner)")
    if config.equal_channel_uses:
        receiver.append("over the air repeated to the orthogonal channel uses")
    figure.suptitle("; ".join(receiver) + "; bars: 95 % intervals", fontsize=9)
    save_figure(figure, path)


def member_logits_file(config, rows=None):
    """With ``save_logits``: ``member_logits.npz`` (``logits`` [K, N, C], ``labels`` [N])."""
    if not config.save_logits:
        return {}
    outputs = member_outputs(config.ensemble)
    buffer = io.BytesIO()
    np.savez(buffer, logits=outputs.test_logits, labels=outputs.test_labels)
    return {"member_logits.npz": buffer.getvalue()}


EXPERIMENT = register(
    Experiment(
        name="ota_snr",
        summary=(
            "edge-ensemble accuracy vs SNR: over-the-air belief/vote/sign sums vs orthogonal "
            "digital"
        ),
        config=OtaSnrConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=member_logits_file,
    )
)
