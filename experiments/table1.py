"""The survey's Table I, measured: every strategy at one reference link.

For each strategy of ``strategies_snr`` (same models, same links, same
configuration fields) at ``snr_db`` on ``channel`` with neighbours joining
with probability ``connectivity`` (and the hybrid's server reachable with
probability ``server_connectivity``), one row with

* ``accuracy`` (95 % Wilson half-width ``accuracy_ci``) and the cost of one
  inference: ``channel_uses``, ``payload_bits``, ``device_flops``,
  ``server_flops`` and ``latency_s`` (device compute + channel uses / symbol
  rate + server compute, with :class:`airinfer.strategies.cost.Hardware`'s speeds);
* ``undecided``: the test images whose logits were not finite (NaN or +inf) at
  the reference link; they get no decision and count as wrong;
* ``privacy_psnr_db``: the privacy proxy, the PSNR with which an inverse
  network trained on what leaves the device (:meth:`Strategy.message`, before
  the channel: the most an eavesdropper could see) reconstructs unseen inputs
  (:mod:`airinfer.models.inversion`); ``blind_psnr_db`` is the floor, what guessing
  the mean image gives (the value of strategies that send nothing);
* ``offline_accuracy``: the accuracy with no link at all (the device alone),
  empty where the strategy cannot decide without its link (registered
  without ``offline``, :mod:`airinfer.strategies.registry`).

The edge ensembles count both of their rounds: ``edge_ensemble`` (every
device already sees the image) only the return over the air of its
neighbours' softmax outputs, and its privacy proxy attacks a neighbour's
softmax; ``edge_ensemble_direct`` first multicasts the image over the digital
link (its channel uses, payload bits and latency add up, and the proxy
attacks the multicast pixels, which any neighbour or eavesdropper receives);
``edge_ensemble_encoder`` multicasts a shared encoder's features instead (the
proxy attacks those). ``hybrid`` adds a server's uplink to its ensemble: both
links' channel uses and bits, the slower branch's latency, and a proxy that
sees both messages.

Besides ``results.csv`` the run writes ``table1.md``, the same numbers as a
Markdown table.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import strategies_snr, strategy_batches
from airinfer.experiments.config import ConfigError
from airinfer.experiments.plotting import channel_name, display_name, save_figure, style
from airinfer.experiments.registry import Experiment, register
from airinfer.experiments.stats import wilson_interval
from airinfer.models.inversion import InversionConfig, blind_psnr, to_unit_range
from airinfer.models.inversion import privacy_psnr as inversion_psnr
from airinfer.strategies import registry as strategy_registry
from airinfer.strategies.base import Link


@dataclasses.dataclass(frozen=True)
class Table1Config(strategies_snr.StrategiesSnrConfig):
    """Configuration of ``table1``: that of ``strategies_snr`` plus the reference link.

    Attributes:
        snr_db: the reference Es/N0 per complex symbol in dB (one value).
        channel: the reference channel, ``awgn`` or ``rayleigh``.
        connectivity: probability that a neighbour joins the edge ensemble
            (``server_connectivity``, inherited, is that of the hybrid's server).
        attack_train: images the attacker trains its inverse network on (the
            first ones of the training split; 0 = all).
        attack_epochs: most epochs of the inverse network.
    """

    snr_db: tuple[float, ...] = (10.0,)
    channel: str = "rayleigh"
    connectivity: float = 1.0
    attack_train: int = 10000
    attack_epochs: int = 30

    def __post_init__(self):
        super().__post_init__()
        if len(self.snr_db) != 1:
            raise ConfigError(f"snr_db: {self.snr_db} must hold one reference SNR")
        if self.channel not in strategies_snr.CHANNELS:
            raise ConfigError(
                f"channel: unknown {self.channel!r}; allowed: {', '.join(strategies_snr.CHANNELS)}"
            )
        if not 0.0 <= self.connectivity <= 1.0:
            raise ConfigError(f"connectivity: {self.connectivity} is not in [0, 1]")
        if self.attack_train < 0 or self.attack_epochs < 1:
            raise ConfigError(
                f"attack_train: {self.attack_train} must be >= 0 and attack_epochs: "
                f"{self.attack_epochs} >= 1"
            )


QUICK = strategies_snr.QUICK | {"snr_db": (10.0,), "attack_train": 0, "attack_epochs": 15}


def points(config):
    """One point per strategy."""
    return [{"strategy": name} for name in config.strategies]


@functools.cache
def attack_data(config):
    """The attacker's images: (training, test, both again in [0, 1])."""
    _, _, dataset, test_images, _ = strategies_snr.setup(config)
    train_images = dataset.train_images[: config.attack_train or None]
    return (
        train_images,
        test_images,
        to_unit_range(train_images, dataset),
        to_unit_range(test_images, dataset),
    )


def _messages(strategy, images, snr_db, batch_size):
    """``strategy.message`` over ``images`` in batches, or None when nothing is sent."""
    parts = [
        strategy.message(images[start : start + batch_size], snr_db)
        for start in range(0, len(images), batch_size)
    ]
    return None if parts[0] is None else np.concatenate([np.asarray(p) for p in parts])


@functools.cache
def blind_floor(config):
    """The PSNR (dB) of an attacker who guesses the mean training image."""
    _, _, unit_train, unit_test = attack_data(config)
    return blind_psnr(unit_train, unit_test)


def privacy_psnr(key, config, strategy):
    """Reconstruction PSNR (dB) of the inputs from ``strategy``'s messages."""
    train_images, test_images, unit_train, unit_test = attack_data(config)
    snr_db = config.snr_db[0]
    sent_train = _messages(strategy, train_images, snr_db, config.batch_size)
    if sent_train is None:
        return blind_floor(config)
    sent_test = _messages(strategy, test_images, snr_db, config.batch_size)
    inversion = InversionConfig(epochs=config.attack_epochs)
    return inversion_psnr(key, sent_train, unit_train, sent_test, unit_test, inversion)


def run_point(key, config, point):
    """One row of the table: accuracy, undecided images, cost, privacy proxy and the
    offline accuracy."""
    _, _, _, images, labels = strategies_snr.setup(config)
    name = point["strategy"]
    strategy = strategies_snr.strategy(config, name, config.channel)
    key_link, key_attack, key_offline = jax.random.split(key, 3)

    def accuracy(connectivity, server_connectivity):
        link = Link(
            snr_db=jnp.float32(config.snr_db[0]), connectivity=jnp.float32(connectivity),
            channel=config.channel, backend=config.backend,
            server_connectivity=jnp.float32(server_connectivity),
        )  # fmt: skip
        return strategy_batches.evaluate_on_devices(
            strategy, key_link, images, labels, link, config, return_undecided=True
        )

    correct, cost, undecided = accuracy(config.connectivity, config.server_connectivity)
    low, high = wilson_interval(correct, len(labels))
    offline = None
    # decides on the device with no link (the edge ensembles average over no
    # neighbour, the hybrid has no server either)
    if strategy_registry.entry(name).offline:
        offline = accuracy(0.0, 0.0)[0] / len(labels)
    return {
        "accuracy": correct / len(labels),
        "accuracy_ci": (high - low) / 2,
        "undecided": undecided,
        **cost,
        "privacy_psnr_db": privacy_psnr(key_attack, config, strategy),
        "blind_psnr_db": blind_floor(config),
        "offline_accuracy": offline,
    }


COLUMNS = (
    ("strategy", "strategy", "{}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("channel_uses", "channel uses", "{:,.0f}"),
    ("payload_bits", "payload bits", "{:,.0f}"),
    ("device_flops", "device MFLOP", "{:.3g}"),
    ("server_flops", "server MFLOP", "{:.3g}"),
    ("latency_s", "latency [ms]", "{:.3g}"),
    ("privacy_psnr_db", "inversion PSNR [dB]", "{:.1f}"),
    ("offline_accuracy", "with no link", "{}"),
)
SCALE = {"device_flops": 1e-6, "server_flops": 1e-6, "latency_s": 1e3}


def markdown(rows, config):
    """The rows as a Markdown table, with the reference link in a caption line."""
    lines = [
        f"{config.dataset}, {config.channel} at {config.snr_db[0]:g} dB, connectivity "
        f"{config.connectivity:g}, server connectivity {config.server_connectivity:g}; "
        f"blind inversion floor {rows[0]['blind_psnr_db']:.1f} dB.",
        "",
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        cells = []
        for column, _, fmt in COLUMNS:
            value = row[column]
            if column == "offline_accuracy":
                cells.append("no" if value is None else f"yes ({value:.3f})")
            else:
                cells.append(fmt.format(value * SCALE.get(column, 1) if column in SCALE else value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_file(config, rows):
    """``table1.md``: :func:`markdown` of the results."""
    return {"table1.md": markdown(rows, config).encode()}


def plot(rows, config, path):
    """Four bar charts side by side: accuracy, channel uses, latency and inversion PSNR."""
    names = [r["strategy"] for r in rows]
    panels = (
        ("accuracy", "accuracy", False),
        ("channel_uses", "channel uses / inference", True),
        ("latency_s", "latency [ms]", False),
        ("privacy_psnr_db", "inversion PSNR [dB]", False),
    )
    figure = Figure(figsize=(14, 0.35 * len(names) + 2.0), layout="constrained")
    axes = figure.subplots(1, len(panels), sharey=True)
    colors = [style(name, index)["color"] for index, name in enumerate(names)]
    y = np.arange(len(names))
    for ax, (column, title, log) in zip(axes, panels, strict=True):
        values = np.asarray([r[column] for r in rows], float) * SCALE.get(column, 1)
        if log:
            # a log axis cannot show 0 (strategies that send nothing): draw a sliver
            positive = values[values > 0]
            values = np.maximum(values, positive.min() / 4 if positive.size else 1.0)
        ax.barh(y, values, color=colors)
        if log:
            ax.set_xscale("log")
        if column == "privacy_psnr_db":
            ax.axvline(rows[0]["blind_psnr_db"], color="black", linestyle=":",
                       label="blind guess (PSNR floor)")  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [display_name(name) for name in names], fontsize=8)
    axes[0].invert_yaxis()
    figure.suptitle(
        f"{config.dataset}, {channel_name(config.channel)} at {config.snr_db[0]:g} dB, "
        f"connectivity {config.connectivity:g}",
        fontsize=10,
    )
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="table1",
        summary=(
            "the survey's Table I measured: accuracy, channel uses, latency, inversion PSNR, "
            "offline"
        ),
        config=Table1Config,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
        artifacts=table_file,
    )
)
