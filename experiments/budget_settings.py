"""How each strategy of ``strategies_budget`` spends a budget of channel uses.

A strategy *family* (a name of ``strategies_budget``'s ``strategies``) has a
small grid of knob :class:`Setting` s, ranked by the quality expected of them
*a priori* (never by accuracy measured on the test set). At a point (channel,
Es/N0, budget) :func:`choose` plans every setting without running it:

1. build it (:mod:`airinfer.strategies.registry`, with the setting's option
   overrides) and give every digital link the highest 5G NR MCS whose message
   error rate stays within ``target_bler`` at that SNR
   (:func:`airinfer.strategies.adaptation.adapt_mcs`, from the shipped BLER
   curves; the lowest MCS with ``mcs_fallback`` where none does);
2. count its channel uses per inference (:func:`planned_uses`);
3. keep the settings that fit the budget; among them prefer those whose links
   meet the target, and take the highest ranked.

Where no setting fits, the family falls back to what the device decides on its
own (``local``, member 0 alone) if it can decide without a link (the
registry's ``offline`` strategies), else to ``chance`` (the training set's most
frequent class). The grids, lowest rank first:

* ``local``, ``cloud_digital``: one setting (8-bit pixels; only the MCS adapts);
* ``cloud_jpeg``: ``jpeg_qualities`` ascending; a stream's length varies, so it
  is planned at the longest stream of ``calibration_images`` training images;
* ``split_digital``: ``split_digital_b{b}`` for ``b`` in ``split_bits``
  ascending (bits per feature value);
* ``split_analog``: a deep-JSCC link of ``k`` complex symbols for ``k`` in
  ``analog_symbol_counts`` ascending (one codec trained per ``k`` and channel,
  cached; only the chosen ones are trained);
* ``partition_layer``: ``hop_bit_depths`` ascending, and at equal bits the
  chains of ``partition_chains`` by their number of hops, ascending (more
  hops spread the model over more devices);
* ``partition_horizontal``: ``hop_bit_depths`` ascending;
* ``edge_ensemble``, ``edge_ensemble_direct``, ``edge_ensemble_encoder``,
  ``hybrid``: the return over the air repeated ``R`` times, ``R`` in
  ``ota_repetitions`` ascending (``R ceil(C / 2)`` channel uses on top of
  any first round or server uplink).

Settings with an LDPC block shorter than the shipped curves' 512 bits (a
256-bit partitioning hop) are not planned: their curves would first be
measured, minutes per MCS. :func:`setting_table` lists every setting and why
one is left out.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np

from airinfer import ota
from airinfer.experiments import strategies_snr
from airinfer.phy.digital_payload import channel_uses_per_sample
from airinfer.phy.link_adaptation import TABLE_BLOCK_BITS
from airinfer.phy.source_coding import ImageCodec, PixelFormat
from airinfer.strategies import registry as strategy_registry
from airinfer.strategies.adaptation import adapt_mcs, digital_links
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.hybrid import HybridStrategy
from airinfer.strategies.jscc import JSCCSplitStrategy
from airinfer.strategies.observation import SharedEncoder

__all__ = ["FAMILIES", "Setting", "Plan", "Choice", "settings", "strategy", "planned_uses",
           "plan", "choose", "runnable", "setting_table", "clear_caches"]  # fmt: skip

#: The strategy families, in the order ``strategies_budget`` draws them.
FAMILIES = (
    "local", "cloud_digital", "cloud_jpeg", "split_digital", "split_analog", "partition_layer",
    "partition_horizontal", "edge_ensemble", "edge_ensemble_direct", "edge_ensemble_encoder",
    "hybrid",
)  # fmt: skip
#: Families whose knob is the over-the-air round's repetitions.
REPEATED = ("edge_ensemble", "edge_ensemble_direct", "edge_ensemble_encoder", "hybrid")


def _text(value) -> str:
    return "+".join(value) if isinstance(value, tuple) else str(value)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One knob setting of a family.

    Attributes:
        family: the family's name.
        build: the registered strategy it builds.
        options: ``((field, value), ...)``, options the builder reads in place of
            the config's.
        repetitions: over-the-air repetitions given to the built edge ensemble
            (the hybrid's), or None.
    """

    family: str
    build: str
    options: tuple[tuple[str, object], ...] = ()
    repetitions: int | None = None

    @property
    def label(self) -> str:
        """What the ``setting`` column shows: ``field=value`` items, or the build's name."""
        parts = [self.build] if self.build != self.family else []
        parts += [f"{name}={_text(value)}" for name, value in self.options]
        if self.repetitions is not None:
            parts.append(f"repetitions={self.repetitions}")
        return ",".join(parts) or self.build

    @property
    def offline(self) -> bool:
        """Whether the family decides on the device when it gets no channel use."""
        return strategy_registry.entry(self.build).offline


