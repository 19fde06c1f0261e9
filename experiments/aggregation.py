"""Accuracy of an ensemble whose members' outputs are aggregated over a channel.

Shared by the over-the-air experiments. A sweep curve is one jitted call: the
SNR points run through ``jax.lax.map`` (it works across the Sionna bridge,
unlike ``vmap``) and, at each point, all channel draws of all test samples
form one batch, so there is no Python loop over samples or draws.

Non-finite values never decide: the members' outputs and the SNRs are refused
when they hold NaN or inf (:func:`airinfer.ota.encoding.check_finite`), and
inside the jitted sweep an estimate that is not finite gets no decision
(:func:`airinfer.ota.encoding.decide`): it counts as wrong, a warning line
names the points where that happened, and with ``return_undecided`` the
curves return how many inferences of each point got no decision (the
experiments' ``undecided`` column).

The members' outputs go in as ``[N, K, C]`` (test samples, devices, classes),
checked against the labels' N and, when given, ``num_devices``: members'
outputs come member-first, ``[K, N, C]`` (:func:`airinfer.models.ensemble_logits`).
The checks and the channel-free references (softmax, perfect aggregation, the
best member, macro-F1) live in :mod:`airinfer.experiments.ensemble_scores`.

Over the air, a curve takes the path of the edge-ensemble strategy,
:func:`airinfer.ota.ensemble.ensemble_over_the_air`, with the scheme names of
:mod:`airinfer.ota.ensemble` (``ota_belief``, ``ota_vote``, ``ota_sign``).

Sharding. A curve whose channel draws are all JAX (``backend="jax"``: the flat
channels, and the OFDM ones through their 38.901 twin; and the ideal curve)
runs its Monte-Carlo axis, SNR points x draws, through
:func:`airinfer.experiments.sharding.map_indices` over ``devices`` devices:
draw ``d`` of point ``s`` is global index ``s * draws + d`` with key
``fold_in(key, index)`` and decides every test sample; the correct decisions are
counted after gathering, so the accuracies are the same for any number of
devices. A curve that draws through Sionna (``backend="sionna"``) cannot cross
JAX devices: it runs on one device as before, point ``s`` drawing all its draws
at once with ``fold_in(key, s)``, and ``devices`` does not change it.
"""

import functools
import logging
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.experiments import sharding
from airinfer.experiments.ensemble_scores import (
    best_single_member,
    check_draws,
    checked_array,
    checked_outputs,
    checked_sweep,
    macro_f1,
    noiseless_accuracy,
    softmax,
)
from airinfer.ota.aircomp import over_the_air_average
from airinfer.ota.connectivity import participation_mask
from airinfer.ota.encoding import (
    NO_DECISION,
    decide,
    normalize,
    num_channel_uses,
)
from airinfer.ota.ensemble import SCHEME_PAYLOADS, ensemble_over_the_air
from airinfer.ota.orthogonal import measure_bler_table, orthogonal_average
from airinfer.ota.privacy import add_gaussian_noise, project_to_simplex

__all__ = [
    "Curve",
    "softmax",
    "curve_key",
    "ota_accuracy_curve",
    "orthogonal_accuracy_curve",
    "ideal_accuracy_curve",
    "private_estimate",
    "private_accuracy_curve",
    "noiseless_accuracy",
    "best_single_member",
    "macro_f1",
]


_log = logging.getLogger(__name__)


class Curve(NamedTuple):
    """Accuracies of a sweep and, per point, the inferences that got no decision.

    Attributes:
        accuracy: ``[S]`` float in [0, 1].
        undecided: ``[S]`` int, inferences (test sample x draw) whose estimate
            was not finite (:func:`airinfer.ota.encoding.decide`); they count as wrong.
    """

    accuracy: np.ndarray
    undecided: np.ndarray


def _curve(what, correct, undecided, points, inferences, return_undecided):
    """The accuracies (and with ``return_undecided`` the :class:`Curve`); reports undecided."""
    undecided = np.asarray(undecided, np.int64)
    _report_undecided(what, undecided, points, inferences)
    accuracy = np.asarray(correct) / inferences
    return Curve(accuracy, undecided) if return_undecided else accuracy


