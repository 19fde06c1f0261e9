"""An ensemble over the air: what each device sends, the aggregation schemes, one path.

The vocabulary of ensembles that aggregate over the air, defined once here:

* **payloads** (:data:`PAYLOADS`), what each device sends: ``softmax``, its
  softmax outputs (the belief sum); ``vote``, a one-hot vote for its top class
  (the majority vote); ``sign``, a ±1 vote per class (:func:`encode_payload`).
* **schemes** (:data:`SCHEMES`): one payload over the air, ``ota_belief``,
  ``ota_vote`` or ``ota_sign`` (:data:`SCHEME_PAYLOADS`), or the digital
  ``orthogonal`` baseline (:mod:`airinfer.ota.orthogonal`), whose channel uses
  :mod:`airinfer.ota.cost` counts.

:func:`ensemble_over_the_air` is the one path from the members' softmax
outputs to the receiver's estimate: encode the payloads, draw which
neighbours join (:func:`airinfer.ota.connectivity.participation_mask`), aggregate over
the air (:func:`airinfer.ota.aircomp.over_the_air_average`). The edge-ensemble strategy
and the over-the-air experiments both take it.
"""

import jax.numpy as jnp

from airinfer.ota._checks import check_choice
from airinfer.ota._inputs import broadcast_batch, device_values, sweep
from airinfer.ota.aircomp import AirCompEstimate, _average
from airinfer.ota.connectivity import participation_mask
from airinfer.ota.encoding import Normalization, one_hot_votes, sign_votes

__all__ = [
    "PAYLOADS",
    "SCHEME_PAYLOADS",
    "OVER_THE_AIR_SCHEMES",
    "SCHEMES",
    "over_the_air_scheme",
    "encode_payload",
    "ensemble_over_the_air",
]

PAYLOADS = ("softmax", "vote", "sign")
#: The over-the-air scheme of each payload.
SCHEME_PAYLOADS = {"ota_belief": "softmax", "ota_vote": "vote", "ota_sign": "sign"}
OVER_THE_AIR_SCHEMES = tuple(SCHEME_PAYLOADS)
SCHEMES = OVER_THE_AIR_SCHEMES + ("orthogonal",)


def over_the_air_scheme(payload: str) -> str:
    """The scheme that sends ``payload`` over the air (``"softmax"`` -> ``"ota_belief"``)."""
    check_choice("payload", payload, PAYLOADS)
    return next(scheme for scheme, sent in SCHEME_PAYLOADS.items() if sent == payload)


def encode_payload(probs, payload: str):
    """What the devices send, and the normalisation the receiver knows.

    Input:
        probs: ``[..., K, C]`` the members' softmax outputs.
        payload: one of :data:`PAYLOADS`.

    Output:
        ``(values, normalization)``: ``values`` ``[..., K, C]`` float32 (the
        softmax outputs, one-hot votes or ±1 sign votes) and the
        :class:`airinfer.ota.encoding.Normalization` they are sent with
        (:meth:`~airinfer.ota.encoding.Normalization.simplex` for softmax outputs and
        one-hot votes, :meth:`~airinfer.ota.encoding.Normalization.signs` for signs).
    """
    check_choice("payload", payload, PAYLOADS)
    num_classes = jnp.shape(probs)[-1]
    if payload == "softmax":
        return probs, Normalization.simplex(num_classes)
    if payload == "vote":
        return one_hot_votes(probs), Normalization.simplex(num_classes)
    return sign_votes(probs), Normalization.signs(num_classes)


def ensemble_over_the_air(
    key_air, key_join, probs, snr_db, config, payload: str = "softmax", connectivity=1.0,
    num_devices=None,
) -> AirCompEstimate:  # fmt: skip
    """The receiver's estimate of the average payload of an ensemble's devices.

    Device 0 always joins; each other device joins with probability
    ``connectivity``, independently per inference.

    Input:
        key_air: JAX PRNG key of the channel (fading and noise).
        key_join: JAX PRNG key of who joins (two keys, so that every caller
            keeps its own key layout and its numbers).
        probs: ``[..., K, C]`` the members' softmax outputs, the devices second
            to last (members' outputs ``[K, N, C]`` go in as
            ``np.moveaxis(probs, 0, 1)``); every leading dimension is a batch
            dimension (one inference each). NaN or inf is refused where concrete.
        snr_db: Es/N0 per complex symbol in dB of one device at full power
            through a unit-average-gain channel (noise CN(0, no),
            ``no = P 10^(-snr_db/10)``): a scalar, ``[S]`` (a sweep: the output
            gains a leading axis S, each point drawing its own joins and
            channels) or an array of two or more dimensions broadcastable to
            the batch.
        config: :class:`airinfer.ota.aircomp.AirCompConfig` (static under ``jax.jit``).
        payload: one of :data:`PAYLOADS`.
        connectivity: probability in [0, 1] that a neighbour joins, scalar or
            broadcastable to the batch.
        num_devices: optional K, checked against ``probs.shape[-2]``.

    Output:
        :class:`airinfer.ota.aircomp.AirCompEstimate`: ``average`` ``[B..., C]``
        (the decision is :attr:`~airinfer.ota.aircomp.AirCompEstimate.decision`,
        its argmax where finite) and ``num_active`` ``[B...]``, ``B...`` the
        broadcast of ``probs.shape[:-2]`` and the SNR's shape (``[S, ...]``
        for a sweep).
    """
    check_choice("payload", payload, PAYLOADS)
    probs, snr_db = sweep(device_values(probs, num_devices, "probs"), snr_db)
    values, normalization = encode_payload(probs, payload)
    batch = broadcast_batch(values, snr_db)
    joined = participation_mask(key_join, batch, values.shape[-2], connectivity)
    return _average(key_air, values, snr_db, config, normalization, joined)
