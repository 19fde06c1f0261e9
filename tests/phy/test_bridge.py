"""The Sionna bridge: determinism, gradients, both execution modes, captured constants."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy.bridge import bridge
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

MODES = ["xla", "callback"]


def _awgn_tf(x, no):
    return sionna_phy().channel.AWGN()(x, no)


@functools.cache
def _bridged_awgn(mode):
    return bridge(_awgn_tf, mode=mode)


def _symbols(shape=(4, 32), seed=0):
    """Complex Gaussian test data of variance 2 (NumPy: no sampler to compile per shape)."""
    re, im = np.random.default_rng(seed).standard_normal((2, *shape), dtype=np.float32)
    return jnp.asarray(re + 1j * im, jnp.complex64)


@pytest.mark.parametrize("mode", MODES)
def test_same_key_same_draws_different_key_different_draws(mode):
    f = jax.jit(_bridged_awgn(mode))
    x, no = _symbols(), jnp.full((4,), 0.3)
    y1, y2 = f(jax.random.key(7), x, no), f(jax.random.key(7), x, no)
    y3 = f(jax.random.key(8), x, no)
    np.testing.assert_array_equal(y1, y2)
    assert np.mean(np.asarray(y1) != np.asarray(y3)) > 0.99
    assert y1.dtype == jnp.complex64 and y1.shape == x.shape


def test_eager_and_jit_agree():
    f = _bridged_awgn("xla")
    x, no = _symbols(), jnp.full((4,), 0.3)
    np.testing.assert_array_equal(f(jax.random.key(1), x, no), jax.jit(f)(jax.random.key(1), x, no))


def test_modes_agree_without_randomness():
    tf = tensorflow()

    def rotate(x, w):
        return x * tf.complex(tf.cos(w), tf.sin(w))

    x, w = _symbols(), jnp.linspace(0, 3, 32)
    y_xla = bridge(rotate)(jax.random.key(0), x, w)
    y_cb = bridge(rotate, mode="callback")(jax.random.key(0), x, w)
    np.testing.assert_allclose(y_xla, y_cb, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y_xla, x * jnp.exp(1j * w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_through_complex_boundary_matches_closed_form(mode):
    """d/dw sum |w*x + n|^2 = sum 2 Re(conj(w x + n) x): a wrong complex cotangent
    convention at the boundary (fix 2) would conjugate or drop the imaginary part."""
    f = _bridged_awgn(mode)
    key, x, no = jax.random.key(2), _symbols(), jnp.full((4,), 0.5)
    w = jnp.linspace(0.5, 1.5, 32)

    def loss(w):
        return jnp.sum(jnp.abs(f(key, x * w, no)) ** 2)

    grad = jax.jit(jax.grad(loss))(w)
    y = f(key, x * w, no)  # the same noise: the key fixes it, forward and backward
    expected = jnp.sum(2 * jnp.real(jnp.conj(y) * x), axis=0)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-3)


def test_gradient_matches_finite_differences():
    f = _bridged_awgn("xla")
    key, no = jax.random.key(4), jnp.full((2,), 0.1)
    x0 = _symbols((2, 8), seed=5)

    def loss(a):
        y = f(key, x0 * (1 + 0.1j) * a, no)
        return jnp.sum(jnp.real(y) ** 3 + jnp.imag(y))

    eps = 1e-2
    grad = jax.grad(loss)(1.0)
    finite_difference = (loss(1.0 + eps) - loss(1.0 - eps)) / (2 * eps)
    # A cubic in a: the central difference is off by eps^2 * loss'''/6, far below this.
    np.testing.assert_allclose(grad, finite_difference, rtol=1e-3)


def test_captured_constants_are_inlined():
    """Sionna's 3GPP TDL keeps its tables as captured tensors; XLA needs them inlined (fix 3)."""
    sn = sionna_phy()
    tdl = sn.channel.tr38901.TDL("A", 100e-9, 3.5e9)
    f = bridge(lambda batch_probe: tdl(batch_probe.shape[0], 4, 1e6))
    a, tau = jax.jit(f)(jax.random.key(0), jnp.zeros((3,)))
    assert a.shape[0] == 3 and a.shape[-1] == 4 and a.dtype == jnp.complex64
    assert np.all(np.isfinite(np.asarray(tau)))


def test_autograph_control_flow():
    """Python control flow on tensors needs AutoGraph, which call_tf turns off (fix 4)."""
    tf = tensorflow()

    def clipped_cumsum(x):
        total = tf.zeros_like(x[0])
        for i in tf.range(tf.shape(x)[0]):
            if tf.reduce_sum(total) < 10.0:
                total += x[i]
        return total

    f = jax.jit(bridge(clipped_cumsum))
    np.testing.assert_allclose(f(jax.random.key(0), jnp.full((6, 2), 3.0)), [6.0, 6.0])


def test_structured_outputs():
    tf = tensorflow()
    f = bridge(lambda x: {"double": 2 * x, "pair": (tf.complex(x, -x), x + 1)})
    out = f(jax.random.key(0), jnp.arange(3.0))
    np.testing.assert_allclose(out["double"], [0, 2, 4])
    np.testing.assert_allclose(out["pair"][0], [0, 1 - 1j, 2 - 2j])


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        bridge(_awgn_tf, mode="eager")