def _report_undecided(what, undecided, points, inferences):
    """One warning line per point where non-finite estimates got no decision."""
    for point, count in zip(np.atleast_1d(points), np.atleast_1d(undecided), strict=True):
        if count:
            _log.warning(
                "%s at %s: %d of %d estimates were not finite and got no decision "
                "(counted as wrong)", what, point, int(count), inferences,
            )  # fmt: skip


def _correct_and_undecided(decisions, labels):
    return (
        jnp.sum(decisions == labels).astype(jnp.int32),
        jnp.sum(decisions == NO_DECISION).astype(jnp.int32),
    )


def curve_key(seed, *parts):
    """A key for one curve from the run's seed and names, independent of sweep order."""
    tag = zlib.crc32("/".join(str(p) for p in parts).encode())
    return jax.random.fold_in(jax.random.key(seed), tag)


def _runs_on_jax(config) -> bool:
    """Whether a link's draws are all JAX (then its curve can be sharded over devices).

    With ``backend="jax"`` every channel is, the OFDM ones through the TDL/CDL twin
    (:mod:`airinfer.phy.channels.tr38901`).
    """
    return config.backend == "jax"


def _sharded_counts(unit, key, num_points, draws, devices, *args):
    """``(correct [S], undecided [S])`` int of ``unit`` over S points x ``draws``, sharded.

    ``unit(key, index, *args)`` decides one draw of every test sample (index
    ``s * draws + d``) and returns its two counts; they are summed per point
    after gathering, exactly.
    """
    correct, undecided = sharding.map_indices(
        unit, key, num_points * draws, *args, devices=devices, chunk=draws
    )
    return (
        correct.reshape(num_points, draws).sum(axis=1),
        undecided.reshape(num_points, draws).sum(axis=1),
    )


def _ota_unit(key, index, probs, labels, snr_db, connectivity, *, scheme, config, draws):
    """One draw over the air of every test sample: its correct and undecided counts."""
    point = index // draws
    key_link, key_join = jax.random.split(key)
    estimate = ensemble_over_the_air(
        key_link, key_join, probs, snr_db[point], config, SCHEME_PAYLOADS[scheme],
        connectivity[point],
    )  # fmt: skip
    return _correct_and_undecided(decide(estimate.average), labels)


@functools.cache
def _ota_unit_of(scheme, config, draws):
    # one function object per curve kind, so the sharded program compiles once
    return functools.partial(_ota_unit, scheme=scheme, config=config, draws=draws)


@functools.partial(jax.jit, static_argnames=("scheme", "config", "draws"))
def _correct_counts(key, probs, labels, snr_db, connectivity, *, scheme, config, draws):
    """Correct decisions at each SNR point: ``[S]`` int32 counts over ``draws x N`` inferences."""
    probs = jnp.broadcast_to(probs, (draws, *probs.shape))  # [draws, N, K, C]

    def one_point(args):
        index, snr, p = args
        point_key = jax.random.fold_in(key, index)
        key_link, key_join = jax.random.split(point_key)
        estimate = ensemble_over_the_air(
            key_link, key_join, probs, snr, config, SCHEME_PAYLOADS[scheme], p
        )
        return _correct_and_undecided(decide(estimate.average), labels)

    indices = jnp.arange(snr_db.shape[0])
    return jax.lax.map(one_point, (indices, snr_db, connectivity))


