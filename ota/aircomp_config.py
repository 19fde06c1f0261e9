"""The configuration of analog over-the-air aggregation (:mod:`airinfer.ota.aircomp`).

Its vocabulary (channels, backends) and :class:`AirCompConfig`, whose checks
refuse at construction every value, and every field without effect, that
would otherwise fail or be ignored deep inside a jitted program.
"""

import dataclasses

from airinfer.ota._checks import (
    check_bool_field,
    check_choice,
    check_k_factor,
    check_nonnegative,
    check_positive,
    check_positive_int,
    refuse_changed,
)
from airinfer.ota.combining import COMBINERS
from airinfer.ota.precoding import POWER_CONSTRAINTS, PRECODINGS, check_power_constraint
from airinfer.phy import channels

__all__ = ["FLAT_CHANNELS", "OFDM_CHANNELS", "CHANNELS", "BACKENDS", "AirCompConfig"]

FLAT_CHANNELS = ("awgn", "rayleigh", "rician")
OFDM_CHANNELS = tuple(channels.OFDM_MODELS)
CHANNELS = FLAT_CHANNELS + OFDM_CHANNELS
#: Channels whose gain on one antenna is CN(0, 1), |g|^2 ~ Exp(1). Not the OFDM models:
#: their links are normalised per draw over the grid, which on a few subcarriers
#: leaves |g|^2 close to 1 (measured on TDL-A: P(|g|^2 >= 0.1) = 0.9995, not e^-0.1).
RAYLEIGH_CHANNELS = ("rayleigh",)
BACKENDS = ("sionna", "jax")


