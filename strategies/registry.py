"""Strategies built by name: one registry that experiments and users share.

A builder turns a :class:`BuildContext` (the trained models, the data and the
experiment's settings) into a strategy. Register one under a name and every
experiment that takes a list of strategy names (``strategies_snr``,
``table1``: ``--set strategies=local,my_split``) can draw it::

    from airinfer.strategies import registry
    from airinfer.strategies.split_digital import SplitDigitalStrategy

    @registry.register("split_digital_b1")
    def one_bit_split(context, channel):
        options = context.options  # the experiment's config
        return SplitDigitalStrategy(
            context.server, options.split_point, bits=1, clip=3.0, signed=False
        )

    strategy = registry.build("split_digital_b1", context)

A package can offer builders to the command line through the entry-point
group ``airinfer.strategies``: the entry point's name is the strategy's name,
its value the builder (``mypackage.strategies:one_bit_split``) or a module
that registers it; it is imported only when that name is asked for.

Builders of the built-in strategies read these fields of ``context.options``:
``jpeg_quality``, ``modulation``, ``code_rate``, ``block_bits`` and, where the
options have it, ``mcs`` (the digital links: an int runs every digital link at
that index of 38.214 MCS table 2; None or ``"adaptive"`` builds them with
``modulation`` and ``code_rate``, and an experiment adapting the MCS per point
calls :func:`airinfer.strategies.adaptation.adapt_mcs` on what was built),
``split_point``, ``clip_percentile``, ``analog_matched_bits`` (or, where the
options have it and it is not None, ``analog_symbols``: the analog split's
channel uses themselves), ``jscc_epochs``, ``jscc_snr_range_db``, ``seed``,
``backend`` (the splits), ``partition_cuts``, ``horizontal_layer``,
``horizontal_devices``, ``hop_bits`` (partitioning), ``ensemble_devices`` (the
edge ensembles), ``multicast`` (how their digital
first round is carried: ``simulate`` or ``abstraction``),
``direct_source`` (``edge_ensemble_direct``'s image link), ``encoder_split_point``,
``encoder_bottleneck``, ``encoder_bottleneck_steps``, ``encoder_link``,
``encoder_bits``, ``head_diversity``, ``epochs`` (``edge_ensemble_encoder``'s
shared encoder and heads), ``hybrid_ensemble``, ``hybrid_server`` and
``hybrid_trust`` (``hybrid``).
"""

import contextlib
import dataclasses
import functools
import importlib.metadata
import math
import types
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax

from airinfer.models.datasets import Dataset
from airinfer.models.ensemble import Ensemble
from airinfer.models.recipe import TrainConfig
from airinfer.models.zoo import SplitClassifier, feature_shape
from airinfer.phy.digital_payload import channel_uses_per_sample, digital_link_config
from airinfer.phy.source_coding import PixelFormat
from airinfer.strategies.base import Strategy
from airinfer.strategies.cloud import CloudStrategy, ImageLink
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.feature_coding import calibrate_clip, train_bottleneck
from airinfer.strategies.heads import cached_train_heads
from airinfer.strategies.hybrid import HybridStrategy
from airinfer.strategies.jscc import JSCCConfig, JSCCSplitStrategy, cached_train_jscc
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.observation import DirectObservation, SharedEncoder
from airinfer.strategies.partition import HorizontalPartitionStrategy, LayerPartitionStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy

__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "BuildContext",
    "Entry",
    "build",
    "entry",
    "matched_symbols",
    "names",
    "no_progress",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "airinfer.strategies"
# Training images that set the partitioning hops' quantiser ranges.
CALIBRATION_IMAGES = 2000


@contextlib.contextmanager
def no_progress(description: str):
    """The default ``progress``: training steps are not shown."""
    yield lambda steps: None