def ota_accuracy_curve(
    key, probs, labels, snr_db, *, scheme, config, draws, connectivity=1.0, devices=None,
    num_devices=None, return_undecided=False,
):  # fmt: skip
    """Accuracy of over-the-air aggregation at each point of a sweep.

    Input:
        key: JAX PRNG key of the curve: on the JAX channels draw d of point s
            uses ``fold_in(key, s * draws + d)``, sharded over ``devices``; through
            Sionna point s uses ``fold_in(key, s)`` on one device (see the module).
        probs: ``[N, K, C]`` the members' softmax outputs on N test samples
            (members' outputs ``[K, N, C]`` go in as ``np.moveaxis(probs, 0, 1)``).
        labels: ``[N]`` int.
        snr_db: scalar or ``[S]``, Es/N0 per complex symbol in dB (see
            :mod:`airinfer.ota.aircomp`).
        scheme: ``"ota_belief"``, ``"ota_vote"`` or ``"ota_sign"``.
        config: :class:`airinfer.ota.aircomp.AirCompConfig`.
        draws: channel draws per test sample.
        connectivity: ``[S]`` or scalar, the probability that each neighbour joins.
        devices: how many devices share the draws (None: all; JAX channels only).
        num_devices: optional K, checked against ``probs.shape[1]``.
        return_undecided: also return the inferences that got no decision.

    Output:
        ``[S]`` float accuracies in [0, 1] over ``draws x N`` inferences; with
        ``return_undecided``, a :class:`Curve` (accuracies and undecided counts).
        NaN or inf in ``probs``, ``snr_db`` or ``connectivity`` is refused; an
        estimate that turns non-finite inside the jitted sweep counts as wrong
        and undecided, and a warning line names its point.
    """
    if scheme not in SCHEME_PAYLOADS:
        raise ValueError(f"scheme must be one of {tuple(SCHEME_PAYLOADS)}, got {scheme!r}")
    check_draws(draws)
    snr_db = checked_sweep("snr_db", snr_db)
    connectivity = np.broadcast_to(checked_array("connectivity", connectivity), snr_db.shape)
    probs, labels = checked_outputs("probs", probs, labels, num_devices)
    probs = jnp.asarray(probs)
    if _runs_on_jax(config):
        counts, undecided = _sharded_counts(
            _ota_unit_of(scheme, config, draws), key, len(snr_db), draws, devices,
            probs, jnp.asarray(labels), snr_db, np.ascontiguousarray(connectivity),
        )  # fmt: skip
    else:
        counts, undecided = _correct_counts(
            key, probs, jnp.asarray(labels), snr_db, connectivity,
            scheme=scheme, config=config, draws=draws,
        )  # fmt: skip
    return _curve(f"{scheme}: snr_db", counts, undecided, snr_db, draws * len(labels),
                  return_undecided)  # fmt: skip


@functools.partial(jax.jit, static_argnames=("config", "draws"))
def _orthogonal_correct_counts(key, probs, labels, snr_db, table, *, config, draws):
    values = jnp.broadcast_to(probs, (draws, *probs.shape))

    def one_point(args):
        index, snr = args
        estimate = orthogonal_average(
            jax.random.fold_in(key, index), values, snr, config, bler_table=table
        )
        return _correct_and_undecided(decide(estimate.average), labels)

    return jax.lax.map(one_point, (jnp.arange(snr_db.shape[0]), snr_db))


