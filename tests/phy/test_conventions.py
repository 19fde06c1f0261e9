import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy.conventions import (
    db_to_linear,
    linear_to_db,
    normalize_power,
    reals_to_symbols,
    snr_db_to_no,
    symbols_to_reals,
)
from tests.conftest import normal


def test_db_round_trip_and_known_values():
    assert float(db_to_linear(10.0)) == pytest.approx(10.0)
    assert float(db_to_linear(-3.0)) == pytest.approx(0.501187, rel=1e-5)
    x = jnp.array([-40.0, 0.0, 17.5, 60.0])
    np.testing.assert_allclose(linear_to_db(db_to_linear(x)), x, atol=1e-4)
    assert np.isfinite(float(linear_to_db(0.0)))


def test_snr_to_noise_power():
    # Es/N0 = 20 dB with unit-energy symbols: no = 0.01; with Es = 4: no = 0.04.
    assert float(snr_db_to_no(20.0)) == pytest.approx(0.01)
    assert float(snr_db_to_no(20.0, signal_power=4.0)) == pytest.approx(0.04)
    assert snr_db_to_no(jnp.zeros((3, 2))).shape == (3, 2)


def test_normalize_power_per_device_block():
    x = normal(0, (4, 3, 50)) * jnp.arange(1.0, 4.0)[:, None]
    y = normalize_power(x, power=2.0)
    np.testing.assert_allclose(jnp.mean(y**2, axis=-1), 2.0, rtol=1e-5)
    # An all-zero block stays zero and has a finite gradient.
    g = jax.grad(lambda z: jnp.sum(normalize_power(z)))(jnp.zeros((1, 8)))
    assert np.all(np.isfinite(g))


def test_pack_unpack_round_trip_odd_length():
    x = normal(1, (2, 7))
    s = reals_to_symbols(x)
    assert s.shape == (2, 4) and s.dtype == jnp.complex64
    np.testing.assert_array_equal(symbols_to_reals(s, length=7), x)
    # Two reals make one symbol: energy is preserved.
    np.testing.assert_allclose(jnp.sum(jnp.abs(s) ** 2), jnp.sum(x**2), rtol=1e-6)
