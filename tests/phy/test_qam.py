"""The JAX QAM mapper and demapper against Sionna's, and on their own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import qam
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

ORDERS = (2, 4, 6, 8)  # QPSK … 256QAM


@pytest.mark.parametrize("m", ORDERS)
def test_constellation_is_sionnas_point_for_point(m):
    sionna_points = sionna_phy().mapping.Constellation("qam", m).points.numpy()
    np.testing.assert_array_equal(qam.qam_constellation(m), sionna_points)
    assert np.mean(np.abs(qam.qam_constellation(m)) ** 2) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("m", ORDERS)
def test_gray_labelling_nearest_neighbours_differ_in_one_bit(m):
    points, labels = qam.qam_constellation(m), qam.bit_labels(m)
    spacing = np.min(np.abs(points[1:] - points[0]))
    for i, point in enumerate(points):
        neighbours = np.flatnonzero(np.abs(np.abs(points - point) - spacing) < 1e-4)
        assert 2 <= len(neighbours) <= 4
        assert np.all(np.sum(labels[neighbours] != labels[i], axis=1) == 1)


@pytest.mark.parametrize("m", ORDERS)
def test_mapping_is_sionnas_symbol_for_symbol(m):
    bits = np.random.default_rng(m).integers(0, 2, (3, 40 * m)).astype(np.float32)
    ours = np.asarray(qam.map_bits(bits, m))
    theirs = sionna_phy().mapping.Mapper("qam", m)(tensorflow().constant(bits)).numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("method", qam.DEMAPPING_METHODS)
@pytest.mark.parametrize("m", ORDERS)
def test_llrs_are_sionnas_within_1e_4(m, method):
    rng = np.random.default_rng(10 + m)
    bits = rng.integers(0, 2, (4, 64 * m)).astype(np.float32)
    no = rng.uniform(0.05, 2.0, (4, 64)).astype(np.float32)  # one per symbol
    noise = (rng.standard_normal((2, 4, 64)) * np.sqrt(no / 2)).astype(np.float32)
    y = np.asarray(qam.map_bits(bits, m)) + noise[0] + 1j * noise[1]
    ours = np.asarray(qam.demap(y, no, m, method))
    tf = tensorflow()
    demapper = sionna_phy().mapping.Demapper(method, "qam", m)
    theirs = demapper(tf.constant(y.astype(np.complex64)), tf.constant(no)).numpy()
    assert ours.shape == theirs.shape == bits.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_noiseless_symbols_decide_their_own_bits_and_gradients_flow():
    m = 6
    bits = np.random.default_rng(0).integers(0, 2, (2, 10 * m))
    llrs = qam.demap(qam.map_bits(bits, m), 1e-2, m)
    np.testing.assert_array_equal(np.asarray(llrs > 0), bits.astype(bool))

    def loss(y):
        return jnp.sum(jax.nn.softplus(-(2 * bits - 1) * qam.demap(y, 0.5, m)))

    y = qam.map_bits(bits, m) + 0.1
    grad = jax.jit(jax.grad(loss, holomorphic=False))(y)
    assert grad.shape == y.shape and np.all(np.isfinite(np.asarray(grad)))
    # vmap over a batch axis gives the batched call's answer
    batched = jax.vmap(lambda row: qam.demap(row, 0.5, m, "maxlog"))(y)
    np.testing.assert_allclose(batched, qam.demap(y, 0.5, m, "maxlog"), rtol=1e-6)


@pytest.mark.parametrize("m", (0, 3, 2.0, True))
def test_bad_orders_are_named(m):
    with pytest.raises(ValueError, match="num_bits_per_symbol"):
        qam.qam_constellation(m)


def test_bad_method_and_bit_count_are_named():
    with pytest.raises(ValueError, match="method"):
        qam.demap(jnp.zeros(2, jnp.complex64), 1.0, 2, "exact")
    with pytest.raises(ValueError, match="multiple of 4"):
        qam.map_bits(jnp.zeros(6), 4)