def _chains(config) -> list[tuple[str, ...]]:
    return sorted((tuple(chain.split("+")) for chain in config.partition_chains), key=len)


def settings(config, family: str) -> tuple[Setting, ...]:
    """The knob settings of ``family`` under ``config``, lowest rank first (module docstring)."""
    if family in ("local", "cloud_digital"):
        return (Setting(family, family),)
    if family == "cloud_jpeg":
        return tuple(
            Setting(family, family, (("jpeg_quality", q),)) for q in sorted(config.jpeg_qualities)
        )
    if family == "split_digital":
        return tuple(Setting(family, f"split_digital_b{b}") for b in sorted(config.split_bits))
    if family == "split_analog":
        return tuple(
            Setting(family, family, (("analog_symbols", k),))
            for k in sorted(config.analog_symbol_counts)
        )
    bits = sorted(config.hop_bit_depths)
    if family == "partition_layer":
        return tuple(
            Setting(family, family, (("partition_cuts", chain), ("hop_bits", b)))
            for b in bits
            for chain in _chains(config)
        )
    if family == "partition_horizontal":
        return tuple(Setting(family, family, (("hop_bits", b),)) for b in bits)
    if family in REPEATED:
        return tuple(Setting(family, family, repetitions=r) for r in sorted(config.ota_repetitions))
    raise ValueError(f"strategies: unknown {family!r}; allowed: {', '.join(FAMILIES)}")


class _Options:
    """The config, with some of the fields the builders read replaced."""

    def __init__(self, config, overrides):
        self._config, self._overrides = config, dict(overrides)

    def __getattr__(self, name):
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._config, name)


@functools.cache
def _context(config, options):
    base = strategies_snr._context(config)
    return dataclasses.replace(base, options=_Options(config, options), shared_values={})


def strategy(config, setting: Setting, channel: str):
    """The strategy of ``setting`` (its links as built: QPSK 1/2), built once per config.

    A strategy trained through its channel (the analog split) is built per channel.
    """
    per_channel = strategy_registry.entry(setting.build).per_channel
    return _built(config, setting, channel if per_channel else None)


@functools.cache
def _built(config, setting: Setting, channel: str | None):
    if setting.options:
        built = strategy_registry.build(setting.build, _context(config, setting.options), channel)
    else:
        built = strategies_snr.strategy(config, setting.build, channel)
    if setting.repetitions is None:
        return built
    if isinstance(built, HybridStrategy):
        ensemble = dataclasses.replace(built.ensemble, repetitions=setting.repetitions)
        return dataclasses.replace(built, ensemble=ensemble)
    return dataclasses.replace(built, repetitions=setting.repetitions)


@functools.cache
def longest_stream_bits(config, quality: int) -> int:
    """Bits of the longest ``cloud_jpeg`` stream at ``quality`` over the first
    ``calibration_images`` training images (8-bit codes of the images)."""
    dataset = strategies_snr.setup(config).dataset
    codes = np.asarray(PixelFormat.for_dataset(dataset).to_codes(
        dataset.train_images[: config.calibration_images]
    ))  # fmt: skip
    codec = ImageCodec("jpeg", quality)
    return 8 * max(len(codec.encode_one(image)) for image in codes)


def _analog_uses(built, image_shape, num_classes) -> int:
    """Channel uses of what a strategy sends as analog symbols."""
    if isinstance(built, JSCCSplitStrategy):
        return built.config.symbols
    if isinstance(built, HybridStrategy):
        return _analog_uses(built.ensemble, image_shape, num_classes)
    if not isinstance(built, EdgeEnsembleStrategy) or built.num_members == 1:
        return 0
    uses = ota.channel_uses(
        ota.over_the_air_scheme(built.payload), num_classes, built.num_members - 1,
        repetitions=built.repetitions,
    )  # fmt: skip
    if isinstance(built.observation, SharedEncoder) and built.observation.analog:
        uses += int(built.observation.sent(image_shape)[0])
    return uses


def planned_uses(built, image_shape, num_classes: int, channel: str, stream_bits=None) -> float:
    """Complex channel uses of one inference of ``built``, counted without running it.

    Parameters:
        built: a strategy of the package (its digital links at any settings).
        image_shape: ``(H, W, C)`` of one image.
        num_classes: C, values of each device's over-the-air payload.
        channel: ``awgn`` or ``rayleigh``.
        stream_bits: a codec cloud's stream length in bits (its length varies).

    Output:
        Every digital link's blocks times their ``n / Qm``
        (:func:`~airinfer.strategies.adaptation.digital_links`), plus the analog
        symbols: a JSCC link's ``k``, an edge ensemble's ``R ceil(C / 2)``.
    """
    if isinstance(built, CloudStrategy) and built.source != "pixels":
        return float(channel_uses_per_sample(stream_bits, built.link_config(channel)))
    uses = sum(
        link.num_blocks * link.settings.link_config(channel, link.block_bits).num_symbols
        for link in digital_links(built, image_shape)
    )
    return float(uses + _analog_uses(built, image_shape, num_classes))