def _orthogonal_unit(key, index, probs, labels, snr_db, table, *, config, draws):
    """One draw of the orthogonal baseline for every test sample: its two counts."""
    estimate = orthogonal_average(key, probs, snr_db[index // draws], config, bler_table=table)
    return _correct_and_undecided(decide(estimate.average), labels)


@functools.cache
def _orthogonal_unit_of(config, draws):
    return functools.partial(_orthogonal_unit, config=config, draws=draws)


def orthogonal_accuracy_curve(
    key, probs, labels, snr_db, *, config, draws, devices=None, num_devices=None,
    return_undecided=False,
):  # fmt: skip
    """Accuracy of the digital orthogonal baseline (softmax outputs quantised and coded).

    As :func:`ota_accuracy_curve`, with ``config`` an
    :class:`airinfer.ota.orthogonal.OrthogonalConfig` in ``"abstraction"`` mode: the
    block-error table of its link is measured once (and cached) before the
    jitted sweep (through Sionna's decoder, on one device); the sweep itself,
    table look-ups on JAX channel draws, is sharded over ``devices`` when the
    channel runs on JAX.
    """
    check_draws(draws)
    snr_db = checked_sweep("snr_db", snr_db)
    probs, labels = checked_outputs("probs", probs, labels, num_devices)
    table = measure_bler_table(config.link(probs.shape[-1]))
    if _runs_on_jax(config) and config.mode == "abstraction":
        counts, undecided = _sharded_counts(
            _orthogonal_unit_of(config, draws), key, len(snr_db), draws, devices,
            jnp.asarray(probs), jnp.asarray(labels), snr_db, table,
        )  # fmt: skip
    else:
        counts, undecided = _orthogonal_correct_counts(
            key, jnp.asarray(probs), jnp.asarray(labels), snr_db, table, config=config,
            draws=draws,
        )  # fmt: skip
    return _curve("orthogonal: snr_db", counts, undecided, snr_db, draws * len(labels),
                  return_undecided)  # fmt: skip


def _ideal_unit(key, index, probs, labels, connectivity, *, draws):
    """One draw of who joins, for every test sample: its two counts."""
    mask = participation_mask(key, probs.shape[:1], probs.shape[1], connectivity[index // draws])
    average = jnp.einsum("...k,...kc->...c", mask, probs) / jnp.sum(mask, -1, keepdims=True)
    return _correct_and_undecided(decide(average), labels)


@functools.cache
def _ideal_unit_of(draws):
    return functools.partial(_ideal_unit, draws=draws)


def ideal_accuracy_curve(
    key, probs, labels, connectivity, *, draws, devices=None, num_devices=None,
    return_undecided=False,
):  # fmt: skip
    """Accuracy of perfect aggregation when each neighbour joins with probability ``p``.

    ``probs`` ``[N, K, C]``; device 0 always joins and the participants' softmax
    outputs are averaged exactly. ``connectivity`` ``[P]`` -> ``[P]`` accuracies.
    All JAX: draw d of point p uses ``fold_in(key, p * draws + d)``, sharded over
    ``devices`` (None: all). ``num_devices`` and ``return_undecided`` as in
    :func:`ota_accuracy_curve`.
    """
    check_draws(draws)
    connectivity = checked_sweep("connectivity", connectivity)
    probs, labels = checked_outputs("probs", probs, labels, num_devices)
    counts, undecided = _sharded_counts(
        _ideal_unit_of(draws), key, len(connectivity), draws, devices,
        jnp.asarray(probs), jnp.asarray(labels), connectivity,
    )  # fmt: skip
    return _curve("ideal: connectivity", counts, undecided, connectivity, draws * len(labels),
                  return_undecided)  # fmt: skip


def private_estimate(key, values, snr_db, dp_std, low, high, table, *, config, normalization):
    """The receiver's estimate of the average when every device releases its values under DP.

    Each device projects its values onto the simplex (the sensitivity √2 of
    the accounting, enforced; :func:`airinfer.ota.privacy.project_to_simplex`),
    adds Gaussian noise of std ``dp_std`` per entry, and sends the result. To
    keep one compiled function for every privacy level, devices map their
    noisy values affinely by ``(low, high)`` (known to the receiver) onto the
    range the static config expects, and the receiver maps back:

    * over the air, ``(0, stretch)``: the fixed map ``normalization`` (which must
      not clip: nothing may shrink the noisy values) with its scale multiplied
      by ``stretch``;
    * orthogonally, the quantiser's range ``(low, high)`` onto its [0, 1]
      (clipping there is post-processing of each device's own DP release).

    Input:
        values: ``[..., K, C]``; ``dp_std``, ``low``, ``high``: scalars (traced).
        table: the orthogonal link's BLER table, or ``None`` over the air.

    Output:
        ``(average [..., C], over_budget [...] )``: the estimated average (K
        times it is the released sum) and, over the air, how many devices'
        blocks exceeded their power budget (energy per symbol above 1); zeros
        orthogonally, where the digital symbols have a fixed power.
    """
    clean = project_to_simplex(values)
    noisy = add_gaussian_noise(key[0], clean, dp_std**2)
    if table is not None:
        unit = (noisy - low) / (high - low)  # the quantiser's [0, 1]
        estimate = orthogonal_average(key[1], unit, snr_db, config, bler_table=table)
        return estimate.average * (high - low) + low, jnp.zeros(noisy.shape[:-2], jnp.int32)
    if normalization.clip:
        raise ValueError(
            "normalization: clip=True would shrink the noisy values after the privacy noise "
            "and change the noise the accounting assumes; pass one with clip=False"
        )
    offset = normalization.offset
    stretch = high - low
    sent = (noisy - offset) / stretch + offset
    energy = jnp.sum(normalize(sent, normalization) ** 2, axis=-1) / num_channel_uses(
        values.shape[-1]
    )
    estimate = over_the_air_average(key[1], sent, snr_db, config, normalization)
    average = (estimate.average - offset) * stretch + offset
    return average, jnp.sum(energy > 1.0, axis=-1, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=("config", "normalization", "draws"))
def _private_decisions(key, values, snr_db, dp_std, low, high, table, *, config, normalization,
                       draws):  # fmt: skip
    """Decisions ``[P, draws, N]`` and over-budget counts ``[P]``, one point per privacy level."""
    values = jnp.broadcast_to(values, (draws, *values.shape))

    def one_point(args):
        index, std, lo, hi = args
        keys = jax.random.split(jax.random.fold_in(key, index))
        average, over_budget = private_estimate(
            keys, values, snr_db, std, lo, hi, table, config=config, normalization=normalization
        )
        return decide(average), jnp.sum(over_budget)

    indices = jnp.arange(dp_std.shape[0])
    return jax.lax.map(one_point, (indices, dp_std, low, high))


def _private_unit(key, index, values, snr_db, dp_std, low, high, table, *, config,
                  normalization, draws):  # fmt: skip
    """One draw at privacy level ``index // draws``: decisions ``[N]``, over-budget count."""
    level = index // draws
    average, over_budget = private_estimate(
        jax.random.split(key), values, snr_db, dp_std[level], low[level], high[level], table,
        config=config, normalization=normalization,
    )  # fmt: skip
    return decide(average), jnp.sum(over_budget)


@functools.cache
def _private_unit_of(config, normalization, draws):
    return functools.partial(_private_unit, config=config, normalization=normalization, draws=draws)


def private_accuracy_curve(key, values, labels, snr_db, dp_std, ranges, *, config, normalization,
                           draws, devices=None, num_devices=None,
                           return_undecided=False):  # fmt: skip
    """Accuracy and macro-F1 when every device adds Gaussian DP noise before sending.

    Input:
        values: ``[N, K, C]`` what the devices send (softmax outputs or votes).
        dp_std: ``[P]`` per-entry std of each device's DP noise, one per privacy level.
        ranges: ``[P, 2]``: for an orthogonal ``config``, the quantiser range
            ``(low, high)`` of the noisy values; over the air, ``(0, stretch)``
            with ``stretch`` the factor that widens the normalisation's scale.
        config: :class:`~airinfer.ota.aircomp.AirCompConfig` or
            :class:`~airinfer.ota.orthogonal.OrthogonalConfig` (the latter with ``low=0, high=1``).
        normalization: over the air, the devices' map with ``clip=False``.
        devices: how many devices share the draws (None: all), on JAX channels:
            draw d of level p then uses ``fold_in(key, p * draws + d)``; through
            Sionna level p draws all its draws with ``fold_in(key, p)``.

        num_devices: optional K, checked against ``values.shape[1]``.
        return_undecided: also return the undecided inferences per level.

    Output:
        ``(accuracy [P], macro_f1 [P], over_budget [P])``: the last the fraction of
        device transmissions above the power budget (0 orthogonally), see
        :func:`private_estimate`; with ``return_undecided``, a fourth ``[P]``
        int: inferences whose estimate was not finite (counted as wrong).
    """
    orthogonal = not hasattr(config, "precoding")
    table = measure_bler_table(config.link(values.shape[-1])) if orthogonal else None
    ranges = np.asarray(ranges, np.float32)
    check_draws(draws)
    values, labels = checked_outputs("values", values, labels, num_devices)
    arrays = (
        jnp.asarray(values), checked_array("snr_db", np.float32(snr_db)),
        np.asarray(dp_std, np.float32), ranges[:, 0], ranges[:, 1], table,
    )  # fmt: skip
    if _runs_on_jax(config) and (not orthogonal or config.mode == "abstraction"):
        levels = len(arrays[2])
        decisions, over_budget = sharding.map_indices(
            _private_unit_of(config, normalization, draws), key, levels * draws, *arrays,
            devices=devices, chunk=draws,
        )  # fmt: skip
        decisions = decisions.reshape(levels, draws, -1)
        over_budget = over_budget.reshape(levels, draws).sum(axis=1)
    else:
        decisions, over_budget = _private_decisions(
            key, *arrays, config=config, normalization=normalization, draws=draws
        )
    decisions = np.asarray(decisions)
    undecided = np.sum(decisions == NO_DECISION, axis=(1, 2))
    _report_undecided("private: level", undecided, np.arange(len(decisions)), decisions[0].size)
    accuracy = np.mean(decisions == labels, axis=(1, 2))
    num_classes = values.shape[-1]
    f1 = [macro_f1(d, np.broadcast_to(labels, d.shape), num_classes) for d in decisions]
    transmissions = draws * values.shape[0] * values.shape[1]
    curves = (accuracy, np.asarray(f1), np.asarray(over_budget) / transmissions)
    return (*curves, undecided) if return_undecided else curves
