"""BER and BLER vs Es/N0 of the digital link: QPSK/16QAM, uncoded and 5G LDPC, AWGN and Rayleigh.

Every curve (modulation x channel x coding) is swept over the same grid of
``snr_db`` (Es/N0 per complex symbol in dB, average Es/N0 under Rayleigh
fading; noise CN(0, no) with ``no = 10**(-snr_db/10)``). Each point sends
batches of random blocks through :mod:`airinfer.phy.digital` (one jitted call per
batch) until it has seen both ``min_bit_errors`` bit errors and
``min_block_errors`` block errors, or ``max_bits`` info bits. Sionna's
``sim_ber`` counts the same two targets (``num_target_bit_errors``,
``num_target_block_errors``) but stops at the first one met; here both must be
met, because a coded link's bit errors come in bursts of one block: 100 bit
errors may be one failed block, which resolves neither the BER nor the BLER.
The plot overlays the closed forms of :mod:`airinfer.phy.theory` on the
uncoded curves.

Intervals (95 %): the BLER's is Wilson's over blocks (independent). The BER's
is the wider of Wilson's over bits and the normal interval from the per-block
error counts (their sample variance): bits of one block are not independent,
and on a coded link the first alone is far too narrow.
"""

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments.config import ConfigError
from airinfer.experiments.plotting import channel_name, display_name, save_figure
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import Z95, wilson_interval
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
        min_bit_errors: a point stops once it has this many bit errors ...
        min_block_errors: ... and this many block errors (both), ...
        max_bits: ... or after this many info bits, whichever comes first.
        blocks_per_batch: blocks per jitted call.
        backend: ``sionna`` (Sionna's blocks through the bridge) or ``jax`` (the
            JAX twins of :mod:`airinfer.phy.digital_jax`, no TensorFlow).
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
    min_block_errors: int = 100
    max_bits: int = 1_000_000
    blocks_per_batch: int = 200
    backend: Literal["sionna", "jax"] = "sionna"
    #: accepted by every experiment (airinfer.experiments.sharding); Sionna's link: one device
    devices: int | None = None

    def __post_init__(self):
        for name in (
            "min_bit_errors", "min_block_errors", "max_bits", "blocks_per_batch", "k", "num_iter",
        ):  # fmt: skip
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
            backend=config.backend,
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


@functools.partial(jax.jit, static_argnames=("link", "num_blocks"))
def _batch_counts(key, snr_db, link, num_blocks):
    """One batch: ``(bit errors, sum over blocks of bit errors squared, block errors)``."""
    key_bits, key_link = jax.random.split(key)
    bits = jax.random.bernoulli(key_bits, 0.5, (num_blocks, link.k)).astype(jnp.float32)
    bits_hat, _ = digital.transmit(key_link, bits, snr_db, link)
    per_block, block_error = digital.count_errors(bits, bits_hat)
    per_block = per_block.astype(jnp.float32)
    return jnp.sum(per_block), jnp.sum(per_block**2), jnp.sum(block_error, dtype=jnp.int32)


def simulate_point(key, config, link, snr_db):
    """Batches of ``blocks_per_batch`` blocks (batch ``i`` keyed by ``fold_in(key, i)``) until
    ``min_bit_errors`` bit errors and ``min_block_errors`` block errors, or ``max_bits``.

    Output:
        dict of Python numbers: ``bit_errors``, ``bit_errors_squared`` (the sum
        over blocks of each block's bit errors squared), ``bits``,
        ``block_errors``, ``blocks``.
    """
    totals = dict.fromkeys(("bit_errors", "bit_errors_squared", "block_errors", "blocks"), 0)
    snr = jnp.float32(snr_db)
    for batch in range(math.ceil(config.max_bits / (config.blocks_per_batch * link.k))):
        counts = _batch_counts(jax.random.fold_in(key, batch), snr, link, config.blocks_per_batch)
        for name, value in zip(("bit_errors", "bit_errors_squared", "block_errors"), counts,
                               strict=True):  # fmt: skip
            totals[name] += round(float(value))
        totals["blocks"] += config.blocks_per_batch
        if (totals["bit_errors"] >= config.min_bit_errors
                and totals["block_errors"] >= config.min_block_errors):  # fmt: skip
            break
    totals["bits"] = totals["blocks"] * link.k
    return totals