# Fields that only mean something on OFDM channels, with their defaults.
_OFDM_FIELDS = (
    "num_ofdm_symbols", "fft_size", "subcarrier_spacing", "delay_spread", "carrier_frequency",
    "speed",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AirCompConfig:
    """Configuration of analog over-the-air aggregation; hashable (a static jit argument).

    A field that would have no effect is refused (a K-factor off Rician fading,
    OFDM parameters on flat channels, a threshold without truncated
    inversion, a prior energy without LMMSE de-noising, several antennas or
    CSI errors on AWGN, the LMMSE combiner on one antenna). ``precoding`` is the
    exception: it names the devices' policy for every channel of a sweep and
    is ignored on AWGN, where everybody sends at full power.

    Parameters:
        channel: ``"awgn"``, ``"rayleigh"``, ``"rician"`` (flat block fading,
            one draw per inference) or an OFDM model of ``phy.channels``
            (``"tdl-a"`` … ``"cdl-e"``; values on subcarriers, precoding per
            resource element).
        precoding: the devices' policy (:mod:`airinfer.ota.precoding`):
            ``"truncated"`` (truncated channel inversion), ``"full"``
            (inversion aligned to the weakest device), ``"phase"`` (phase-only
            compensation) or ``"optimal"`` (the threshold-structured MSE-optimal
            power control of Cao, Zhu, Xu and Huang, IEEE TWC 2020: inversion
            above an optimised threshold, full power below, with the denoising
            factor optimised).
        power: P > 0, per-device average energy per complex symbol over the block.
        power_constraint: ``"peak"``: ``P`` bounds every block's energy per
            symbol; ``"average"``: ``P`` bounds its average over the fading
            (truncated inversion only, on ``"rayleigh"`` with one antenna,
            where ``|g|^2`` is exponential;
            :func:`~airinfer.ota.precoding.truncated_inversion_amplitude`).
        threshold: > 0, gain threshold on ``|g|^2`` of truncated inversion.
        num_rx_ant: receive antennas M >= 1.
        combiner: how the receiver combines its M antennas into one stream
            (unit norm): ``"eigen"`` (dominant eigenvector of ``sum_k h_k h_k^H``,
            :func:`~airinfer.ota.combining.eigen_combiner`) or ``"lmmse"`` (the
            beamformer of least aggregation MSE with the devices' optimal
            scalars set against it, :func:`~airinfer.ota.combining.lmmse_combiner`;
            pair it with ``precoding="optimal"``). Needs M >= 2.
        k_factor: Rician K-factor (linear), > 0 on ``"rician"`` (0 would be
            Rayleigh fading), 0 on every other channel.
        device_csi_error_var: variance of the devices' channel-estimation error:
            they precode with ``g + e``, ``e ~ CN(0, device_csi_error_var)`` (the
            receiver attributes to each the amplitude it meant to deliver).
        repetitions: R >= 1, the block is sent R times and averaged (noise ``no / R``).
        lmmse_denoising: the receiver scales the zero-forced sum by the scalar
            LMMSE de-noising factor ``A^2 E / (A^2 E + no)`` (it shrinks the
            estimate towards 0 at low SNR), instead of dividing by ``A`` alone.
            A receiver-side scalar, independent of ``combiner`` and ``precoding``.
        lmmse_prior_energy: the prior energy ``E`` per complex symbol of the
            normalised average that ``lmmse_denoising`` assumes (1 = the bound
            every device meets); only with ``lmmse_denoising``.
        local_device: device 0 is the receiver (its values never cross the channel).
        backend: ``"sionna"`` (Sionna's channels through the bridge) or ``"jax"``
            (the JAX twins, OFDM models included).
        num_ofdm_symbols, fft_size: the OFDM grid; ``fft_size=None`` takes the
            fewest subcarriers that hold the block. Values fill resource
            elements in order (OFDM symbol-major); the rest of the grid is empty.
        subcarrier_spacing, delay_spread, carrier_frequency, speed: OFDM channel
            parameters (Hz, s, Hz, m/s), as in ``phy.channels.ofdm_mac``.
    """

    channel: str = "rayleigh"
    precoding: str = "truncated"
    power: float = 1.0
    power_constraint: str = "peak"
    threshold: float = 0.1
    num_rx_ant: int = 1
    combiner: str = "eigen"
    k_factor: float = 0.0
    device_csi_error_var: float = 0.0
    repetitions: int = 1
    lmmse_denoising: bool = False
    lmmse_prior_energy: float = 1.0
    local_device: bool = False
    backend: str = "sionna"
    num_ofdm_symbols: int = 1
    fft_size: int | None = None
    subcarrier_spacing: float = 30e3
    delay_spread: float = 100e-9
    carrier_frequency: float = 3.5e9
    speed: float = 0.0

    def __post_init__(self):
        check_choice("channel", self.channel, CHANNELS)
        check_choice("precoding", self.precoding, PRECODINGS)
        check_positive("power", self.power)
        check_choice("power_constraint", self.power_constraint, POWER_CONSTRAINTS)
        check_positive("threshold", self.threshold)
        check_positive_int("num_rx_ant", self.num_rx_ant)
        check_choice("combiner", self.combiner, COMBINERS)
        check_nonnegative("k_factor", self.k_factor)
        check_nonnegative("device_csi_error_var", self.device_csi_error_var)
        check_positive_int("repetitions", self.repetitions)
        check_bool_field(self, "lmmse_denoising")
        check_positive("lmmse_prior_energy", self.lmmse_prior_energy)
        check_bool_field(self, "local_device")
        check_choice("backend", self.backend, BACKENDS)
        check_positive_int("num_ofdm_symbols", self.num_ofdm_symbols)
        if self.fft_size is not None:
            check_positive_int("fft_size", self.fft_size)
        for name in ("subcarrier_spacing", "delay_spread", "carrier_frequency"):
            check_positive(name, getattr(self, name))
        check_nonnegative("speed", self.speed)
        self._refuse_fields_without_effect()

    def _refuse_fields_without_effect(self):
        check_k_factor(self.channel, self.k_factor)
        if not self.is_ofdm:
            refuse_changed(
                self, _OFDM_FIELDS,
                f"OFDM parameters only apply to {OFDM_CHANNELS}, not to channel={self.channel!r}",
            )  # fmt: skip
        if self.precoding != "truncated":
            refuse_changed(
                self, ("threshold",),
                f"it only applies to precoding='truncated', not to {self.precoding!r}",
            )  # fmt: skip
        if not self.lmmse_denoising:
            refuse_changed(
                self, ("lmmse_prior_energy",), "it only applies with lmmse_denoising=True"
            )
        if self.channel == "awgn":
            refuse_changed(
                self, ("num_rx_ant", "device_csi_error_var"),
                "channel='awgn' has no fading (one stream, no channel to estimate)",
            )  # fmt: skip
        if self.num_rx_ant == 1:
            refuse_changed(self, ("combiner",), "one antenna (num_rx_ant=1) has nothing to combine")
        if self.power_constraint == "average":
            self._check_average_power()

    def _check_average_power(self):
        """``"average"`` needs truncated inversion and a gain ``|g|^2`` known to be exponential."""
        check_power_constraint(self.power_constraint, self.precoding)
        if self.channel not in RAYLEIGH_CHANNELS or self.num_rx_ant != 1:
            raise ValueError(
                "power_constraint='average' needs the devices' gain |g|^2 exponential for "
                "its closed form P / E1(threshold): channel='rayleigh' with num_rx_ant=1; "
                f"got channel={self.channel!r}, num_rx_ant={self.num_rx_ant}"
            )

    @property
    def mean_gain(self):
        """Mean of the devices' estimates of ``|g|^2``: ``1 + device_csi_error_var``."""
        return 1.0 + self.device_csi_error_var

    @property
    def is_ofdm(self):
        return self.channel in OFDM_CHANNELS
