"""The configuration of one digital link (:class:`LinkConfig`) and its vocabulary.

Kept apart from :mod:`airinfer.phy.digital`, which builds and runs the link:
the fields, their checks and the resources a configuration occupies (codeword
length, symbols, OFDM slots and resource elements) need neither Sionna nor
TensorFlow.
"""

import dataclasses
import math

import numpy as np

from airinfer.phy import theory
from airinfer.phy.channels.ofdm import OFDM_MODELS

__all__ = [
    "BACKENDS",
    "MODULATIONS",
    "FLAT_CHANNELS",
    "OFDM_CHANNELS",
    "CHANNELS",
    "CODINGS",
    "CSI_MODES",
    "LS_INTERPOLATIONS",
    "LinkConfig",
]

# Gray square QAM up to 256QAM (the highest order of the 5G NR MCS tables 1 and 2);
# Sionna's Mapper and Demapper take any even number of bits per symbol.
MODULATIONS = {**theory.BITS_PER_SYMBOL, "256qam": 8}
FLAT_CHANNELS = ("awgn", "rayleigh")
#: The 3GPP TR 38.901 models over OFDM (:data:`airinfer.phy.channels.OFDM_MODELS`).
OFDM_CHANNELS = tuple(OFDM_MODELS)
CHANNELS = FLAT_CHANNELS + OFDM_CHANNELS
CODINGS = ("uncoded", "ldpc")
#: Receiver CSI on OFDM: the true channel, or least squares on the pilots.
CSI_MODES = ("perfect", "ls")
#: Interpolation of the LS estimates over the grid (Sionna's LSChannelEstimator).
LS_INTERPOLATIONS = ("nn", "lin", "lin_time_avg")
#: Where the link runs: Sionna's blocks through the bridge, or the JAX twins
#: (:mod:`airinfer.phy.digital_jax`, no TensorFlow).
BACKENDS = ("sionna", "jax")
# Fields that only mean something on OFDM channels (refused elsewhere unless at default).
_OFDM_FIELDS = (
    "csi", "ls_interpolation", "num_ofdm_symbols", "fft_size", "pilot_ofdm_symbol_indices",
    "subcarrier_spacing", "delay_spread", "carrier_frequency", "speed",
)  # fmt: skip

