"""Link adaptation of the strategies: every digital link at the MCS its SNR affords.

:func:`adapt_mcs` returns a copy of a strategy in which each digital link runs
the 5G NR MCS (38.214, :mod:`airinfer.phy.link_adaptation`) that
:func:`~airinfer.phy.link_adaptation.select_mcs` picks for a channel and an
Es/N0: the highest MCS whose error rate on the link's measured BLER curve stays
within ``target_bler`` for that link's **whole message** (a message of ``B``
LDPC blocks of ``k`` info bits arrives when all ``B`` do:
``1 - (1 - BLER) ** B <= target_bler``). The walk reaches every digital link
of a composite strategy:

* ``CloudStrategy``: ``uplink``, its message all the pixels of an image, or a
  full codec buffer (a stream's length varies: the bound is conservative);
* ``SplitDigitalStrategy``: ``uplink``, the quantised features;
* ``LayerPartitionStrategy``: ``hops[i]``, each hop for its own message;
* ``HorizontalPartitionStrategy``: ``hop``, shared by the slices; the fusion
  node needs every slice, so the message is all of them (at the smallest
  slice's block size);
* ``EdgeEnsembleStrategy``: ``observation`` when it is a digital multicast
  (``direct``, a digital ``encoder``), one neighbour's copy;
* ``HybridStrategy``: ``ensemble.…`` and ``server.uplink``;
* ``LocalStrategy``, ``JSCCSplitStrategy`` (analog), and an edge ensemble with a
  shared scene or an analog encoder have no digital link: they come back as
  they are (the same object).

**Fallback.** Where not even the lowest supported MCS meets the target
(``select_mcs`` returns None; for one 512-bit block at target 0.1, below
about -1.3 dB on AWGN and -0.3 dB on Rayleigh with table 2, whose lowest
supported MCS is QPSK at rate 308/1024, or -2.5 and -1.5 dB with table 1,
QPSK at 251/1024), the link runs the lowest
supported MCS of the table, as Sionna's inner-loop link adaptation does, and
the record says so (:attr:`AdaptedLink.fallback`, :attr:`Adaptation.fallback`):
the strategy then runs below its target, and the caller decides what that
means (report it, decide locally, ...).

The MCS is a static configuration (a strategy is a static ``jax.jit``
argument), so the choice is made outside ``jit`` on a concrete SNR; a traced
SNR is refused. BLER curves exist for ``"awgn"`` and ``"rayleigh"`` only (the
digital link's flat channels, i.i.d. fading per symbol), so those are the
channels it adapts to. Blocks of 512 info bits or more use the shipped 512-bit
curves (conservative; measured on Sionna, they serve both backends); smaller
blocks (a partitioning hop's narrow slice) are measured on first use on the
backend the strategy will run on (``backend=``, ``Link.backend``; ``"jax"``
imports no TensorFlow), minutes per MCS on two CPU cores, then cached for the
process.

SNR is **Es/N0 per complex symbol in dB**: unit-energy symbols, noise CN(0, no)
with ``no = 10 ** (-snr_db / 10)``; the average Es/N0 under Rayleigh fading.

Example::

    adaptation = adapt_mcs(split, "rayleigh", 12.0, (8, 8, 1))
    adaptation.links        # (AdaptedLink(where='uplink', mcs=MCS(2, 13, 4, 0.66...), ...),)
    outcome = jax.jit(adaptation.strategy)(key, images, Link(snr_db=12.0, channel="rayleigh"))
"""

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax

from airinfer.phy import link_adaptation
from airinfer.phy.digital_payload import LinkSettings
from airinfer.strategies.cloud import CloudStrategy, ImageLink
from airinfer.strategies.digital_hop import DigitalHop
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.hybrid import HybridStrategy
from airinfer.strategies.jscc import JSCCSplitStrategy
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.observation import DirectObservation, SharedEncoder
from airinfer.strategies.partition import HorizontalPartitionStrategy, LayerPartitionStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy

__all__ = ["ADAPTIVE_CHANNELS", "DigitalLink", "AdaptedLink", "Adaptation", "digital_links",
           "adapt_mcs"]  # fmt: skip

#: Channels with BLER curves, the ones :func:`adapt_mcs` adapts to.
ADAPTIVE_CHANNELS = link_adaptation.CHANNELS

# Objects that hold a digital link's settings (modulation, code_rate, mcs, mcs_table).
_Holder = CloudStrategy | ImageLink | SplitDigitalStrategy | SharedEncoder | DigitalHop


