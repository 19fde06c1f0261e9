"""What a link leaks vs its SNR: the inversion attacker's PSNR from what the receiver gets.

For each strategy in ``strategies`` (by default the analog split, the digital
split it is matched to in channel uses, and raw pixels to the cloud), on each
channel and at each Es/N0 of ``snr_db``, an attacker who receives what the
server receives (the server itself, or an eavesdropper at the same SNR) trains
an inverse network on the first ``attack_train`` training images and
reconstructs the test images (:mod:`airinfer.models.inversion`):

* ``psnr_db``: its reconstruction PSNR of unseen inputs (images in [0, 1]);
* ``blind_psnr_db``: the floor, what guessing the mean training image gives.

What the receiver gets is :meth:`received` of the strategy (the equalised noisy
symbols of the analog split, the values or pixels rebuilt from the decided
bits of the digital links, errors and all). The analog link leaks less as the
SNR falls; the digital ones leak everything above their cliff and next to
nothing below it. A strategy that sends nothing leaks the floor. The attacker
is trained afresh for every row (a cut sweep resumes at the next row).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import strategies_snr, table1
from airinfer.experiments.config import ConfigError
from airinfer.experiments.plotting import channel_name, display_name, draw_curve, save_figure, style
from airinfer.experiments.registry import Experiment, register
from airinfer.models.inversion import InversionConfig
from airinfer.models.inversion import privacy_psnr as inversion_psnr
from airinfer.strategies.base import Link


@dataclasses.dataclass(frozen=True)
class InversionSnrConfig(strategies_snr.StrategiesSnrConfig):
    """Configuration of ``inversion_snr``: that of ``strategies_snr`` plus the attacker.

    Attributes:
        attack_train: images the attacker trains its inverse network on (the
            first ones of the training split; 0 = all).
        attack_epochs: most epochs of the inverse network.
    """

    strategies: tuple[str, ...] = ("split_analog", "split_digital_b2", "cloud_digital")
    snr_db: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0, 20.0)
    attack_train: int = 10000
    attack_epochs: int = 30

    def __post_init__(self):
        super().__post_init__()
        if self.attack_train < 0 or self.attack_epochs < 1:
            raise ConfigError(
                f"attack_train: {self.attack_train} must be >= 0 and attack_epochs: "
                f"{self.attack_epochs} >= 1"
            )


QUICK = strategies_snr.QUICK | {
    "snr_db": (-10.0, 0.0, 10.0, 20.0),
    "attack_train": 0,
    "attack_epochs": 15,
}


def points(config):
    """One point per (channel, strategy, snr_db)."""
    return strategies_snr.points(config)


def received(strategy, key, images, link, batch_size):
    """``strategy.received`` over ``images`` in batches, ``[N, ...]``; None when the
    strategy sends nothing.

    Every batch has ``batch_size`` images (the last one padded, the padding
    dropped), so one compiled program serves them all.
    """
    if not hasattr(strategy, "received"):
        return None
    run = jax.jit(strategy.received)
    parts = []
    for i, start in enumerate(range(0, len(images), batch_size)):
        batch = np.asarray(images[start : start + batch_size])
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - size, axis=0)])
        parts.append(np.asarray(run(jax.random.fold_in(key, i), batch, link))[:size])
    return np.concatenate(parts)


def run_point(key, config, point):
    """The attacker's PSNR from what ``point``'s strategy delivers at its SNR."""
    train_images, test_images, unit_train, unit_test = table1.attack_data(config)
    strategy = strategies_snr.strategy(config, point["strategy"], point["channel"])
    link = Link(
        snr_db=jnp.float32(point["snr_db"]), channel=point["channel"], backend=config.backend
    )
    key_train, key_test, key_attack = jax.random.split(key, 3)
    floor = table1.blind_floor(config)
    sent_train = received(strategy, key_train, train_images, link, config.batch_size)
    if sent_train is None:
        return {"psnr_db": floor, "blind_psnr_db": floor}
    sent_test = received(strategy, key_test, test_images, link, config.batch_size)
    attack = InversionConfig(epochs=config.attack_epochs)
    psnr = inversion_psnr(key_attack, sent_train, unit_train, sent_test, unit_test, attack)
    return {"psnr_db": psnr, "blind_psnr_db": floor}


def plot(rows, config, path):
    """PSNR vs SNR, one panel per channel, one curve per strategy, the blind floor dotted."""
    channels = list(dict.fromkeys(r["channel"] for r in rows))
    figure = Figure(figsize=(5 * len(channels), 4.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(channels), sharey=True))
    for ax, channel in zip(axes, channels, strict=True):
        mine = [r for r in rows if r["channel"] == channel]
        for index, name in enumerate(dict.fromkeys(r["strategy"] for r in mine)):
            curve = sorted((r["snr_db"], r["psnr_db"]) for r in mine if r["strategy"] == name)
            snr, psnr = zip(*curve, strict=True)
            draw_curve(ax, snr, psnr, label=display_name(name), **style(name, index))
        ax.axhline(mine[0]["blind_psnr_db"], color="black", linestyle=":",
                   label="blind guess (floor)")  # fmt: skip
        ax.set_title(f"{config.dataset}, {channel_name(channel)}")
        ax.set_xlabel("Es/N0 per complex symbol [dB]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("inversion PSNR [dB]")
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="inversion_snr",
        summary="leakage vs the link's SNR: the inversion attacker's PSNR from what is received",
        config=InversionSnrConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
