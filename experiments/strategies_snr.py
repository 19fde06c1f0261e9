"""Collaboration strategies vs SNR on one physical layer: the digital cliff and analog grace.

Every strategy named in ``strategies`` (built by :mod:`airinfer.strategies.registry`,
where users register their own) classifies the same test images at every
Es/N0 of the sweep, over AWGN and Rayleigh fading. The built-in ones:

* ``local``: the compact device model alone (no link; flat in SNR);
* ``cloud_digital``: 8-bit pixels over 5G LDPC + QPSK to the full model;
  ``cloud_jpeg``: the same link carrying a JPEG stream (optional);
* ``split_digital_b{2,4,8}``: the full model cut at ``split_point``, features
  quantised to b bits and sent over the same digital link;
* ``split_analog``: the same cut, features mapped by a trained deep-JSCC
  encoder to as many complex channel uses as ``split_digital_b2`` needs
  (``analog_matched_bits``), trained through the channel it is tested on;
* ``partition_layer``: the full model's stages along a chain of devices, each
  hop a digital link; ``partition_horizontal``: the units of one stage split
  across devices, each slice over its own digital link;
* ``edge_ensemble``: ``ensemble_devices`` compact members averaging their
  softmax outputs over the air (truncated channel inversion), every device
  seeing the same image (``shared``);
* ``edge_ensemble_direct``: the same, after device 0 multicast its image
  (``direct_source``: 8-bit pixels or a codec stream) over the digital link,
  each neighbour inferring on its own decoded copy (silent when its CRC fails);
* ``edge_ensemble_encoder``: device 0's member front at
  ``encoder_split_point`` (with a learned bottleneck of ``encoder_bottleneck``
  channels) is a shared encoder whose features it multicasts
  (``encoder_link``: ``encoder_bits`` bits per value over the digital link, or
  analog symbols); each device runs its own head, trained on the encoder's
  features (``head_diversity``);
* ``hybrid``: the ``hybrid_ensemble`` fused with the ``hybrid_server``'s answer
  (weight ``hybrid_trust`` on the server's softmax) where the server is
  reachable (probability ``server_connectivity``) and its uplink decodes.

Every digital link runs ``modulation`` at LDPC rate ``code_rate`` (QPSK 1/2),
or with ``mcs`` a 5G NR MCS of 38.214 table 2: a fixed index, or
``adaptive``: at each point every digital link of the strategy runs the
highest MCS whose message error rate at that (channel, SNR) stays within 0.1
(:func:`airinfer.strategies.adaptation.adapt_mcs`), or the lowest MCS where
none does (the ``mcs_fallback`` column says so). The ``mcs`` column is the
index used (several links at different indices: ``a/b``, in the order of
:func:`~airinfer.strategies.adaptation.digital_links`), empty for a strategy
without a digital link or without an MCS. ``split_analog`` keeps the channel
uses of the QPSK 1/2 split it is matched to (it is trained once per channel).

The full model (``server_width``) serves cloud, split and partitioning; the
compact members (``ensemble_width``) serve the edge ensembles, and member 0 is
the local device (and the shared encoder). Both come from the model cache
shared with the ``ota_*`` experiments. The edge ensembles' costs count both
rounds (the multicast, then the return over the air). ``snr_db`` is Es/N0
per complex symbol of every link (average Es/N0 under fading). Accuracy is
measured on the first ``num_test`` test images with a 95 % Wilson interval;
the cost columns are per inference. ``undecided`` counts the test images
whose logits were not finite (NaN or +inf): they get no decision and count
as wrong (:func:`airinfer.ota.encoding.decide`).
"""

import dataclasses
import functools
import math
from typing import Literal, NamedTuple

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from airinfer.experiments import progress
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, trained_ensemble
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
from airinfer.experiments.strategy_batches import evaluate_on_devices
from airinfer.models.datasets import Dataset
from airinfer.models.ensemble import Ensemble
from airinfer.models.zoo import SplitClassifier
from airinfer.phy.digital_payload import LinkSettings
from airinfer.strategies import registry as strategy_registry
from airinfer.strategies.adaptation import ADAPTIVE_CHANNELS, adapt_mcs, digital_links
from airinfer.strategies.base import Link

