"""The one training loop: closed-form fits, formulations, validation, resuming."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from airinfer.models import fit as fit_module
from airinfer.models.fit import fit

X = jnp.linspace(-1.0, 1.0, 64)[:, None]
ROWS = np.arange(64).reshape(4, 16)


def line_loss(params, state, key, x, y):
    return jnp.mean((x * params["w"] + params["b"] - y) ** 2), state


def noisy_loss(params, state, key, x, y):
    """A loss that reads its key, so that the per-step keys matter."""
    noise = 0.1 * jax.random.normal(key, y.shape)
    return jnp.mean((x * params["w"] + params["b"] - y - noise) ** 2), state


def test_module_example_runs():
    result = doctest.testmod(fit_module)
    assert result.attempted > 0 and result.failed == 0


def test_scan_and_step_by_step_take_the_same_steps():
    common = (noisy_loss, {"w": 0.0, "b": 0.0}, optax.adam(0.05), (X, 2 * X), lambda e: ROWS)
    stepped = fit(*common, epochs=5, key=jax.random.key(1))
    scanned = fit(*common, epochs=5, key=jax.random.key(1), scan=True)
    assert stepped.losses.shape == (20,)
    np.testing.assert_allclose(scanned.losses, stepped.losses, rtol=1e-6)
    np.testing.assert_allclose(scanned.params["w"], stepped.params["w"], rtol=1e-6)
    other_key = fit(*common, epochs=5, key=jax.random.key(2))
    assert not np.allclose(other_key.losses, stepped.losses)


def test_members_axis_trains_each_member_as_alone():
    """K vmapped members with their own batches = K separate runs."""
    slopes = jnp.array([1.0, -2.0, 0.5])
    y = X * slopes  # [64, 3]: member k fits column k

    def member_loss(params, column, key, x, y):
        return jnp.mean((x[:, 0] * params - y[:, column]) ** 2), column

    order = np.stack([np.roll(ROWS, k, axis=0) for k in range(3)])  # [K, steps, B]
    # the column each member fits is its carried state
    together = fit(member_loss, jnp.zeros(3), optax.sgd(0.3), (X, y), lambda e: order,
                   epochs=10, state=jnp.arange(3), members=True)  # fmt: skip
    assert together.losses.shape == (3, 40)
    for k in range(3):
        alone = fit(member_loss, jnp.zeros(()), optax.sgd(0.3), (X, y), lambda e, k=k: order[k],
                    epochs=10, state=jnp.asarray(k))  # fmt: skip
        np.testing.assert_allclose(together.losses[k], alone.losses, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(together.params[k], slopes[k], rtol=1e-3)


def test_validation_keeps_the_best_epoch_and_stops_early():
    # a learning rate that diverges: the first epoch is the best, patience 2 stops after 3
    calls = []

    def validate(params, state):
        calls.append(float(params["w"]))
        return float(jnp.mean((X * params["w"] + params["b"] - 3 * X) ** 2))

    fitted = fit(line_loss, {"w": 0.0, "b": 0.0}, optax.sgd(2.5), (X, 3 * X), lambda e: ROWS,
                 epochs=50, validate=validate, patience=2)  # fmt: skip
    assert fitted.epochs == 3 and len(calls) == 3
    assert fitted.best_epoch == 1
    assert fitted.params["w"] == calls[0]
    assert fitted.val_loss == pytest.approx(validate(fitted.params, ()))


def test_a_cut_run_resumes_from_its_checkpoint(tmp_path):
    common = (noisy_loss, {"w": 0.0, "b": 0.0}, optax.adam(0.05), (X, 2 * X), lambda e: ROWS)
    whole = fit(*common, epochs=6, key=jax.random.key(3))
    fit(*common, epochs=2, key=jax.random.key(3), checkpoint=tmp_path / "run")
    ticks = []
    resumed = fit(*common, epochs=6, key=jax.random.key(3), checkpoint=tmp_path / "run",
                  on_step=ticks.append)  # fmt: skip
    assert resumed.epochs == 6
    # the progress bar starts at the steps already taken: 2 epochs of 4 steps
    assert ticks[0] == 8 and sum(ticks) == 6 * 4
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    # a finished run resumes into nothing more to do
    again = fit(*common, epochs=6, key=jax.random.key(3), checkpoint=tmp_path / "run")
    np.testing.assert_array_equal(again.losses, whole.losses)


def test_progress_counts_member_steps():
    ticks = []
    fit(line_loss, {"w": jnp.zeros(2), "b": jnp.zeros(2)}, optax.sgd(0.1), (X, X),
        lambda e: np.stack([ROWS, ROWS]), epochs=2, members=True, on_step=ticks.append)  # fmt: skip
    assert ticks == [2] * 8
    ticks.clear()
    fit(line_loss, {"w": 0.0, "b": 0.0}, optax.sgd(0.1), (X, X), lambda e: ROWS, epochs=2,
        scan=True, on_step=ticks.append)  # fmt: skip
    assert ticks == [4, 4]


@pytest.mark.parametrize("field, value", [("epochs", 0), ("epochs", 1.5), ("patience", -1)])
def test_bad_settings_name_the_field(field, value):
    settings = {"epochs": 1, field: value}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        fit(line_loss, {"w": 0.0, "b": 0.0}, optax.sgd(0.1), (X, X), lambda e: ROWS, **settings)
