"""BER and BLER vs Es/N0 of the digital link: QPSK/16QAM, uncoded and 5G LDPC, AWGN and Rayleigh.

Every curve (modulation x channel x coding) is swept over the same grid of
``snr_db`` (Es/N0 per complex symbol in dB, average Es/N0 under Rayleigh
fading; noise CN(0, no) with ``no = 10**(-snr_db/10)``). Each point sends
batches of random blocks through :mod:`airinfer.phy.digital` (one jitted call per
batch) until ``min_bit_errors`` bit errors or ``max_bits`` info bits, as
Sionna's ``sim_ber`` does. The plot overlays the closed forms of
:mod:`airinfer.phy.theory` on the uncoded curves.
"""

import dataclasses
import math
from typing import Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from airinfer.experiments.config import ConfigError
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.phy import digital, theory

__all__ = ["LinkBerConfig", "EXPERIMENT", "points", "run_point", "plot"]

Modulation = Literal["qpsk", "16qam"]
Channel = Literal["awgn", "rayleigh"]
Coding = Literal["uncoded", "ldpc"]


@dataclasses.dataclass(frozen=True)
class LinkBerConfig:
    """Configuration of the ``link_ber`` sweep.

    Attributes:
        seed: root of every point's key.
        snr_db: Es/N0 per complex symbol in dB, the x axis of every curve.
        modulations, channels, codings: the curves, all combinations.
        k: info bits per block (the BLER's block; also the uncoded block).
        code_rate: LDPC rate ``k / n``; ``n = k / code_rate`` must be a whole
            multiple of the bits per symbol of every modulation.
        num_iter: belief-propagation iterations of the LDPC decoder.
        receiver_csi_error_var: variance of the receiver's channel-estimation
            error (0: perfect CSI).
        min_bit_errors: a point stops after this many bit errors ...
        max_bits: ... or after this many info bits, whichever comes first.
        blocks_per_batch: blocks per jitted call.
    """

    seed: int = 0
    snr_db: tuple[float, ...] = tuple(float(s) for s in range(-2, 33, 2))
    modulations: tuple[Modulation, ...] = ("qpsk", "16qam")
    channels: tuple[Channel, ...] = ("awgn", "rayleigh")
    codings: tuple[Coding, ...] = ("uncoded", "ldpc")
    k: int = 512
    code_rate: float = 0.5
    num_iter: int = 20
    receiver_csi_error_var: float = 0.0
    min_bit_errors: int = 200
    max_bits: int = 1_000_000
    blocks_per_batch: int = 200

    def __post_init__(self):
        for name in ("min_bit_errors", "max_bits", "blocks_per_batch", "k", "num_iter"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.code_rate < 1:
            raise ConfigError(f"code_rate must be in (0, 1), got {self.code_rate!r}")
        if any(not math.isfinite(s) for s in self.snr_db):
            raise ConfigError(f"snr_db must be finite numbers, got {self.snr_db!r}")
        for name in ("modulations", "channels", "codings"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ConfigError(f"{name} has repeated entries: {getattr(self, name)!r}")


def _link_config(config, modulation, channel, coding):
    """The :class:`~airinfer.phy.digital.LinkConfig` of one curve; bad combinations: ConfigError."""
    n = None
    if coding == "ldpc":
        n = round(config.k / config.code_rate)
    try:
        return digital.LinkConfig(
            modulation=modulation,
            channel=channel,
            coding=coding,
            k=config.k,
            n=n,
            receiver_csi_error_var=config.receiver_csi_error_var,
            num_iter=config.num_iter,
        )
    except ValueError as error:
        raise ConfigError(f"{modulation}/{channel}/{coding}: {error}") from None


def points(config):
    """The sweep, curve by curve: ``{"modulation", "channel", "coding", "snr_db"}`` dicts."""
    sweep = []
    for modulation in config.modulations:
        for channel in config.channels:
            for coding in config.codings:
                _link_config(config, modulation, channel, coding)  # fail before running
                for snr_db in config.snr_db:
                    sweep.append(
                        {
                            "modulation": modulation,
                            "channel": channel,
                            "coding": coding,
                            "snr_db": float(snr_db),
                        }
                    )
    return sweep


def run_point(key, config, point):
    """Simulate one point; returns BER, BLER, counts and 95 % Wilson intervals.

    Columns: ``ber``, ``ber_ci`` (half-width of the 95 % Wilson interval),
    ``ber_ci_low``, ``ber_ci_high``, ``bler``, ``bler_ci``, ``bit_errors``,
    ``bits``, ``block_errors``, ``blocks``, and ``ber_theory`` (the closed form
    for uncoded points, empty for coded ones).
    """
    link = _link_config(config, point["modulation"], point["channel"], point["coding"])
    counts = digital.simulate_ber(
        key,
        link,
        float(point["snr_db"]),
        min_bit_errors=config.min_bit_errors,
        max_bits=config.max_bits,
        blocks_per_batch=config.blocks_per_batch,
    )
    ber_low, ber_high = wilson_interval(counts.bit_errors, counts.bits)
    bler_low, bler_high = wilson_interval(counts.block_errors, counts.blocks)
    ber_theory = None
    if link.coding == "uncoded":
        ber_theory = float(theory.ber(point["snr_db"], link.modulation, link.channel))
    return {
        "ber": counts.bit_errors / counts.bits,
        "ber_ci": (ber_high - ber_low) / 2,
        "ber_ci_low": ber_low,
        "ber_ci_high": ber_high,
        "bler": counts.block_errors / counts.blocks,
        "bler_ci": (bler_high - bler_low) / 2,
        "bit_errors": counts.bit_errors,
        "bits": counts.bits,
        "block_errors": counts.block_errors,
        "blocks": counts.blocks,
        "ber_theory": ber_theory,
    }


_COLOURS = {"qpsk": "tab:blue", "16qam": "tab:red"}
_STYLES = {"uncoded": "--", "ldpc": "-"}


def plot(rows, config, path):
    """BER vs Es/N0, one panel per channel; uncoded dashed, LDPC solid, theory thin.

    Points with zero errors cannot be drawn on a log axis and are left out.
    """
    channels = [c for c in ("awgn", "rayleigh") if any(r["channel"] == c for r in rows)]
    channels = channels or list(config.channels)
    figure = Figure(figsize=(5.0 * len(channels), 4.0), layout="constrained")
    FigureCanvasAgg(figure)  # render with Agg whatever pyplot's backend is
    axes_list = figure.subplots(1, len(channels), squeeze=False)[0]
    floor = None
    for axes, channel in zip(axes_list, channels, strict=True):
        curves = {}
        for row in rows:
            if row["channel"] == channel:
                curves.setdefault((row["modulation"], row["coding"]), []).append(row)
        grid = []
        for (modulation, coding), curve in curves.items():
            curve = sorted(curve, key=lambda r: r["snr_db"])
            grid += [r["snr_db"] for r in curve]
            shown = [r for r in curve if r["ber"] > 0]
            if not shown:
                continue
            ber = np.array([r["ber"] for r in shown])
            low = np.array([r.get("ber_ci_low") or r["ber"] for r in shown])
            high = np.array([r.get("ber_ci_high") or r["ber"] for r in shown])
            axes.errorbar(
                [r["snr_db"] for r in shown],
                ber,
                yerr=[ber - np.minimum(low, ber), np.maximum(high, ber) - ber],
                color=_COLOURS.get(modulation),
                linestyle=_STYLES.get(coding, "-"),
                marker="o",
                markersize=3,
                capsize=2,
                label=f"{modulation} {coding}",
            )
            smallest = float(ber.min())
            floor = smallest if floor is None else min(floor, smallest)
        if grid:
            fine = np.linspace(min(grid), max(grid), 200)
            for modulation in sorted({m for m, _ in curves}):
                if modulation in theory.BITS_PER_SYMBOL:
                    axes.plot(
                        fine,
                        theory.ber(fine, modulation, channel),
                        color=_COLOURS.get(modulation),
                        linewidth=0.7,
                        alpha=0.7,
                        label=f"{modulation} theory (uncoded)",
                    )
        axes.set_yscale("log")
        axes.set_title(channel.upper() if channel == "awgn" else channel.capitalize())
        axes.set_xlabel("Es/N0 per symbol [dB]")
        axes.set_ylabel("BER")
        axes.grid(True, which="both", alpha=0.3)
        if curves:
            axes.legend(fontsize="small")
    bottom = 0.5 * floor if floor else 1e-6
    for axes in axes_list:
        axes.set_ylim(bottom=max(bottom, 1e-9), top=0.6)
    figure.savefig(path, dpi=150)


EXPERIMENT = register(
    Experiment(
        name="link_ber",
        summary="BER and BLER vs Es/N0 of QPSK/16QAM, uncoded and 5G LDPC, over AWGN and Rayleigh",
        config=LinkBerConfig,
        # 9 SNR points x 8 curves (the LDPC waterfalls lie below 10 dB); 1e5 bits
        # resolve a BER of 1e-3 with ~100 errors.
        quick={
            "snr_db": (0.0, 2.0, 4.0, 6.0, 10.0, 15.0, 20.0, 25.0, 30.0),
            "min_bit_errors": 100,
            "max_bits": 100_000,
            "blocks_per_batch": 100,
        },
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