class DigitalLink(NamedTuple):
    """One digital link of a strategy and the message it carries.

    Attributes:
        where: the link's place in the strategy (``"uplink"``, ``"hops[1]"``,
            ``"ensemble.observation"``, ...).
        settings: its :class:`~airinfer.phy.digital_payload.LinkSettings`
            (``settings.mcs`` is None for a fixed modulation and code rate).
        block_bits: info bits ``k`` per LDPC block.
        num_blocks: LDPC blocks of one message, all of which must arrive.
    """

    where: str
    settings: LinkSettings
    block_bits: int
    num_blocks: int


class AdaptedLink(NamedTuple):
    """The MCS :func:`adapt_mcs` gave one digital link.

    Attributes:
        where: as :attr:`DigitalLink.where`.
        mcs: the :class:`~airinfer.phy.link_adaptation.MCS` it runs.
        block_bits: info bits ``k`` per LDPC block.
        num_blocks: LDPC blocks of one message.
        fallback: no MCS met the target; ``mcs`` is the lowest supported one.
    """

    where: str
    mcs: link_adaptation.MCS
    block_bits: int
    num_blocks: int
    fallback: bool


class Adaptation(NamedTuple):
    """What :func:`adapt_mcs` returns.

    Attributes:
        strategy: the adapted copy (the input itself when it has no digital link).
        links: ``tuple[AdaptedLink, ...]``, one per digital link, in walk order.
    """

    strategy: object
    links: tuple[AdaptedLink, ...]

    @property
    def fallback(self) -> bool:
        """Whether any link fell back to the lowest MCS (False without links)."""
        return any(link.fallback for link in self.links)

    @property
    def indices(self) -> tuple[int, ...]:
        """The MCS index of every link, in walk order."""
        return tuple(link.mcs.index for link in self.links)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _walk(strategy, image_shape, visit: Callable, where: str = ""):
    """``strategy`` with ``visit(where, holder, block_bits, num_blocks)`` applied to the
    holder of every digital link; the same object where nothing changed."""
    if isinstance(strategy, LocalStrategy | JSCCSplitStrategy):
        return strategy
    if isinstance(strategy, CloudStrategy):
        blocks = strategy.uplink.max_blocks(image_shape)
        return visit(_join(where, "uplink"), strategy, strategy.block_bits, blocks)
    if isinstance(strategy, SplitDigitalStrategy):
        blocks = strategy.num_blocks(image_shape)
        return visit(_join(where, "uplink"), strategy, strategy.block_bits, blocks)
    if isinstance(strategy, LayerPartitionStrategy):
        hops = tuple(
            visit(_join(where, f"hops[{i}]"), hop, hop.block_bits(v), hop.num_blocks(v))
            for i, (hop, v) in enumerate(
                zip(strategy.hops, strategy.hop_values(image_shape), strict=True)
            )
        )
        if all(new is old for new, old in zip(hops, strategy.hops, strict=True)):
            return strategy
        return dataclasses.replace(strategy, hops=hops)
    if isinstance(strategy, HorizontalPartitionStrategy):
        hop, values = strategy.hop, strategy.slice_values(image_shape)
        block_bits = min(hop.block_bits(v) for v in values)
        new = visit(_join(where, "hop"), hop, block_bits, sum(hop.num_blocks(v) for v in values))
        return strategy if new is hop else dataclasses.replace(strategy, hop=new)
    if isinstance(strategy, EdgeEnsembleStrategy):
        observation = _walk_observation(
            strategy.observation, image_shape, visit, _join(where, "observation")
        )
        if observation is strategy.observation:
            return strategy
        return dataclasses.replace(strategy, observation=observation)
    if isinstance(strategy, HybridStrategy):
        ensemble = _walk(strategy.ensemble, image_shape, visit, _join(where, "ensemble"))
        server = _walk(strategy.server, image_shape, visit, _join(where, "server"))
        if ensemble is strategy.ensemble and server is strategy.server:
            return strategy
        return dataclasses.replace(strategy, ensemble=ensemble, server=server)
    raise ValueError(
        f"strategy: {type(strategy).__name__} is not a strategy whose links are known "
        "(cloud, split, partition, edge ensemble, hybrid, local, analog split)"
    )


def _walk_observation(observation, image_shape, visit, where):
    """The edge ensemble's first round with its digital multicast visited."""
    if isinstance(observation, DirectObservation):
        image_link = observation.image_link
        blocks = image_link.max_blocks(image_shape)
        new = visit(where, image_link, image_link.block_bits, blocks)
        if new is image_link:
            return observation
        return dataclasses.replace(observation, image_link=new)
    if isinstance(observation, SharedEncoder) and not observation.analog:
        blocks = observation.num_blocks(image_shape)
        return visit(where, observation, observation.block_bits, blocks)
    return observation  # shared scene, or analog symbols