# The curves drawn by default: the built-in strategies, in this order (a
# point's key follows its index, so the order is part of the results).
STRATEGIES = strategy_registry.BUILT_IN
CHANNELS = ("awgn", "rayleigh", "tdl-a")
#: The columns of the digital links' MCS: the index used, and whether it is a fallback.
MCS_COLUMNS = ("mcs", "mcs_fallback")


@dataclasses.dataclass(frozen=True)
class StrategiesSnrConfig:
    """Configuration of ``strategies_snr``.

    Attributes:
        seed: root of every point's key, of the data split and of the training.
        dataset: ``fashion_mnist``, ``digits`` or ``cifar10``.
        epochs: training epochs of every classifier trained with the ``short`` recipe.
        server_width: width of the full CNN (cloud, split, partitioning).
        server_recipe: how the full CNN is trained: ``converged`` (augmentation,
            early stopping: :func:`airinfer.models.train.converged_recipe`) or
            ``short`` (``epochs`` epochs).
        ensemble_recipe: how the compact members are trained (the same choices).
        ensemble_width, ensemble_members: the compact CNNs (bagging); member 0
            is the local device.
        ensemble_devices: K devices of the edge ensemble (the first K members).
        strategies: which curves to draw: names of
            :func:`airinfer.strategies.registry.names` (see the module docstring).
        channels: ``awgn``, ``rayleigh`` and/or ``tdl-a`` (3GPP TDL-A over OFDM).
        snr_db: Es/N0 per complex symbol in dB.
        split_point: where split strategies cut the full model.
        clip_percentile: the feature quantiser's clip, a percentile of the
            training features' magnitudes.
        analog_matched_bits: ``split_analog`` gets the channel uses of
            ``split_digital_b{analog_matched_bits}``.
        jscc_epochs, jscc_snr_range_db: training of the analog encoder/decoder.
        partition_cuts: split points of the layer-wise chain (D - 1 cuts).
        horizontal_layer, horizontal_devices: the stage whose units are split
            across devices.
        hop_bits: quantiser bits of each partitioning hop.
        jpeg_quality: quality of ``cloud_jpeg``.
        modulation, code_rate, block_bits: the digital links (5G LDPC + QAM).
        mcs: the digital links' 5G NR MCS (38.214 table 2) instead of
            ``modulation`` and ``code_rate``: None (``none``: no MCS), an index
            (2-27), or ``adaptive``: chosen per point for its channel and SNR
            (``awgn`` and ``rayleigh`` only; see the module docstring).
        num_test: test images (the first ones; 0 = all).
        batch_size: images per jitted call.
        backend: ``sionna`` or ``jax``: where every link runs, the analog ones' channels
            and the digital links (:class:`~airinfer.phy.digital.LinkConfig` ``backend``).
            ``jax`` imports no TensorFlow, ``mcs`` included (the MCS tables are
            data; ``adaptive`` measures the BLER curves that do not ship, blocks
            under 512 bits, on the JAX link).
        multicast: how the edge ensembles' digital first round is carried:
            ``abstraction`` (each copy's CRC verdict drawn from the link's
            measured BLER curve; AWGN and Rayleigh) or ``simulate`` (every copy
            through the link's decoder on ``backend``; always so over ``tdl-a``).
        direct_source: what ``edge_ensemble_direct`` multicasts: ``pixels`` or
            a ``jpeg``/``webp`` stream at ``jpeg_quality``.
        encoder_split_point: where ``edge_ensemble_encoder``'s shared encoder
            cuts member 0, or ``input`` (the identity encoder; analog only).
        encoder_bottleneck: channels of the encoder's learned bottleneck (0: none).
        encoder_bottleneck_steps: training steps of that bottleneck.
        encoder_link: ``digital`` (``encoder_bits`` bits per value, LDPC + QAM)
            or ``analog`` (uncoded unit-energy symbols).
        encoder_bits: bits per multicast feature value (digital).
        head_diversity: what makes the heads differ: ``init`` or ``bagging``.
        hybrid_ensemble: the hybrid's ensemble: ``edge_ensemble``,
            ``edge_ensemble_direct`` or ``edge_ensemble_encoder``.
        hybrid_server: the hybrid's server: ``cloud_digital``, ``cloud_jpeg`` or
            ``split_digital_b{2,4,8}``.
        hybrid_trust: weight in [0, 1] of the server's softmax in the hybrid's fusion.
        server_connectivity: probability that the hybrid's server is reachable.
        devices: devices sharing the test batches of the strategies whose
            draws are all JAX (``backend="jax"``, a flat channel, no digital
            link: ``local``, ``split_analog``, ``edge_ensemble``); None: all.
            The others run through Sionna's TensorFlow bridge on one device,
            batch after batch (as do ``hybrid_snr``'s and ``inversion_snr``'s
            own loops).
    """

    seed: int = 0
    dataset: Literal["digits", "fashion_mnist", "cifar10"] = "fashion_mnist"
    epochs: int = 2
    server_width: float = 1.0
    server_recipe: Literal["short", "converged"] = "converged"
    ensemble_recipe: Literal["short", "converged"] = "short"
    ensemble_width: float = 0.5
    ensemble_members: int = 20
    ensemble_devices: int = 16
    strategies: tuple[str, ...] = STRATEGIES
    channels: tuple[Literal["awgn", "rayleigh", "tdl-a"], ...] = ("awgn", "rayleigh")
    # 2 dB steps where the digital links fall off their cliff, coarser above
    snr_db: tuple[float, ...] = (*(float(s) for s in range(-10, 11, 2)), 15.0, 20.0, 30.0)
    split_point: str = "hidden"
    clip_percentile: float = 99.9
    analog_matched_bits: int = 2
    jscc_epochs: int = 10
    jscc_snr_range_db: tuple[float, float] = (-10.0, 20.0)
    partition_cuts: tuple[str, ...] = ("conv2", "hidden")
    horizontal_layer: str = "hidden"
    horizontal_devices: int = 4
    hop_bits: int = 8
    jpeg_quality: int = 75
    modulation: Literal["qpsk", "16qam", "64qam"] = "qpsk"
    code_rate: float = 0.5
    block_bits: int = 512
    mcs: int | Literal["adaptive"] | None = None
    num_test: int = 1000
    batch_size: int = 250
    backend: Literal["sionna", "jax"] = "sionna"
    multicast: Literal["abstraction", "simulate"] = "abstraction"
    direct_source: Literal["pixels", "jpeg", "webp"] = "pixels"
    encoder_split_point: str = "conv2"
    encoder_bottleneck: int = 8
    encoder_bottleneck_steps: int = 500
    encoder_link: Literal["digital", "analog"] = "digital"
    encoder_bits: int = 4
    head_diversity: Literal["init", "bagging"] = "bagging"
    hybrid_ensemble: str = "edge_ensemble"
    hybrid_server: str = "cloud_digital"
    hybrid_trust: float = 0.5
    server_connectivity: float = 1.0
    devices: int | None = None

    def __post_init__(self):
        if not 1 <= self.ensemble_devices <= self.ensemble_members:
            raise ConfigError(
                f"ensemble_devices: {self.ensemble_devices} must lie in "
                f"[1, ensemble_members={self.ensemble_members}]"
            )
        if any(not math.isfinite(s) for s in self.snr_db):
            raise ConfigError(f"snr_db: {self.snr_db} has a non-finite value")
        for name in (
            "epochs", "jscc_epochs", "batch_size", "horizontal_devices", "encoder_bottleneck_steps",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} is not >= 1")
        if self.num_test < 0:
            raise ConfigError(f"num_test: {self.num_test} is not >= 0")
        if self.analog_matched_bits not in (2, 4, 8):
            raise ConfigError(f"analog_matched_bits: {self.analog_matched_bits} is not 2, 4 or 8")
        known = strategy_registry.names()
        for name in self.strategies:
            if name not in known:
                raise ConfigError(f"strategies: unknown {name!r}; allowed: {', '.join(known)}")
        self._check_edge_fields()
        self._check_mcs()

    def _check_mcs(self):
        """``mcs`` against the table, the fixed link fields and the channels."""
        if self.mcs is None:
            return
        if self.mcs == "adaptive":
            if not self.adapts_mcs():
                raise ConfigError(
                    f"mcs: 'adaptive' is chosen per point by strategies_snr; "
                    f"{type(self).__name__} runs fixed links (give an index or none)"
                )
            others = [c for c in self.channels if c not in ADAPTIVE_CHANNELS]
            if others:
                raise ConfigError(
                    f"mcs: 'adaptive' needs BLER curves, which exist for "
                    f"{', '.join(ADAPTIVE_CHANNELS)} only; channels has {', '.join(others)}"
                )
        for name, default in (("modulation", "qpsk"), ("code_rate", 0.5)):
            if getattr(self, name) != default:
                raise ConfigError(
                    f"{name}: {getattr(self, name)!r} has no effect with mcs={self.mcs!r} "
                    f"(the MCS sets modulation and code rate); leave it at {default!r}"
                )
        if self.mcs != "adaptive":
            try:
                LinkSettings(mcs=self.mcs)
            except ValueError as err:
                raise ConfigError(str(err)) from None

    @classmethod
    def adapts_mcs(cls) -> bool:
        """Whether the experiment of this config adapts the MCS per point (``mcs``
        ``adaptive``): strategies_snr does; configs derived from it that do too
        override this."""
        return cls is StrategiesSnrConfig

    def _check_edge_fields(self):
        """The fields of the edge ensembles' first round and of the hybrid."""
        if not 1 <= self.encoder_bits <= 16:
            raise ConfigError(f"encoder_bits: {self.encoder_bits} is not in [1, 16]")
        if self.encoder_bottleneck < 0:
            raise ConfigError(f"encoder_bottleneck: {self.encoder_bottleneck} is not >= 0")
        if self.encoder_split_point == strategy_registry.INPUT_SPLIT and (
            self.encoder_link == "digital" or self.encoder_bottleneck
        ):
            raise ConfigError(
                f"encoder_split_point: {strategy_registry.INPUT_SPLIT!r} (the identity encoder) "
                "takes encoder_link 'analog' and no encoder_bottleneck; the image over the "
                "digital link is edge_ensemble_direct"
            )
        for name, allowed in (
            ("hybrid_ensemble", strategy_registry.HYBRID_ENSEMBLES),
            ("hybrid_server", strategy_registry.HYBRID_SERVERS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name}: unknown {getattr(self, name)!r}; allowed: {', '.join(allowed)}"
                )
        for name in ("hybrid_trust", "server_connectivity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: {getattr(self, name)} is not in [0, 1]")

    def spec(self, width, members, diversity, recipe="short"):
        return EnsembleSpec(
            dataset=self.dataset, model="cnn", width=width, members=members,
            diversity=diversity, epochs=self.epochs, seed=self.seed, recipe=recipe,
        )  # fmt: skip


