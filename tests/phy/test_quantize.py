"""The uniform mid-rise quantiser: error bound, bit round trips, clipping, checks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.phy import quantize as q

# float32 arithmetic in (x + clip) / step and back: allow a few ulps of clip on
# top of the exact step / 2 bound.
FLOAT32_SLACK = 8 * np.finfo(np.float32).eps


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12, 16])
@pytest.mark.parametrize("clip", [0.5, 3.0])
def test_error_inside_the_clip_range_is_at_most_half_a_step(bits, clip):
    x = jnp.linspace(-clip, clip, 100_001, dtype=jnp.float32)
    x_hat = q.dequantize(q.quantize(x, bits, clip), bits, clip)
    step = q.quantization_step(bits, clip)
    assert step == pytest.approx(2 * clip / 2**bits)
    assert float(jnp.max(jnp.abs(x_hat - x))) <= step / 2 + FLOAT32_SLACK * clip


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_every_code_round_trips_through_bits_and_levels(bits):
    codes = jnp.arange(2**bits, dtype=jnp.int32)
    digits = q.codes_to_bits(codes, bits)
    assert digits.shape == (2**bits, bits) and digits.dtype == jnp.float32
    np.testing.assert_array_equal(q.bits_to_codes(digits), codes)
    # The levels are the cell centres, and quantising a centre gives its code back.
    levels = q.dequantize(codes, bits, 1.0)
    np.testing.assert_array_equal(q.quantize(levels, bits, 1.0), codes)


def test_sixteen_bit_values_round_trip_through_bits_exactly():
    codes = jnp.asarray(np.random.default_rng(0).integers(0, 2**16, (4, 1000)), jnp.int32)
    digits = q.codes_to_bits(codes, 16, dtype=jnp.int32)
    assert digits.shape == (4, 1000, 16)
    np.testing.assert_array_equal(q.bits_to_codes(digits), codes)
    x = q.dequantize(codes, 16, 2.0)
    np.testing.assert_array_equal(q.bits_to_values(q.quantize_to_bits(x, 16, 2.0), 2.0), x)


def test_bits_are_msb_first_and_mid_rise_levels_are_symmetric():
    np.testing.assert_array_equal(
        q.codes_to_bits(jnp.array([1, 4, 6]), 3), [[0, 0, 1], [1, 0, 0], [1, 1, 0]]
    )
    # Mid-rise: 1 bit gives the sign, reconstructed at ±clip/2; zero is no level.
    np.testing.assert_allclose(q.dequantize(jnp.array([0, 1]), 1, 2.0), [-1.0, 1.0])
    levels = np.asarray(q.dequantize(jnp.arange(16), 4, 1.0))
    np.testing.assert_allclose(levels, -levels[::-1], atol=1e-7)
    assert not np.any(levels == 0)


def test_values_beyond_the_clip_go_to_the_outer_levels():
    codes = q.quantize(jnp.array([-100.0, -1.0, 1.0, 100.0, jnp.inf, -jnp.inf]), 3, 1.0)
    np.testing.assert_array_equal(codes, [0, 0, 7, 7, 7, 0])


def test_jit_and_straight_through_gradient():
    quantise = jax.jit(functools.partial(q.quantize_to_bits, bits=4, clip=1.0))
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (8, 32)), jnp.float32)
    digits = quantise(x)
    assert digits.shape == (8, 32, 4)
    np.testing.assert_array_equal(digits, q.quantize_to_bits(x, 4, 1.0))

    grad = jax.grad(lambda v: jnp.sum(q.fake_quantize(v, 4, 1.0)))(
        jnp.array([-2.0, -0.3, 0.4, 2.0])
    )
    np.testing.assert_array_equal(grad, [0.0, 1.0, 1.0, 0.0])
    value = q.fake_quantize(jnp.array([0.4]), 4, 1.0)
    np.testing.assert_allclose(value, q.dequantize(q.quantize(jnp.array([0.4]), 4, 1.0), 4, 1.0))


@pytest.mark.parametrize("bits", [0, 17, -1, 2.0, True, "4"])
def test_bad_bits_raise_naming_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        q.quantize(jnp.zeros(3), bits, 1.0)


@pytest.mark.parametrize("clip", [0.0, -1.0, float("nan"), float("inf"), "x", None])
def test_bad_clip_raises_naming_clip(clip):
    with pytest.raises(ValueError, match="clip"):
        q.quantize(jnp.zeros(3), 4, clip)
    with pytest.raises(ValueError, match="clip"):
        q.dequantize(jnp.zeros(3, jnp.int32), 4, clip)


def test_too_many_bit_columns_raise():
    with pytest.raises(ValueError, match="bits"):
        q.bits_to_codes(jnp.zeros((2, 17)))