class Plan(NamedTuple):
    """A setting at one (channel, SNR).

    Attributes:
        uses: planned channel uses per inference (inf when it is not planned).
        mcs_fallback: a digital link runs the lowest MCS, below its target.
        strategy: the adapted strategy, or None (an analog codec not yet trained,
            or a setting left out).
        skipped: why the setting is left out, or None.
    """

    uses: float
    mcs_fallback: bool
    strategy: object
    skipped: str | None = None


def _short_blocks(built, image_shape) -> str | None:
    short = sorted({link.block_bits for link in digital_links(built, image_shape)
                    if link.block_bits < TABLE_BLOCK_BITS})  # fmt: skip
    if not short:
        return None
    return f"LDPC blocks of {'/'.join(map(str, short))} bits: no shipped BLER curves"


# Adapted strategies by (config, setting, channel, MCS indices): one object, one compile.
_ADAPTED: dict = {}


@functools.cache
def plan(config, setting: Setting, channel: str, snr_db: float) -> Plan:
    """``setting`` at Es/N0 ``snr_db`` (per complex symbol, dB) on ``channel``."""
    if setting.family == "split_analog":
        return Plan(float(dict(setting.options)["analog_symbols"]), False, None)
    shape = strategies_snr.setup(config).dataset.image_shape
    built = strategy(config, setting, channel)
    skipped = _short_blocks(built, shape)
    if skipped:
        return Plan(math.inf, False, None, skipped)
    adaptation = adapt_mcs(built, channel, snr_db, shape, target_bler=config.target_bler)
    key = (config, setting, channel, adaptation.indices)
    adapted = _ADAPTED.setdefault(key, adaptation.strategy)
    stream = None
    if setting.family == "cloud_jpeg":
        stream = longest_stream_bits(config, dict(setting.options)["jpeg_quality"])
    classes = strategies_snr.setup(config).dataset.num_classes
    uses = planned_uses(adapted, shape, classes, channel, stream)
    return Plan(uses, adaptation.fallback, adapted)


class Choice(NamedTuple):
    """What a family runs at one point.

    Attributes:
        setting: the chosen :class:`Setting`, or None (nothing fits).
        plan: its :class:`Plan`, or None.
        fallback: None, ``"local"`` or ``"chance"`` (nothing fits).
    """

    setting: Setting | None
    plan: Plan | None
    fallback: str | None


def choose(config, family: str, channel: str, snr_db: float, budget: int) -> Choice:
    """The highest ranked setting of ``family`` that fits ``budget`` channel uses at
    (``channel``, ``snr_db``), preferring those whose links meet the target; or the
    fallback (module docstring)."""
    candidates = settings(config, family)
    fitting = [(s, p) for s in candidates if (p := plan(config, s, channel, snr_db)).uses <= budget]
    if not fitting:
        return Choice(None, None, "local" if candidates[0].offline else "chance")
    reliable = [(s, p) for s, p in fitting if not p.mcs_fallback] or fitting
    return Choice(*reliable[-1], None)


def runnable(config, setting: Setting, channel: str, chosen: Plan):
    """The strategy to evaluate: the plan's adapted one, or the analog codec (trained now)."""
    return chosen.strategy if chosen.strategy is not None else strategy(config, setting, channel)


def setting_table(config) -> list[dict]:
    """Every setting of every family: its rank and, at each (channel, SNR), its
    planned channel uses, MCS fallback and why it is left out."""
    rows = []
    for family in config.strategies:
        for rank, setting in enumerate(settings(config, family)):
            for channel in config.channels:
                for snr in config.snr_db:
                    found = plan(config, setting, channel, snr)
                    rows.append({
                        "strategy": family, "rank": rank, "setting": setting.label,
                        "channel": channel, "snr_db": snr, "planned_uses": found.uses,
                        "mcs_fallback": found.mcs_fallback, "skipped": found.skipped,
                    })  # fmt: skip
    return rows


def clear_caches() -> None:
    """Forget what was built and planned (and strategies_snr's models)."""
    for cached in (_context, _built, longest_stream_bits, plan):
        cached.cache_clear()
    _ADAPTED.clear()
    strategies_snr.clear_caches()
