"""An API that refuses misuse: device axes, SNR sweeps, booleans, non-finite inputs (ota)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer import ota
from airinfer.experiments import aggregation
from tests.ota.conftest import member_probs

N, K, C = 60, 4, 10
SIMPLEX = ota.Normalization.simplex(C)
AWGN = ota.AirCompConfig(channel="awgn", backend="jax")
ORTHOGONAL = ota.OrthogonalConfig(channel="awgn", backend="jax")
# every block below 0 dB lost, none above: no LDPC decoder needed
CLIFF = ota.BlerTable(
    np.array([-100.0, 0.0, 1e-3, 100.0], np.float32), np.array([1.0, 1.0, 0.0, 0.0], np.float32)
)


def _over_the_air(values, snr_db, **kwargs):
    return ota.over_the_air_average(jax.random.key(0), values, snr_db, AWGN, SIMPLEX, **kwargs)


def _ensemble(values, snr_db, **kwargs):
    key = jax.random.key(0)
    return ota.ensemble_over_the_air(key, key, values, snr_db, AWGN, **kwargs)


def _orthogonal(values, snr_db, **kwargs):
    return ota.orthogonal_average(
        jax.random.key(0), values, snr_db, ORTHOGONAL, bler_table=CLIFF, **kwargs
    )


AVERAGES = [_over_the_air, _ensemble, _orthogonal]


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value), str(excinfo.value)
    return str(excinfo.value)


# --------------------------------------------------------------------------- the devices axis


@pytest.mark.parametrize("average", AVERAGES)
def test_member_first_outputs_are_refused_against_the_number_of_devices(average):
    """``models.ensemble_logits`` gives [K, N, C]; read as [..., K, C] it is N devices."""
    probs, _ = member_probs(N, K, C)
    member_first = np.moveaxis(probs, 0, 1)  # [K, N, C]
    with pytest.raises(ValueError) as excinfo:
        average(member_first, 10.0, num_devices=K)
    message = _one_line(excinfo)
    assert f"K={K}" in message and str((K, N, C)) in message, message
    assert average(probs, 10.0, num_devices=K).average.shape == (N, C)


def test_a_participation_mask_of_other_devices_is_refused():
    probs, _ = member_probs(N, K, C)
    with pytest.raises(ValueError, match=r"^participation: expected shape \[\.\.\., K=4\]"):
        _over_the_air(probs, 10.0, participation=np.ones((N, K + 1)))


def test_the_aggregation_curves_refuse_member_first_outputs():
    probs, labels = member_probs(N, K, C)
    member_first = np.moveaxis(probs, 0, 1)
    key = jax.random.key(0)
    curves = {
        "ota": lambda p, **kw: aggregation.ota_accuracy_curve(
            key, p, labels, [10.0], scheme="ota_belief", config=AWGN, draws=1, **kw
        ),
        "ideal": lambda p, **kw: aggregation.ideal_accuracy_curve(
            key, p, labels, [1.0], draws=1, **kw
        ),
        "noiseless": lambda p, **kw: aggregation.noiseless_accuracy(p, labels),
    }
    for name, curve in curves.items():
        with pytest.raises(ValueError) as excinfo:
            curve(member_first)  # N (the labels) tells the axes apart
        assert f"expected shape [N={N}" in _one_line(excinfo), name
    with pytest.raises(ValueError, match=r"K=3"):
        curves["ota"](probs, num_devices=3)
    with pytest.raises(ValueError, match="members first"):
        aggregation.best_single_member(probs, probs, labels, labels)  # [N, K, C]: wrong way


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(scheme="ota_bellef"), "scheme must be one of"),
        (dict(draws=0), "draws must be an int >= 1"),
        (dict(draws=2.0), "draws must be an int >= 1"),
    ],
)
def test_a_curve_refuses_an_unknown_scheme_or_no_draws_in_one_line(changes, message):
    probs, labels = member_probs(N, K, C)
    arguments = dict(scheme="ota_belief", config=AWGN, draws=1) | changes
    with pytest.raises(ValueError, match=f"^{message}") as excinfo:
        aggregation.ota_accuracy_curve(jax.random.key(0), probs, labels, 0.0, **arguments)
    _one_line(excinfo)


# ------------------------------------------------------------------------------ SNR sweeps


@pytest.mark.parametrize("average", AVERAGES)
def test_snr_as_a_scalar_a_list_or_a_1d_sweep(average):
    probs, _ = member_probs(N, K, C)
    assert average(probs, 10.0).average.shape == (N, C)
    for sweep in ([-30.0, 10.0, 60.0], np.array([-30.0, 10.0, 60.0], np.float32)):
        estimate = average(probs, sweep)
        assert estimate.average.shape == (3, N, C)
    exact = probs.mean(axis=-2)
    error = np.mean((np.asarray(estimate.average) - exact) ** 2, axis=(1, 2))
    # each point of the sweep has its own SNR: the error falls with it (orthogonally
    # down to the quantisation error, once every block decodes)
    assert error[0] > error[1] >= error[2]
    assert error[2] < 1e-4


def test_a_traced_1d_sweep_gives_the_same_shape_as_an_eager_one():
    probs, _ = member_probs(N, K, C)
    jitted = jax.jit(lambda s: _over_the_air(probs, s).average)
    assert jitted(jnp.array([0.0, 20.0])).shape == (2, N, C)
    # two or more dimensions broadcast with the batch, as before
    assert _over_the_air(probs[None], jnp.zeros((5, 1))).average.shape == (5, N, C)


@pytest.mark.parametrize("average", AVERAGES)
def test_an_snr_that_fits_no_batch_is_refused_in_one_line(average):
    probs, _ = member_probs(N, K, C)
    with pytest.raises(ValueError) as excinfo:
        average(probs, np.zeros((3, 7)))
    assert _one_line(excinfo).startswith("snr_db must be a scalar, a 1-D sweep")
    with pytest.raises(ValueError, match="snr_db must be a scalar or a 1-D sweep"):
        aggregation.ota_accuracy_curve(
            jax.random.key(0), probs, np.zeros(N), np.zeros((2, 2)), scheme="ota_belief",
            config=AWGN, draws=1,
        )  # fmt: skip


# ------------------------------------------------------------------------ non-finite values


# an SNR of +inf dB is a noiseless link (test_nonfinite), eager as under jit
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize(
    "where, bad",
    [("values", np.nan), ("values", np.inf), ("values", -np.inf),
     ("snr_db", np.nan), ("snr_db", -np.inf)],
)  # fmt: skip
def test_non_finite_values_or_snrs_are_refused_eagerly_in_one_line(average, where, bad):
    probs, _ = member_probs(N, K, C)
    snr = np.array([0.0, 10.0], np.float32)
    if where == "values":
        probs[7, 2, 3] = bad
    else:
        snr[1] = bad
    with pytest.raises(ValueError) as excinfo:
        average(probs, snr)
    message = _one_line(excinfo)
    assert "non-finite values cannot decide" in message and "index" in message, message


@pytest.mark.parametrize("average", AVERAGES)
def test_under_jit_a_nan_is_flagged_in_the_outcome_and_never_decides(average):
    probs, _ = member_probs(N, K, C)
    probs[5, 1, :] = np.nan  # one member's output of sample 5
    estimate = jax.jit(average)(probs, jnp.float32(40.0))
    decision, finite = np.asarray(estimate.decision), np.asarray(estimate.finite)
    assert not finite[5] and decision[5] == ota.NO_DECISION
    assert int(jnp.argmax(estimate.average[5])) == 0  # what a plain argmax decides
    others = np.arange(N) != 5
    assert finite[others].all()
    # at 40 dB the others decide as the noiseless ensemble (near-ties aside)
    assert np.mean(decision[others] == np.argmax(probs.mean(1), -1)[others]) >= 0.95
    # a traced NaN SNR: nothing decides
    estimate = jax.jit(average)(np.nan_to_num(probs), jnp.float32(np.nan))
    assert not np.asarray(estimate.finite).any()
    assert (np.asarray(estimate.decision) == ota.NO_DECISION).all()


# --------------------------------------------------------------------------------- booleans


def _bool_fields():
    for config in (ota.AirCompConfig, ota.OrthogonalConfig, ota.Normalization):
        for field in dataclasses.fields(config):
            if field.type in (bool, "bool"):
                yield config, field.name


BOOL_FIELDS = list(_bool_fields())


def test_every_ota_config_has_its_flags_listed():
    assert {(c.__name__, name) for c, name in BOOL_FIELDS} == {
        ("AirCompConfig", "lmmse_denoising"), ("AirCompConfig", "local_device"),
        ("OrthogonalConfig", "local_device"), ("Normalization", "clip"),
    }  # fmt: skip


@pytest.mark.parametrize("config, name", BOOL_FIELDS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("value", [1, 0, "yes", "False", None, 1.0])
def test_booleans_must_be_booleans(config, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be True or False"):
        config(**{name: value})


@pytest.mark.parametrize("config, name", BOOL_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_numpy_booleans_are_taken_and_stored_as_bool(config, name):
    made = config(**{name: np.bool_(True)})
    assert getattr(made, name) is True
    assert made == config(**{name: True}) and hash(made) == hash(config(**{name: True}))
