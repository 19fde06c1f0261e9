"""Non-finite values never decide: NaN or inf in members' outputs or SNRs, eager and jitted."""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer import ota
from airinfer.experiments import aggregation
from airinfer.ota.aircomp import AirCompConfig

N, K, C = 40, 4, 5
SIMPLEX_C = ota.Normalization.simplex(C)


def _probs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(N, K, C)).astype(np.float32)
    return aggregation.softmax(logits), rng.integers(0, C, N)


def test_a_nan_never_wins_the_decision_eager_or_jitted():
    average = np.array(
        [[0.1, np.nan, 0.2], [0.1, 0.7, 0.2], [np.inf, 0.0, 0.0], [-np.inf, -1.0, -np.inf],
         [-np.inf, -np.inf, -np.inf]],
        np.float32,
    )  # fmt: skip
    assert int(jnp.argmax(average[0])) == 1  # what a plain argmax does: the NaN wins
    # log-probabilities may hold -inf beside finite entries: those still decide
    expected = [ota.NO_DECISION, 1, ota.NO_DECISION, 1, ota.NO_DECISION]
    np.testing.assert_array_equal(ota.decide(average), expected)
    np.testing.assert_array_equal(jax.jit(ota.decide)(average), expected)


def test_check_finite_names_the_array_and_passes_traced_ones():
    with pytest.raises(ValueError, match=r"^probs: 1 of 6 values .*index \(1, 0\)"):
        ota.check_finite("probs", np.array([[0.0, 1, 2], [np.nan, 1, 2]]))
    ota.check_finite("probs", np.ones(3))
    jax.jit(lambda x: ota.check_finite("x", x) or x)(jnp.ones(3))  # traced: no refusal


def test_a_nan_in_one_members_output_is_refused_by_every_curve():
    probs, labels = _probs()
    probs[3, 2, 1] = np.nan
    key = jax.random.key(0)
    config = AirCompConfig(channel="awgn", backend="jax")
    with pytest.raises(ValueError, match="probs: 1 of"):
        aggregation.ota_accuracy_curve(
            key, probs, labels, [0.0], scheme="ota_belief", config=config, draws=1
        )
    with pytest.raises(ValueError, match="probs"):
        aggregation.ideal_accuracy_curve(key, probs, labels, [1.0], draws=1)
    with pytest.raises(ValueError, match="probs"):
        aggregation.noiseless_accuracy(probs, labels)


@pytest.mark.parametrize("snr", [np.nan, np.inf, -np.inf])
def test_a_non_finite_snr_is_refused_before_the_jitted_sweep(snr):
    probs, labels = _probs()
    config = AirCompConfig(channel="awgn", backend="jax")
    with pytest.raises(ValueError, match="snr_db"):
        aggregation.ota_accuracy_curve(
            jax.random.key(0), probs, labels, [0.0, snr], scheme="ota_belief", config=config,
            draws=1,
        )  # fmt: skip


def test_non_finite_estimates_inside_the_jitted_sweep_count_as_wrong_and_are_reported(
    monkeypatch, caplog
):
    """A NaN that appears inside the traced sweep (no eager check can see it) never wins."""
    probs, labels = _probs()
    labels = np.zeros(N, np.int64)  # a NaN at class 0 would win every plain argmax
    config = AirCompConfig(channel="awgn", backend="jax")
    real = aggregation.ensemble_over_the_air

    def poisoned(key_air, key_join, probs, snr, config, payload, p, **kwargs):
        estimate = real(key_air, key_join, probs, snr, config, payload, p, **kwargs)
        # NaN at class 0 at the second SNR point only (snr is traced here)
        nan_at_zero = jnp.where(snr > 5.0, jnp.nan, estimate.average[..., 0])
        return estimate._replace(average=estimate.average.at[..., 0].set(nan_at_zero))

    monkeypatch.setattr(aggregation, "ensemble_over_the_air", poisoned)
    # the sharded program is compiled once per unit function: a fresh cache of units,
    # so that the poisoned program never serves another test's curve
    monkeypatch.setattr(
        aggregation, "_ota_unit_of", functools.cache(aggregation._ota_unit_of.__wrapped__)
    )
    with caplog.at_level(logging.WARNING, logger="airinfer"):
        accuracy = aggregation.ota_accuracy_curve(
            jax.random.key(0), probs, labels, [0.0, 10.0], scheme="ota_belief", config=config,
            draws=2,
        )  # fmt: skip
    assert accuracy[1] == 0.0  # no NaN decided; every inference counted wrong
    [record] = caplog.records
    assert "10.0" in record.getMessage() and f"{2 * N} of {2 * N}" in record.getMessage()


@pytest.mark.parametrize("snr", [np.nan, -np.inf])
def test_an_eager_nan_or_minus_inf_snr_is_refused_by_the_ota_functions(snr):
    probs, _ = _probs()
    config = AirCompConfig(channel="awgn", backend="jax")
    with pytest.raises(ValueError, match=r"^snr_db is (nan|-inf); non-finite values cannot decide"):
        ota.over_the_air_average(jax.random.key(0), probs, snr, config, SIMPLEX_C)


def test_an_snr_of_plus_inf_is_a_noiseless_link_eager_as_under_jit():
    """+inf dB means no noise in both modes; on AWGN with perfect CSI the estimate
    is then the devices' exact average."""
    probs, _ = _probs()
    config = AirCompConfig(channel="awgn", backend="jax")
    average = functools.partial(ota.over_the_air_average, config=config,
                                normalization=SIMPLEX_C)  # fmt: skip
    eager = average(jax.random.key(0), probs, jnp.inf)
    jitted = jax.jit(average)(jax.random.key(0), probs, jnp.inf)
    np.testing.assert_array_equal(np.asarray(eager.average), np.asarray(jitted.average))
    np.testing.assert_allclose(np.asarray(eager.average), probs.mean(axis=-2), atol=1e-6)
