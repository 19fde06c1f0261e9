"""Over-the-air computation for edge ensembles: analog aggregation over the MAC,
digital orthogonal baselines, partial connectivity, differential privacy, cost.

A typical over-the-air belief sum::

    import jax, jax.numpy as jnp
    from airinfer import ota

    probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (1000, 8, 10)))  # [N, K, C]
    config = ota.AirCompConfig(channel="rayleigh", precoding="truncated", backend="jax")
    estimate = ota.over_the_air_average(
        jax.random.key(1), probs, 10.0, config, ota.Normalization.simplex(10), num_devices=8)
    labels = estimate.decision  # [N]; ota.NO_DECISION where the estimate is not finite

The devices are the second-to-last axis, checked against ``num_devices`` when
given (members' outputs come ``[K, N, C]``: ``np.moveaxis(logits, 0, 1)``). An
SNR list or 1-D array is a sweep: ``snr_db=[0, 10, 20]`` gives ``average``
``[3, N, C]``. NaN or inf in the values or SNRs is refused where the call is
not traced; under ``jit`` ``estimate.decision`` flags it.

Majority vote: send ``ota.one_hot_votes(probs)`` with the same normalisation;
sign vote: ``ota.sign_votes(probs)`` with ``ota.Normalization.signs(10)``. The
payloads (``softmax``, ``vote``, ``sign``) and schemes (``ota_belief``,
``ota_vote``, ``ota_sign``, ``orthogonal``) are named once, in
:mod:`airinfer.ota.ensemble`, whose :func:`ensemble_over_the_air` (encode, draw who
joins, aggregate) the edge-ensemble strategy and the experiments share.
``ota`` imports only ``phy`` (and jax, numpy, scipy).
"""

from airinfer.ota.aircomp import (
    CHANNELS,
    FLAT_CHANNELS,
    OFDM_CHANNELS,
    AirCompConfig,
    AirCompEstimate,
    noise_power,
    over_the_air_average,
    receiver_estimate,
)
from airinfer.ota.combining import (
    COMBINERS,
    effective_channel,
    eigen_combiner,
    lmmse_combiner,
    receive_combiner,
)
from airinfer.ota.connectivity import participation_mask
from airinfer.ota.cost import channel_uses, payload_bits
from airinfer.ota.encoding import (
    NO_DECISION,
    Normalization,
    check_finite,
    decide,
    denormalize,
    normalize,
    num_channel_uses,
    one_hot_votes,
    sign_votes,
    symbols_to_values,
    values_to_symbols,
)
from airinfer.ota.ensemble import (
    OVER_THE_AIR_SCHEMES,
    PAYLOADS,
    SCHEME_PAYLOADS,
    SCHEMES,
    encode_payload,
    ensemble_over_the_air,
    over_the_air_scheme,
)
from airinfer.ota.orthogonal import (
    DEFAULT_BLER_GRID_DB,
    MODES,
    ORTHOGONAL_CHANNELS,
    BlerTable,
    OrthogonalConfig,
    OrthogonalEstimate,
    bler_at,
    channel_power_gains,
    effective_snr_db,
    measure_bler_table,
    orthogonal_average,
)
from airinfer.ota.precoding import (
    POWER_CONSTRAINTS,
    PRECODINGS,
    Precoding,
    aggregation_mse,
    full_channel_inversion,
    optimal_denoising_factor,
    optimal_power_control,
    phase_compensation,
    precode,
    truncated_channel_inversion,
    truncated_inversion_amplitude,
)
from airinfer.ota.privacy import (
    SOFTMAX_SENSITIVITY,
    OverTheAirPrivacyPlan,
    achieved_epsilon,
    add_gaussian_noise,
    aggregate_channel_noise_variance,
    analytic_gaussian_delta,
    analytic_gaussian_epsilon,
    analytic_gaussian_sigma,
    classical_gaussian_sigma,
    noisy_value_scale,
    orthogonal_dp_noise_variance,
    over_the_air_dp_noise_variance,
    over_the_air_privacy_plan,
    project_to_simplex,
)

__all__ = [
    # aggregation over the air
    "CHANNELS", "FLAT_CHANNELS", "OFDM_CHANNELS", "AirCompConfig", "AirCompEstimate",
    "noise_power", "over_the_air_average", "receiver_estimate",
    # what devices send
    "Normalization", "normalize", "denormalize", "num_channel_uses", "values_to_symbols",
    "symbols_to_values", "one_hot_votes", "sign_votes", "decide", "NO_DECISION", "check_finite",
    # device pre-processing and receive combining
    "PRECODINGS", "POWER_CONSTRAINTS", "Precoding", "truncated_inversion_amplitude",
    "truncated_channel_inversion", "full_channel_inversion",
    "phase_compensation", "optimal_denoising_factor", "optimal_power_control", "precode",
    "aggregation_mse", "COMBINERS", "eigen_combiner", "lmmse_combiner", "receive_combiner",
    "effective_channel",
    # connectivity
    "participation_mask",
    # orthogonal digital baseline
    "MODES", "ORTHOGONAL_CHANNELS", "DEFAULT_BLER_GRID_DB", "OrthogonalConfig",
    "OrthogonalEstimate", "BlerTable", "measure_bler_table", "bler_at", "channel_power_gains",
    "effective_snr_db",
    "orthogonal_average",
    # an ensemble over the air: payloads, schemes, the one path
    "PAYLOADS", "SCHEME_PAYLOADS", "OVER_THE_AIR_SCHEMES", "SCHEMES", "over_the_air_scheme",
    "encode_payload", "ensemble_over_the_air",
    # cost
    "channel_uses", "payload_bits",
    # privacy
    "SOFTMAX_SENSITIVITY", "analytic_gaussian_delta", "analytic_gaussian_sigma",
    "analytic_gaussian_epsilon", "classical_gaussian_sigma", "achieved_epsilon",
    "aggregate_channel_noise_variance",
    "over_the_air_dp_noise_variance", "orthogonal_dp_noise_variance", "add_gaussian_noise",
    "project_to_simplex", "noisy_value_scale", "OverTheAirPrivacyPlan", "over_the_air_privacy_plan",
]  # fmt: skip