QUICK = {
    "dataset": "digits",
    "epochs": 10,
    "snr_db": (-10.0, -2.0, 2.0, 6.0, 20.0),
    "jscc_epochs": 10,
    "num_test": 200,
    "batch_size": 200,
}


def points(config):
    """One point per (channel, strategy, snr_db)."""
    return [
        {"strategy": strategy, "channel": channel, "snr_db": snr}
        for channel in config.channels
        for strategy in config.strategies
        for snr in config.snr_db
    ]


class Setup(NamedTuple):
    """The models and data of a config.

    Attributes:
        server: the full CNN (``server_width``): cloud, split and partitioning.
        ensemble: the compact members (``ensemble_width``); member 0 is the local device.
        dataset: the data set, split with ``seed``.
        images, labels: the test images and labels a point classifies (``num_test``).
    """

    server: SplitClassifier
    ensemble: Ensemble
    dataset: Dataset
    images: np.ndarray
    labels: np.ndarray


@functools.cache
def setup(config) -> Setup:
    """Train (or load from the model cache) the models of ``config``."""
    server, _ = trained_ensemble(config.spec(config.server_width, 1, "init", config.server_recipe))
    ensemble, dataset = trained_ensemble(
        config.spec(
            config.ensemble_width, config.ensemble_members, "bagging", config.ensemble_recipe
        )
    )
    n = config.num_test or len(dataset.test_labels)
    return Setup(
        server.member(0), ensemble, dataset, dataset.test_images[:n], dataset.test_labels[:n]
    )