@dataclasses.dataclass(frozen=True, eq=False)
class BuildContext:
    """What builders build strategies from.

    Attributes:
        server: the full model (cloud, split and partitioning strategies).
        ensemble: the compact members (:class:`airinfer.models.ensemble.Ensemble`);
            member 0 is the local device.
        dataset: the data the models were trained on.
        options: the experiment's settings: any object whose attributes the
            builders read (the built-in ones: see the module docstring).
        progress: ``progress(description)``, a context manager giving an
            ``on_step(steps)`` callback, for builders that train something.
    """

    server: SplitClassifier
    ensemble: Ensemble
    dataset: Dataset
    options: Any
    progress: Callable = no_progress
    shared_values: dict = dataclasses.field(default_factory=dict, repr=False)

    def shared(self, key: Hashable, compute: Callable[[], Any]):
        """``compute()`` once per context: what several builders need (a calibration)."""
        if key not in self.shared_values:
            self.shared_values[key] = compute()
        return self.shared_values[key]


Builder = Callable[[BuildContext, "str | None"], Strategy]


class Entry(NamedTuple):
    """A registered builder.

    Attributes:
        build: ``build(context, channel) -> strategy``.
        per_channel: the strategy is trained through the channel it is tested
            on: it gets that channel and is built once per channel; others get
            ``None`` and one build serves every channel.
        offline: the strategy decides on the device when no link is up (a
            link of connectivity 0).
    """

    build: Builder
    per_channel: bool = False
    offline: bool = False


_ENTRIES: dict[str, Entry] = {}


def register(name: str, *, per_channel: bool = False, offline: bool = False):
    """Decorator: register ``builder(context, channel) -> strategy`` under ``name``.

    Raises:
        ValueError: ``name`` is taken by another builder.
    """

    def decorate(builder: Builder) -> Builder:
        held = _ENTRIES.get(name)
        if held is not None and held.build is not builder:
            raise ValueError(f"strategy {name!r} is already registered ({held.build.__qualname__})")
        _ENTRIES[name] = Entry(builder, per_channel, offline)
        return builder

    return decorate


def unregister(name: str) -> None:
    """Forget the builder of ``name`` (a notebook redefining it, a test cleaning up)."""
    _ENTRIES.pop(name, None)


def _entry_points() -> dict:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> tuple[str, ...]:
    """Every strategy name: registered ones in registration order, then entry points'."""
    return (*_ENTRIES, *(name for name in _entry_points() if name not in _ENTRIES))


def entry(name: str) -> Entry:
    """The registered builder of ``name``, importing its entry point if need be.

    Raises:
        ValueError: no strategy has that name (the message lists the known ones).
    """
    if name not in _ENTRIES:
        found = _entry_points().get(name)
        if found is None:
            raise ValueError(f"strategy: unknown {name!r}; allowed: {', '.join(names())}")
        loaded = found.load()
        if not isinstance(loaded, types.ModuleType) and name not in _ENTRIES:
            register(name)(loaded)
        if name not in _ENTRIES:
            raise ValueError(f"strategy: entry point {found.value!r} registers no {name!r}")
    return _ENTRIES[name]


def build(name: str, context: BuildContext, channel: str | None = None) -> Strategy:
    """The strategy ``name`` built from ``context``.

    ``channel`` is what a per-channel strategy (:attr:`Entry.per_channel`) is
    trained through; the others ignore it.
    """
    found = entry(name)
    return found.build(context, channel if found.per_channel else None)


# ------------------------------------------------------------------ built-in builders


def _mcs(options) -> dict:
    """``{"mcs": index}`` for a fixed MCS of the options, else nothing (no ``mcs``, None,
    or ``"adaptive"``, which is chosen per point after the build)."""
    mcs = getattr(options, "mcs", None)
    return {"mcs": mcs} if isinstance(mcs, int) and not isinstance(mcs, bool) else {}


def _digital(options) -> dict:
    """The digital link's settings: 5G LDPC + QAM, or a fixed MCS."""
    return {
        "modulation": options.modulation,
        "code_rate": options.code_rate,
        "block_bits": options.block_bits,
        **_mcs(options),
    }