# Limits of Sionna's 5G NR LDPC code (38.212): info bits and mother code length.
_LDPC_K_RANGE = (12, 8448)
_LDPC_N_MAX = 316 * 384
# the rates k/n that 5G LDPC (38.212) and Sionna's encoder take
_LDPC_RATE_RANGE = (1 / 5, 0.95)
# |h_est|^2 is floored here before dividing: a deep fade or a zero estimate gives
# near-zero LLRs instead of inf/NaN.
_MIN_CHANNEL_POWER = 1e-12
# The OFDM equaliser divides by no + err_var: no = 0 (a noise-free link) is floored here.
_MIN_NOISE_POWER = 1e-12


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_number(name, value, *, allow_zero=False):
    """Refuse anything but a finite real ``> 0`` (``>= 0`` with ``allow_zero``)."""
    real = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not (real and math.isfinite(value) and (value > 0 or (allow_zero and value == 0))):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class LinkConfig:
    """Configuration of one digital link; hashable, so a static ``jax.jit`` argument.

    A field that would have no effect is refused: the OFDM fields (``csi`` to
    ``speed``) away from their defaults on a flat channel, ``ls_interpolation``
    with perfect CSI, ``receiver_csi_error_var`` with LS estimation.

    Parameters:
        modulation: ``"qpsk"`` | ``"16qam"`` | ``"64qam"`` | ``"256qam"``, Gray-mapped QAM.
        channel: ``"awgn"`` | ``"rayleigh"`` (flat, i.i.d. per symbol, ``h ~ CN(0, 1)``)
            | an OFDM model ``"tdl-a"`` … ``"tdl-e"``, ``"cdl-a"`` … ``"cdl-e"``
            (3GPP TR 38.901, uplink, one antenna each side, unit-energy power delay
            profile; see the module notes for the resource grid).
        coding: ``"ldpc"`` (5G NR LDPC, rate ``k / n``) | ``"uncoded"``.
        k: info bits per block.
        n: coded bits per block. ``None`` (resolved at construction): ``2 k``
            for LDPC (rate 1/2), ``k`` uncoded. Must be a multiple of the bits
            per symbol.
        receiver_csi_error_var: variance of the receiver's channel-estimation error: it
            equalises with ``h + e``, ``e ~ CN(0, receiver_csi_error_var)``, and computes
            LLRs as if that estimate were exact (mismatched receiver). 0: perfect CSI.
            On OFDM, per resource element, with ``csi="perfect"`` only.
        num_iter: belief-propagation iterations of the LDPC decoder.
        csi: OFDM receiver CSI: ``"perfect"`` (the true channel of every resource
            element) | ``"ls"`` (least-squares estimates on the pilots, interpolated;
            the LMMSE equaliser accounts for their error variance).
        ls_interpolation: ``"nn"`` | ``"lin"`` | ``"lin_time_avg"``, how LS estimates
            fill the grid (nearest pilot, linear, linear with time averaging).
        num_ofdm_symbols: OFDM symbols per slot (14: one NR slot).
        fft_size: subcarriers per slot; ``None``: the fewest that hold one block
            in one slot, ``ceil(num_symbols / num_data_ofdm_symbols)``.
        pilot_ofdm_symbol_indices: OFDM symbols of a slot that carry pilots on every
            subcarrier (stored sorted, as a tuple); ``()`` only with perfect CSI.
        subcarrier_spacing: Hz. delay_spread: RMS delay spread, s.
        carrier_frequency: Hz. speed: device speed in m/s (Doppler within a slot).
        backend: ``"sionna"`` (Sionna's blocks through the bridge) | ``"jax"`` (the JAX
            twins :mod:`airinfer.phy.qam`, :mod:`airinfer.phy.ldpc`,
            :mod:`airinfer.phy.ofdm_receiver` and :mod:`airinfer.phy.channels.tr38901`:
            no TensorFlow, ``vmap``-able).
        early_stop: stop a block's LDPC iterations once its hard decisions satisfy
            every parity check (``backend="jax"`` and LDPC only: Sionna 1.2's
            decoder always runs ``num_iter`` iterations).
    """

    modulation: str = "qpsk"
    channel: str = "awgn"
    coding: str = "ldpc"
    k: int = 512
    n: int | None = None
    receiver_csi_error_var: float = 0.0
    num_iter: int = 20
    csi: str = "perfect"
    ls_interpolation: str = "lin"
    num_ofdm_symbols: int = 14
    fft_size: int | None = None
    pilot_ofdm_symbol_indices: tuple[int, ...] = (2, 11)
    subcarrier_spacing: float = 30e3
    delay_spread: float = 100e-9
    carrier_frequency: float = 3.5e9
    speed: float = 0.0
    backend: str = "sionna"
    early_stop: bool = False

    def __post_init__(self):
        if self.modulation not in MODULATIONS:
            raise ValueError(
                f"modulation must be one of {sorted(MODULATIONS)}, got {self.modulation!r}"
            )
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {list(CHANNELS)}, got {self.channel!r}")
        if self.coding not in CODINGS:
            raise ValueError(f"coding must be one of {list(CODINGS)}, got {self.coding!r}")
        if not _is_int(self.k) or self.k < 1:
            raise ValueError(f"k must be a positive int, got {self.k!r}")
        if self.n is not None and (not _is_int(self.n) or self.n < 1):
            raise ValueError(f"n must be a positive int or None, got {self.n!r}")
        if self.n is None:
            # Resolve the default, so that n=None and the explicit n are the same
            # configuration (equal hashes: one compiled link, not two).
            object.__setattr__(self, "n", 2 * self.k if self.coding == "ldpc" else self.k)
        n = self.n
        if self.coding == "uncoded" and n != self.k:
            raise ValueError(f"n must equal k={self.k} (or be None) when uncoded, got {self.n!r}")
        if self.coding == "ldpc":
            low, high = _LDPC_K_RANGE
            if not low <= self.k <= high:
                raise ValueError(f"k must be in [{low}, {high}] for 5G LDPC, got {self.k}")
            if not self.k < n <= _LDPC_N_MAX:
                raise ValueError(
                    f"n must satisfy k={self.k} < n <= {_LDPC_N_MAX} for LDPC, got {n}"
                )
            low, high = _LDPC_RATE_RANGE
            if not low <= self.k / n <= high:
                raise ValueError(
                    f"code rate k/n = {self.k}/{n} = {self.k / n:.4g} is outside "
                    f"[{low:g}, {high:g}], the rates of 5G LDPC"
                )
        if n % self.bits_per_symbol:
            raise ValueError(
                f"n={n} must be a multiple of the {self.bits_per_symbol} bits per "
                f"{self.modulation} symbol"
            )
        try:
            csi = float(self.receiver_csi_error_var)
        except (TypeError, ValueError):
            csi = float("nan")
        if not (math.isfinite(csi) and csi >= 0):
            raise ValueError(
                f"receiver_csi_error_var must be finite and >= 0, got "
                f"{self.receiver_csi_error_var!r}"
            )
        if not _is_int(self.num_iter) or self.num_iter < 1:
            raise ValueError(f"num_iter must be an int >= 1, got {self.num_iter!r}")
        self._check_ofdm_fields()
        self._refuse_fields_without_effect()
        self._check_backend()

    def _check_backend(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if not isinstance(self.early_stop, bool | np.bool_):
            raise ValueError(f"early_stop must be a bool, got {self.early_stop!r}")
        object.__setattr__(self, "early_stop", bool(self.early_stop))
        if self.early_stop and self.coding != "ldpc":
            raise ValueError("early_stop=True: only the LDPC decoder stops early, not coding="
                             f"{self.coding!r}")  # fmt: skip
        if self.early_stop and self.backend == "sionna":
            raise ValueError(
                "early_stop=True needs backend='jax': Sionna 1.2's LDPC5GDecoder always "
                "runs num_iter iterations"
            )

    def _check_ofdm_fields(self):
        if self.csi not in CSI_MODES:
            raise ValueError(f"csi must be one of {list(CSI_MODES)}, got {self.csi!r}")
        if self.ls_interpolation not in LS_INTERPOLATIONS:
            raise ValueError(
                f"ls_interpolation must be one of {list(LS_INTERPOLATIONS)}, "
                f"got {self.ls_interpolation!r}"
            )
        if not _is_int(self.num_ofdm_symbols) or self.num_ofdm_symbols < 1:
            raise ValueError(f"num_ofdm_symbols must be an int >= 1, got {self.num_ofdm_symbols!r}")
        if self.fft_size is not None and (not _is_int(self.fft_size) or self.fft_size < 1):
            raise ValueError(f"fft_size must be an int >= 1 or None, got {self.fft_size!r}")
        pilots = self.pilot_ofdm_symbol_indices
        if not isinstance(pilots, tuple | list) or not all(_is_int(i) for i in pilots):
            raise ValueError(f"pilot_ofdm_symbol_indices must be a tuple of ints, got {pilots!r}")
        if len(set(pilots)) != len(pilots) or any(
            not 0 <= i < self.num_ofdm_symbols for i in pilots
        ):
            raise ValueError(
                f"pilot_ofdm_symbol_indices must be distinct OFDM symbol indices in "
                f"[0, num_ofdm_symbols={self.num_ofdm_symbols}), got {pilots!r}"
            )
        if len(pilots) >= self.num_ofdm_symbols:
            raise ValueError(
                f"pilot_ofdm_symbol_indices={pilots!r} leave no OFDM symbol for data "
                f"(num_ofdm_symbols={self.num_ofdm_symbols})"
            )
        # Sorted tuple of Python ints: equal settings are one configuration.
        object.__setattr__(self, "pilot_ofdm_symbol_indices", tuple(sorted(int(i) for i in pilots)))
        for name in ("subcarrier_spacing", "delay_spread", "carrier_frequency"):
            _check_number(name, getattr(self, name))
        _check_number("speed", self.speed, allow_zero=True)

    def _refuse_fields_without_effect(self):
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if not self.is_ofdm:
            changed = [f for f in _OFDM_FIELDS if getattr(self, f) != defaults[f]]
            if changed:
                raise ValueError(
                    f"{changed[0]}={getattr(self, changed[0])!r}: OFDM parameters only apply "
                    f"to channel in {list(OFDM_CHANNELS)}, not to channel={self.channel!r}"
                )
            return
        if self.csi == "perfect" and self.ls_interpolation != defaults["ls_interpolation"]:
            raise ValueError(
                f"ls_interpolation={self.ls_interpolation!r}: it only applies to csi='ls', "
                "not to csi='perfect'"
            )
        if self.csi == "ls":
            if self.receiver_csi_error_var != 0:
                raise ValueError(
                    f"receiver_csi_error_var={self.receiver_csi_error_var!r}: with csi='ls' "
                    "the estimation error comes from the pilots; set it to 0 or use "
                    "csi='perfect'"
                )
            if not self.pilot_ofdm_symbol_indices:
                raise ValueError(
                    "pilot_ofdm_symbol_indices=(): csi='ls' needs at least one pilot OFDM symbol"
                )

    @property
    def bits_per_symbol(self):
        """Bits per QAM symbol: 2, 4, 6 or 8."""
        return MODULATIONS[self.modulation]

    @property
    def codeword_length(self):
        """Coded bits per block, ``n`` (resolved: never ``None`` after construction)."""
        return self.n

    @property
    def code_rate(self):
        """``k / n``: info bits per coded bit (1 uncoded)."""
        return self.k / self.codeword_length

    @property
    def num_symbols(self):
        """Channel uses (data symbols, data resource elements on OFDM) per block, ``n / m``."""
        return self.codeword_length // self.bits_per_symbol

    @property
    def is_ofdm(self):
        """Whether ``channel`` is an OFDM model (a resource grid per slot)."""
        return self.channel in OFDM_CHANNELS

    @property
    def num_data_ofdm_symbols(self):
        """OFDM symbols of a slot that carry data (``None`` on flat channels)."""
        if not self.is_ofdm:
            return None
        return self.num_ofdm_symbols - len(self.pilot_ofdm_symbol_indices)

    @property
    def grid_fft_size(self):
        """Subcarriers of a slot: ``fft_size``, or the fewest that hold a block (``None`` flat)."""
        if not self.is_ofdm:
            return None
        if self.fft_size is not None:
            return self.fft_size
        return -(-self.num_symbols // self.num_data_ofdm_symbols)

    @property
    def data_resource_elements_per_slot(self):
        """Data resource elements of a slot, ``num_data_ofdm_symbols * grid_fft_size``."""
        if not self.is_ofdm:
            return None
        return self.num_data_ofdm_symbols * self.grid_fft_size

    @property
    def slots_per_block(self):
        """Slots a block occupies, ``ceil(num_symbols / data_resource_elements_per_slot)``."""
        if not self.is_ofdm:
            return None
        return -(-self.num_symbols // self.data_resource_elements_per_slot)

    @property
    def resource_elements_per_block(self):
        """Resource elements a block occupies: data, pilots and the empty rest of its last slot.

        ``slots_per_block * num_ofdm_symbols * grid_fft_size`` on OFDM;
        :attr:`num_symbols` on flat channels (no overhead).
        """
        if not self.is_ofdm:
            return self.num_symbols
        return self.slots_per_block * self.num_ofdm_symbols * self.grid_fft_size

    @property
    def pilot_resource_elements_per_block(self):
        """Pilot resource elements per block (0 on flat channels)."""
        if not self.is_ofdm:
            return 0
        return self.slots_per_block * len(self.pilot_ofdm_symbol_indices) * self.grid_fft_size