@functools.cache
def _context(config) -> strategy_registry.BuildContext:
    server, ensemble, dataset, _, _ = setup(config)
    return strategy_registry.BuildContext(
        server, ensemble, dataset, options=config, progress=progress.training
    )


def strategy(config, name: str, channel: str):
    """The strategy behind a curve, built once per config.

    A strategy trained through its channel (the analog split) is built once per
    channel; the others serve every channel (one build, one compiled program
    per channel).
    """
    per_channel = strategy_registry.entry(name).per_channel
    return _built(config, name, channel if per_channel else None)


@functools.cache
def _built(config, name: str, channel: str | None):
    return strategy_registry.build(name, _context(config), channel)


# Adapted strategies by (config, name, channel, MCS indices): points that choose the
# same MCS share one strategy object, hence one compiled program.
_ADAPTED: dict = {}


def adapted(config, name: str, channel: str, snr_db: float):
    """``(strategy, fallback)``: the strategy of a curve with its digital links at the
    MCS :func:`~airinfer.strategies.adaptation.adapt_mcs` chooses at ``snr_db`` (Es/N0
    per complex symbol in dB) on ``channel``, and whether any link fell back to the
    lowest MCS."""
    base = strategy(config, name, channel)
    shape = setup(config).dataset.image_shape
    adaptation = adapt_mcs(base, channel, snr_db, shape, backend=config.backend)
    key = (config, name, channel, adaptation.indices)
    return _ADAPTED.setdefault(key, adaptation.strategy), adaptation.fallback