def _clip(context: BuildContext) -> float:
    """The feature quantiser's clip, shared by the digital splits of one context."""
    options = context.options
    return context.shared(
        "clip",
        lambda: calibrate_clip(
            context.server,
            options.split_point,
            context.dataset.train_images,
            options.clip_percentile,
        ),
    )


def _hop(options) -> dict:
    """Each partitioning hop's settings; its quantiser spans the clip_percentile."""
    return {
        "bits": options.hop_bits,
        "quantile": options.clip_percentile / 100,
        "modulation": options.modulation,
        "code_rate": options.code_rate,
        "max_block_bits": options.block_bits,
        **_mcs(options),
    }


@register("local", offline=True)
def local(context, channel):
    """The compact device model alone (member 0)."""
    return LocalStrategy(context.ensemble.member(0))


def _cloud(source: str):
    def cloud(context, channel):
        """The full model behind a digital link carrying the image."""
        options = context.options
        return CloudStrategy(
            context.server,
            PixelFormat.for_dataset(context.dataset),
            source=source,
            quality=options.jpeg_quality,
            **_digital(options),
        )

    return cloud


register("cloud_digital")(_cloud("pixels"))
register("cloud_jpeg")(_cloud("jpeg"))


def _split_digital(bits: int):
    def split_digital(context, channel):
        """The full model cut at ``split_point``, features quantised to ``bits`` bits."""
        options = context.options
        return SplitDigitalStrategy(
            context.server,
            options.split_point,
            bits,
            _clip(context),
            signed=False,
            **_digital(options),
        )

    return split_digital


register("split_digital_b2")(_split_digital(2))
register("split_digital_b4")(_split_digital(4))
register("split_digital_b8")(_split_digital(8))


def matched_symbols(model, split_point, bits, image_shape, modulation, code_rate, block_bits):
    """Channel uses of the digital split sending ``bits`` bits per feature value.

    The analog split gets as many complex channel uses (its ``k``).
    """
    values = math.prod(feature_shape(model, split_point, image_shape))
    link = digital_link_config("awgn", modulation, code_rate, block_bits)
    return int(channel_uses_per_sample(values * bits, link))


@register("split_analog", per_channel=True)
def split_analog(context, channel):
    """Deep JSCC of the split features, trained through ``channel`` (model cache)."""
    options = context.options
    symbols = getattr(options, "analog_symbols", None) or matched_symbols(
        context.server,
        options.split_point,
        options.analog_matched_bits,
        context.dataset.image_shape,
        options.modulation,
        options.code_rate,
        options.block_bits,
    )
    jscc = JSCCConfig(
        split_point=options.split_point,
        symbols=symbols,
        channel=channel,
        snr_range_db=options.jscc_snr_range_db,
        epochs=options.jscc_epochs,
        seed=options.seed,
        backend=options.backend,
    )
    with context.progress(f"deep JSCC encoder ({channel})") as on_step:
        codec, classifier, _, _ = cached_train_jscc(
            context.server, context.dataset, options.seed, jscc, on_step=on_step
        )
    return JSCCSplitStrategy(classifier, codec, jscc)


@register("partition_layer")
def partition_layer(context, channel):
    """The full model's stages along a chain of devices, each hop a digital link."""
    options = context.options
    return LayerPartitionStrategy.calibrated(
        context.server,
        len(options.partition_cuts) + 1,
        context.dataset.train_images[:CALIBRATION_IMAGES],
        cuts=options.partition_cuts,
        **_hop(options),
    )


@register("partition_horizontal")
def partition_horizontal(context, channel):
    """The units of one stage split across devices, each slice over its own hop."""
    options = context.options
    return HorizontalPartitionStrategy.calibrated(
        context.server,
        options.horizontal_layer,
        options.horizontal_devices,
        context.dataset.train_images[:CALIBRATION_IMAGES],
        **_hop(options),
    )


def _devices(context: BuildContext) -> list:
    """The first ``ensemble_devices`` members: device 0 and its neighbours."""
    return [context.ensemble.member(k) for k in range(context.options.ensemble_devices)]


