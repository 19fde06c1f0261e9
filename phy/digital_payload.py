"""Payloads of any length over the digital link: cut into LDPC blocks, sent, put back together.

:func:`send_bits` carries a ``[batch, L]`` payload of bits per sample over
:mod:`airinfer.phy.digital`: the payload is cut into LDPC blocks of ``k`` info bits
(the last one zero-padded), sent, decided and put back together. One sample
costs ``ceil(L / k)`` blocks of ``n / bits_per_symbol`` channel uses
(:func:`channel_uses_per_sample`). :func:`digital_link_config` builds the
link of a strategy's settings (channel, modulation, code rate, block size);
:func:`mcs_link_config` builds it from a 5G NR MCS instead, a fixed index or
``"adaptive"`` (:mod:`airinfer.phy.link_adaptation`). :class:`LinkSettings` is
what every digital strategy holds: a fixed modulation and code rate, or a
fixed MCS index of a 38.214 table, turned into the link of a block size.

:func:`send_bits` runs the link on the backend its ``backend`` argument names
(the digital strategies pass ``Link.backend``): ``"sionna"`` (Sionna's blocks,
TensorFlow) or ``"jax"`` (:mod:`airinfer.phy.digital_jax`, no TensorFlow), as
:func:`airinfer.phy.link_adaptation.on_backend` says: on ``"jax"`` the LDPC
decoder stops each block at its first zero syndrome (``early_stop``). That is
always on rather than a setting, because it changes no decision of a block
that converges (and stays converged), while a block that does not runs the
full ``num_iter`` iterations; it only saves the iterations after convergence,
which are most of them above the waterfall. The link models AWGN and Rayleigh
fading i.i.d. per symbol, and the 3GPP TDL/CDL models over OFDM (``"tdl-a"`` …
``"cdl-e"``: a resource grid per slot, perfect or LS-estimated CSI). A block's
channel uses count its data symbols; with its pilots and the empty rest of its
last slot it occupies
:attr:`airinfer.phy.digital.LinkConfig.resource_elements_per_block` resource elements.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from airinfer.phy import digital, link_adaptation

__all__ = [
    "DIGITAL_CHANNELS",
    "on_backend",
    "LinkSettings",
    "digital_link_config",
    "resolve_mcs",
    "mcs_link_config",
    "num_blocks",
    "channel_uses_per_sample",
    "send_bits",
]

#: Channels of the digital link: flat (``"awgn"``, ``"rayleigh"``) and 3GPP over OFDM.
DIGITAL_CHANNELS = digital.CHANNELS
#: ``on_backend(config, backend)``: the link as it runs on a backend (early stopping on JAX).
on_backend = link_adaptation.on_backend


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def digital_link_config(channel: str, modulation: str, code_rate: float, block_bits: int):
    """The :class:`airinfer.phy.digital.LinkConfig` of a strategy's link: 5G LDPC + Gray QAM.

    Parameters:
        channel: one of :data:`DIGITAL_CHANNELS` (``Link.channel``): ``"awgn"``,
            ``"rayleigh"``, or an OFDM model ``"tdl-a"`` … ``"cdl-e"`` with the OFDM
            defaults of :class:`airinfer.phy.digital.LinkConfig`.
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"``.
        code_rate: LDPC rate ``k / n``; ``n = block_bits / code_rate`` must be
            a whole number and a multiple of the bits per symbol.
        block_bits: info bits ``k`` per LDPC block, in ``[12, 8448]``.
    """
    if channel not in DIGITAL_CHANNELS:
        raise ValueError(
            f"link.channel: {channel!r} has no digital path; use one of "
            f"{', '.join(DIGITAL_CHANNELS)}"
        )
    if not _is_int(block_bits) or block_bits < 1:
        raise ValueError(f"block_bits: {block_bits!r} is not a positive int")
    if not (isinstance(code_rate, int | float) and 0 < code_rate < 1):
        raise ValueError(f"code_rate: {code_rate!r} is not a number in (0, 1)")
    n = round(block_bits / code_rate)
    if abs(n * code_rate - block_bits) > 1e-9 * block_bits:
        raise ValueError(
            f"code_rate: {code_rate} gives a fractional codeword length "
            f"{block_bits}/{code_rate} for block_bits={block_bits}"
        )
    try:
        return digital.LinkConfig(modulation=modulation, channel=channel, k=block_bits, n=n)
    except ValueError as err:
        raise ValueError(f"digital link (block_bits={block_bits}, n={n}): {err}") from err


@dataclasses.dataclass(frozen=True)
class LinkSettings:
    """A strategy's modulation and coding: a fixed pair, or a 5G NR MCS index.

    The one place where a digital strategy's settings become a link: the
    cloud's image link, the digital split, the shared encoder's multicast and
    the partitioning hops all hold these four fields and ask
    :meth:`link_config` for the link of their block size.

    Parameters:
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"``; used
            when ``mcs`` is None, else it must stay at its default ``"qpsk"``.
        code_rate: LDPC rate ``k / n`` when ``mcs`` is None (``k / code_rate``
            must be whole); else it must stay at its default 0.5.
        mcs: None, or an index of 38.214 MCS table ``mcs_table``
            (:func:`airinfer.phy.link_adaptation.get_mcs`) with ``R >= 1/5``:
            its QAM order and target rate replace ``modulation`` and
            ``code_rate`` (the tables are data: no TensorFlow needed).
        mcs_table: 1 (up to 64QAM) or 2 (up to 256QAM); only with an ``mcs``.

    A field changed from its default that has no effect (``modulation`` or
    ``code_rate`` with an MCS, ``mcs_table`` without one) is refused with a
    ValueError naming it.
    """

    modulation: str = "qpsk"
    code_rate: float = 0.5
    mcs: int | None = None
    mcs_table: int = link_adaptation.DEFAULT_MCS_TABLE

    def __post_init__(self):
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.mcs is None:
            if self.mcs_table != defaults["mcs_table"]:
                raise ValueError(
                    f"mcs_table: {self.mcs_table!r} has no effect without an mcs "
                    "(mcs=None runs modulation and code_rate)"
                )
            return
        if not _is_int(self.mcs):
            raise ValueError(f"mcs: {self.mcs!r} is neither None nor an MCS index (int)")
        if not _is_int(self.mcs_table) or self.mcs_table not in link_adaptation.MCS_TABLES:
            raise ValueError(
                f"mcs_table: {self.mcs_table!r} is not one of "
                f"{', '.join(map(str, link_adaptation.MCS_TABLES))}"
            )
        for name in ("modulation", "code_rate"):
            if getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"{name}: {getattr(self, name)!r} has no effect with mcs={self.mcs} "
                    f"(the MCS sets modulation and code rate); leave it at {defaults[name]!r}"
                )
        try:
            entry = link_adaptation.get_mcs(self.mcs, self.mcs_table)
        except ValueError as err:
            raise ValueError(f"mcs: {err}") from None
        if not entry.supported:
            raise ValueError(
                f"mcs: {self.mcs} of table {self.mcs_table} has rate "
                f"{entry.code_rate * 1024:g}/1024, below the LDPC encoder's lowest rate "
                f"{link_adaptation.MIN_CODE_RATE}"
            )

    @classmethod
    def of(cls, holder):
        """The settings of an object holding ``modulation``, ``code_rate``, ``mcs``
        and ``mcs_table`` attributes (a strategy, an image link, a hop)."""
        return cls(holder.modulation, holder.code_rate, holder.mcs, holder.mcs_table)

    @property
    def entry(self):
        """The :class:`airinfer.phy.link_adaptation.MCS` of ``mcs``, or None."""
        return None if self.mcs is None else link_adaptation.get_mcs(self.mcs, self.mcs_table)

    @property
    def bits_per_symbol(self) -> int:
        """Bits per QAM symbol: the MCS's ``Qm``, or the modulation's."""
        entry = self.entry
        return digital.MODULATIONS[self.modulation] if entry is None else entry.bits_per_symbol

    def link_config(self, channel: str, block_bits: int):
        """The :class:`airinfer.phy.digital.LinkConfig` of blocks of ``block_bits`` info bits.

        Parameters:
            channel: one of :data:`DIGITAL_CHANNELS`.
            block_bits: info bits ``k`` per LDPC block, in ``[12, 8448]``.

        Output:
            Without an MCS, :func:`digital_link_config` (``n = k / code_rate``);
            with one, :func:`airinfer.phy.link_adaptation.link_config`:
            ``2^Qm``-QAM and ``n = Qm ceil(k / (R Qm))``.
        """
        if self.mcs is None:
            return digital_link_config(channel, self.modulation, self.code_rate, block_bits)
        return mcs_link_config(channel, self.entry, block_bits)


def resolve_mcs(
    mcs,
    channel: str,
    block_bits: int,
    *,
    snr_db=None,
    table_index: int = link_adaptation.DEFAULT_MCS_TABLE,
    target_bler: float = 0.1,
    backend: str = "sionna",
):
    """The :class:`airinfer.phy.link_adaptation.MCS` a strategy's ``mcs`` setting stands for.

    Parameters:
        mcs: an MCS index of table ``table_index`` (int), an
            :class:`~airinfer.phy.link_adaptation.MCS` (returned as is), or ``"adaptive"``:
            the highest MCS whose BLER at ``snr_db`` is at most ``target_bler``
            (:func:`airinfer.phy.link_adaptation.select_mcs`); when none is,
            the lowest supported MCS, as Sionna's inner-loop link adaptation
            does (``select_mcs`` returns ``None`` then: call it to report that).
        channel: one of :data:`DIGITAL_CHANNELS`; ``"adaptive"`` needs BLER
            curves, which exist for ``"awgn"`` and ``"rayleigh"`` only.
        block_bits: info bits ``k`` per LDPC block.
        snr_db: Es/N0 per complex symbol in dB (average for Rayleigh), a
            concrete number; required by ``"adaptive"`` only.
        table_index: 38.214 MCS table, 1 (up to 64QAM) or 2 (up to 256QAM).
        target_bler: block error rate target in (0, 1) of ``"adaptive"``.
        backend: ``"sionna"`` or ``"jax"``, where ``"adaptive"`` measures a BLER
            curve that does not ship (blocks under 512 bits).
    """
    if isinstance(mcs, link_adaptation.MCS):
        return mcs
    if mcs == "adaptive":
        if snr_db is None:
            raise ValueError('snr_db: None; mcs="adaptive" chooses the MCS for a given SNR')
        chosen = link_adaptation.select_mcs(
            snr_db, target_bler, channel=channel, table_index=table_index,
            block_bits=block_bits, backend=backend,
        )  # fmt: skip
        if chosen is None:
            chosen = next(e for e in link_adaptation.mcs_table(table_index) if e.supported)
        return chosen
    if isinstance(mcs, str) or not _is_int(mcs):
        raise ValueError(f'mcs: {mcs!r} is neither an MCS index (int) nor "adaptive"')
    return link_adaptation.get_mcs(mcs, table_index)


def mcs_link_config(
    channel: str,
    mcs,
    block_bits: int,
    *,
    snr_db=None,
    table_index: int = link_adaptation.DEFAULT_MCS_TABLE,
    target_bler: float = 0.1,
    backend: str = "sionna",
):
    """The :class:`airinfer.phy.digital.LinkConfig` of a 5G NR MCS: QAM order and LDPC rate.

    ``mcs`` (an index, an MCS or ``"adaptive"``), ``snr_db``, ``table_index``,
    ``target_bler`` and ``backend`` as in :func:`resolve_mcs` (the link itself is
    built for Sionna; :func:`send_bits` moves it to the backend it runs on). The
    MCS ``(Qm, R)`` runs as ``2^Qm``-QAM with ``k = block_bits`` and ``n = Qm ceil(k / (R Qm))``
    (:func:`airinfer.phy.link_adaptation.link_config`); MCS with ``R < 1/5`` are
    refused (Sionna's LDPC encoder).
    """
    if channel not in DIGITAL_CHANNELS:
        raise ValueError(
            f"link.channel: {channel!r} has no digital path; use one of "
            f"{', '.join(DIGITAL_CHANNELS)}"
        )
    chosen = resolve_mcs(
        mcs,
        channel,
        block_bits,
        snr_db=snr_db,
        table_index=table_index,
        target_bler=target_bler,
        backend=backend,
    )
    return link_adaptation.link_config(chosen, channel, block_bits)


def num_blocks(payload_bits, block_bits: int):
    """LDPC blocks for a payload: ``ceil(payload_bits / block_bits)`` (ints or int arrays)."""
    if isinstance(payload_bits, int | np.integer):
        return -(-int(payload_bits) // block_bits)
    return -(-jnp.asarray(payload_bits, jnp.int32) // block_bits)


def channel_uses_per_sample(payload_bits, config):
    """Complex channel uses of a payload: ``ceil(payload / k) * n / bits_per_symbol`` (exact)."""
    return num_blocks(payload_bits, config.k) * config.num_symbols


def send_bits(key, bits, snr_db, config, *, backend=None):
    """Send a payload of bits per sample over the digital link and decide it.

    Parameters:
        key: JAX PRNG key of the channel and noise.
        bits: ``[B, L]`` float32 of 0/1, ``L`` payload bits per sample.
        snr_db: scalar, Es/N0 per complex symbol in dB (average for Rayleigh);
            noise CN(0, no), ``no = 10**(-snr_db/10)``.
        config: :class:`airinfer.phy.digital.LinkConfig` (see :func:`digital_link_config`).
        backend: ``"sionna"`` or ``"jax"`` (a strategy's ``Link.backend``): the link
            runs as ``on_backend(config, backend)`` (on ``"jax"``, LDPC with early
            stopping); None runs ``config`` as it is.

    Output:
        ``[B, L]`` float32 of 0/1, the decided bits. Each sample's payload
        fills ``ceil(L / k)`` blocks, the last zero-padded; the padding is
        sent and dropped.
    """
    if backend is not None:
        config = on_backend(config, backend)
    batch, length = bits.shape
    blocks = num_blocks(length, config.k)
    padded = jnp.pad(jnp.asarray(bits, jnp.float32), ((0, 0), (0, blocks * config.k - length)))
    decided, _ = digital.transmit(
        key, padded.reshape(batch * blocks, config.k), jnp.asarray(snr_db, jnp.float32), config
    )
    return decided.reshape(batch, blocks * config.k)[:, :length]