def digital_links(strategy, image_shape) -> tuple[DigitalLink, ...]:
    """The digital links of ``strategy`` and their messages, for images of ``image_shape``.

    Parameters:
        strategy: a strategy of this package (see the module docstring's table).
        image_shape: ``(H, W, C)`` of one input image.

    Output:
        ``tuple[DigitalLink, ...]`` in walk order; empty for a strategy without
        a digital link.
    """
    found = []

    def record(where, holder, block_bits, num_blocks):
        found.append(DigitalLink(where, LinkSettings.of(holder), block_bits, num_blocks))
        return holder

    _walk(strategy, tuple(int(d) for d in image_shape), record)
    return tuple(found)


def _with_mcs(holder: _Holder, mcs: link_adaptation.MCS):
    """A copy of ``holder`` running ``mcs``, its ``modulation`` and ``code_rate`` at their
    defaults (which an MCS requires)."""
    defaults = {f.name: f.default for f in dataclasses.fields(holder)}
    return dataclasses.replace(
        holder,
        mcs=mcs.index,
        mcs_table=mcs.table_index,
        modulation=defaults["modulation"],
        code_rate=defaults["code_rate"],
    )


def _check_snr(snr_db) -> float:
    if isinstance(snr_db, jax.core.Tracer):
        raise ValueError(
            "snr_db: a traced value; adapt_mcs chooses a static MCS, so call it outside "
            "jax.jit with a concrete SNR"
        )
    try:
        snr = float(snr_db)
    except (TypeError, ValueError):
        raise ValueError(f"snr_db: {snr_db!r} is not a number") from None
    if not math.isfinite(snr):
        raise ValueError(f"snr_db: {snr_db!r} is not finite")
    return snr


def adapt_mcs(
    strategy,
    channel: str,
    snr_db,
    image_shape,
    *,
    target_bler: float = 0.1,
    table_index: int = link_adaptation.DEFAULT_MCS_TABLE,
    backend: str = "sionna",
) -> Adaptation:
    """A copy of ``strategy`` with every digital link at the MCS ``snr_db`` affords.

    Parameters:
        strategy: a strategy of this package (see the module docstring's table);
            its links may hold any settings (a fixed modulation, another MCS):
            each is replaced.
        channel: ``"awgn"`` or ``"rayleigh"`` (:data:`ADAPTIVE_CHANNELS`, the
            channels with BLER curves), the channel the strategy will run on.
        snr_db: Es/N0 per complex symbol in dB (noise CN(0, no),
            ``no = 10**(-snr_db/10)``; average Es/N0 under Rayleigh fading), a
            concrete finite number (not traced).
        image_shape: ``(H, W, C)`` of one input image: it sets each message's size.
        target_bler: in (0, 1), the most a message may fail (all of its blocks).
        table_index: the 38.214 MCS table, 1 (up to 64QAM) or 2 (up to 256QAM).
        backend: ``"sionna"`` or ``"jax"``, the strategy's ``Link.backend``: where the
            BLER curves of blocks under 512 bits are measured (the shipped curves
            serve both).

    Output:
        :class:`Adaptation`: the adapted strategy and one :class:`AdaptedLink`
        per digital link (its MCS, block size, blocks per message and whether
        it fell back to the lowest MCS).
    """
    snr = _check_snr(snr_db)
    if isinstance(target_bler, bool) or not isinstance(target_bler, int | float):
        raise ValueError(f"target_bler: {target_bler!r} is not a number in (0, 1)")
    if not 0 < target_bler < 1:
        raise ValueError(f"target_bler: {target_bler!r} is not in (0, 1)")
    if channel not in ADAPTIVE_CHANNELS:
        raise ValueError(
            f"channel: {channel!r} has no BLER curves to adapt the MCS on; "
            f"allowed: {', '.join(ADAPTIVE_CHANNELS)}"
        )
    if backend not in link_adaptation.BACKENDS:
        raise ValueError(
            f"backend: {backend!r} is not one of {', '.join(link_adaptation.BACKENDS)}"
        )
    lowest = next(e for e in link_adaptation.mcs_table(table_index) if e.supported)
    chosen = []

    def adapt(where, holder, block_bits, num_blocks):
        mcs = link_adaptation.select_mcs(
            snr, target_bler, channel=channel, table_index=table_index,
            block_bits=block_bits, num_blocks=num_blocks, backend=backend,
        )  # fmt: skip
        chosen.append(AdaptedLink(where, mcs or lowest, block_bits, num_blocks, mcs is None))
        return _with_mcs(holder, mcs or lowest)

    adapted = _walk(strategy, tuple(int(d) for d in image_shape), adapt)
    return Adaptation(adapted, tuple(chosen))