def mcs_cell(built, image_shape):
    """The ``mcs`` column of a strategy: the MCS index of its digital links (one
    number when they agree, else ``a/b/…`` in link order), or None without an MCS."""
    indices = [link.settings.mcs for link in digital_links(built, image_shape)]
    if not indices or all(index is None for index in indices):
        return None
    distinct = set(indices)
    return indices[0] if len(distinct) == 1 else "/".join(map(str, indices))


def clear_caches() -> None:
    """Forget the models and strategies built so far (say, after changing the model cache)."""
    for cached in (setup, _context, _built):
        cached.cache_clear()
    _ADAPTED.clear()


def run_point(key, config, point):
    """Accuracy (95 % Wilson half-width), undecided images, cost and MCS of one strategy
    at one SNR."""
    _, _, _, images, labels = setup(config)
    name, channel = point["strategy"], point["channel"]
    built, fallback = strategy(config, name, channel), False
    if config.mcs == "adaptive":
        built, fallback = adapted(config, name, channel, point["snr_db"])
    mcs = None if config.mcs is None else mcs_cell(built, images.shape[1:])
    link = Link(
        snr_db=jnp.float32(point["snr_db"]), channel=point["channel"], backend=config.backend,
        server_connectivity=jnp.float32(config.server_connectivity),
    )  # fmt: skip
    correct, cost, undecided = evaluate_on_devices(
        built, key, images, labels, link, config, return_undecided=True
    )
    low, high = wilson_interval(correct, len(labels))
    accuracy = {
        "accuracy": correct / len(labels), "accuracy_ci": (high - low) / 2, "undecided": undecided,
    }  # fmt: skip
    return {**accuracy, **cost, **dict(zip(MCS_COLUMNS, (mcs, fallback), strict=True))}


def plot(rows, config, path):
    """One panel per channel: accuracy vs Es/N0, one line per strategy with 95 % error
    bars; the legend gives each strategy's channel uses per inference."""
    figure = Figure(figsize=(5.0 * len(config.channels), 4.8), layout="constrained")
    axes = figure.subplots(1, len(config.channels), squeeze=False, sharey=True)[0]
    shifts = dodges(len(config.strategies), config.snr_db)
    for ax, channel in zip(axes, config.channels, strict=True):
        for index, name in enumerate(config.strategies):
            curve = sorted(
                (r["snr_db"], r["accuracy"], r["accuracy_ci"], r["channel_uses"])
                for r in rows
                if r["channel"] == channel and r["strategy"] == name
            )
            if not curve:
                continue
            x, y, ci, uses = (np.asarray(c) for c in zip(*curve, strict=True))
            draw_curve(ax, x, y, ci, label=f"{display_name(name)} ({uses[0]:.0f} uses)",
                       dodge=shifts[index], **style(name, index))  # fmt: skip
        ax.set_title(channel_name(channel), fontsize=10)
        ax.set_xlabel("Es/N0 per complex symbol [dB]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    figure.suptitle(
        f"{config.dataset}: accuracy per strategy (channel uses per inference); "
        "bars: 95 % intervals",
        fontsize=9,
    )
    save_figure(figure, path)


EXPERIMENT = register(
    Experiment(
        name="strategies_snr",
        summary=(
            "accuracy vs SNR of every strategy: local, cloud, split digital/analog, partitioning, "
            "edge ensembles (shared, direct, encoder), hybrid"
        ),
        config=StrategiesSnrConfig,
        quick=QUICK,
        points=points,
        run_point=run_point,
        plot=plot,
    )
)