def ber_interval(bit_errors, bit_errors_squared, blocks, k):
    """95 % interval of the BER: the wider of Wilson's over the ``blocks * k`` bits and the
    normal interval of the mean of the per-block error counts (blocks are independent,
    bits within one are not). Output ``(low, high)``, clipped to [0, 1]."""
    low, high = wilson_interval(bit_errors, blocks * k)
    if blocks > 1:
        mean = bit_errors / blocks
        variance = max(bit_errors_squared / blocks - mean * mean, 0.0) * blocks / (blocks - 1)
        half = Z95 * math.sqrt(variance / blocks) / k
        low, high = min(low, max(mean / k - half, 0.0)), max(high, min(mean / k + half, 1.0))
    return low, high


def run_point(key, config, point):
    """Simulate one point; returns BER, BLER, counts and 95 % intervals.

    Columns: ``ber``, ``ber_ci`` (half-width of the BER's interval, see
    :func:`ber_interval`), ``ber_ci_low``, ``ber_ci_high``, ``bler``, ``bler_ci``,
    ``bler_ci_low``, ``bler_ci_high`` (Wilson's over blocks), ``bit_errors``,
    ``bits``, ``block_errors``, ``blocks``, and ``ber_theory`` (the closed form
    for uncoded points, empty for coded ones).
    """
    link = _link_config(config, point["modulation"], point["channel"], point["coding"])
    counts = simulate_point(key, config, link, float(point["snr_db"]))
    ber_low, ber_high = ber_interval(
        counts["bit_errors"], counts["bit_errors_squared"], counts["blocks"], link.k
    )
    bler_low, bler_high = wilson_interval(counts["block_errors"], counts["blocks"])
    ber_theory = None
    if link.coding == "uncoded":
        ber_theory = float(theory.ber(point["snr_db"], link.modulation, link.channel))
    return {
        "ber": counts["bit_errors"] / counts["bits"],
        "ber_ci": (ber_high - ber_low) / 2,
        "ber_ci_low": ber_low,
        "ber_ci_high": ber_high,
        "bler": counts["block_errors"] / counts["blocks"],
        "bler_ci": (bler_high - bler_low) / 2,
        "bler_ci_low": bler_low,
        "bler_ci_high": bler_high,
        "bit_errors": counts["bit_errors"],
        "bits": counts["bits"],
        "block_errors": counts["block_errors"],
        "blocks": counts["blocks"],
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
    figure = Figure(figsize=(5.0 * len(channels), 4.6), layout="constrained")
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
                label=f"{display_name(modulation)}, {display_name(coding)}",
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
                        label=f"{display_name(modulation)}, theory (uncoded)",
                    )
        axes.set_yscale("log")
        axes.set_title(channel_name(channel))
        axes.set_xlabel("Es/N0 per symbol [dB]")
        axes.set_ylabel("BER")
        axes.grid(True, which="both", alpha=0.3)
    bottom = 0.5 * floor if floor else 1e-6
    for axes in axes_list:
        axes.set_ylim(bottom=max(bottom, 1e-9), top=0.6)
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="link_ber",
        summary="BER and BLER vs Es/N0 of QPSK/16QAM, uncoded and 5G LDPC, over AWGN and Rayleigh",
        config=LinkBerConfig,
        # 9 SNR points x 8 curves (the LDPC waterfalls lie below 10 dB); 1e5 bits
        # resolve an uncoded BER of 1e-3 with ~100 errors; 20 block errors (up to
        # 2e6 bits, 3,900 blocks) resolve a coded BLER down to ~5e-3 within ±50 %.
        quick={
            "snr_db": (0.0, 2.0, 4.0, 6.0, 10.0, 15.0, 20.0, 25.0, 30.0),
            "min_bit_errors": 100,
            "min_block_errors": 20,
            "max_bits": 2_000_000,
            "blocks_per_batch": 100,
        },
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