@register("edge_ensemble", offline=True)
def edge_ensemble(context, channel):
    """The first ``ensemble_devices`` members averaging their softmax outputs over the air,
    every device seeing the same image."""
    return EdgeEnsembleStrategy(_devices(context))


@register("edge_ensemble_direct", offline=True)
def edge_ensemble_direct(context, channel):
    """The edge ensemble after device 0 multicast its image over the digital link."""
    options = context.options
    image_link = ImageLink(
        PixelFormat.for_dataset(context.dataset),
        options.direct_source,
        options.jpeg_quality,
        **_digital(options),
    )
    observation = DirectObservation(image_link, mode=options.multicast)
    return EdgeEnsembleStrategy(_devices(context), observation=observation)


#: ``encoder_split_point`` naming the identity encoder (the image itself is sent).
INPUT_SPLIT = "input"


def _shared_encoder(context: BuildContext) -> SharedEncoder:
    """Member 0's front at ``encoder_split_point``, with a bottleneck of
    ``encoder_bottleneck`` channels (0: none) trained through its quantiser."""
    options = context.options
    member = context.ensemble.member(0)
    split_point = options.encoder_split_point
    analog = options.encoder_link == "analog"
    if split_point == INPUT_SPLIT:
        if not analog:
            raise ValueError(
                f"encoder_split_point: {INPUT_SPLIT!r} with encoder_link 'digital' sends the "
                "image over the digital link: that is edge_ensemble_direct"
            )
        return SharedEncoder(None, None, analog=True)
    bottleneck, clip = None, None
    if options.encoder_bottleneck:
        with context.progress(f"bottleneck at {split_point}") as on_step:
            bottleneck = train_bottleneck(
                jax.random.key(options.seed), member, split_point, context.dataset,
                bits=options.encoder_bits, channels=options.encoder_bottleneck,
                steps=options.encoder_bottleneck_steps,
            )  # fmt: skip
            on_step(options.encoder_bottleneck_steps)
    elif not analog:
        clip = calibrate_clip(
            member, split_point, context.dataset.train_images, options.clip_percentile
        )
    return SharedEncoder(
        member, split_point, bottleneck, analog, options.encoder_bits, clip,
        signed=bottleneck is not None, mode="simulate" if analog else options.multicast,
        **_digital(options),
    )  # fmt: skip


@register("edge_ensemble_encoder", offline=True)
def edge_ensemble_encoder(context, channel):
    """Device 0's shared encoder multicasts features; each device runs its own head."""
    options = context.options
    encoder = _shared_encoder(context)
    with context.progress("heads on the shared features") as on_step:
        heads = cached_train_heads(
            encoder, context.dataset, options.seed, context.ensemble.groups[0].config,
            options.ensemble_devices, TrainConfig(epochs=options.epochs, seed=options.seed),
            options.head_diversity, on_step=on_step,
        )  # fmt: skip
    return EdgeEnsembleStrategy(heads, observation=encoder)


#: What the hybrid's parents may be.
HYBRID_ENSEMBLES = ("edge_ensemble", "edge_ensemble_direct", "edge_ensemble_encoder")
HYBRID_SERVERS = ("cloud_digital", "cloud_jpeg", "split_digital_b2", "split_digital_b4",
                  "split_digital_b8")  # fmt: skip


@register("hybrid", offline=True)
def hybrid(context, channel):
    """The edge ensemble ``hybrid_ensemble`` fused with the server ``hybrid_server``."""
    options = context.options
    parents = []
    for field, name, allowed in (
        ("hybrid_ensemble", options.hybrid_ensemble, HYBRID_ENSEMBLES),
        ("hybrid_server", options.hybrid_server, HYBRID_SERVERS),
    ):
        if name not in allowed:
            raise ValueError(f"{field}: {name!r} is not one of {', '.join(allowed)}")
        parents.append(context.shared(("strategy", name), functools.partial(build, name, context)))
    return HybridStrategy(*parents, trust=options.hybrid_trust)


# The strategies of this module, in the order experiments draw them by default.
BUILT_IN: tuple[str, ...] = tuple(_ENTRIES)
