"""The model zoo: parameter counts, split points, feature shapes, FLOPs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.zoo import (
    ModelConfig,
    abstract_model,
    build_model,
    count_params,
    feature_shape,
    flops,
    split_params,
    xla_flops,
)
from tests.conftest import normal

# float32 logits of the same ops in another grouping: a few ulps of |logit| ~ 10
SPLIT_ATOL = 1e-5


def test_mobilenet_v2_full_width_has_about_2_24_million_parameters():
    count = count_params(abstract_model(ModelConfig("mobilenet_v2", (32, 32, 3), 10, 1.0)))
    assert 2.2e6 <= count <= 2.3e6


def test_mobilenet_v2_narrower_widths_have_fewer_parameters():
    counts = [
        count_params(abstract_model(ModelConfig("mobilenet_v2", (32, 32, 3), 10, w)))
        for w in (0.25, 0.33, 0.5, 1.0)
    ]
    assert counts == sorted(counts) and len(set(counts)) == 4
    assert counts[0] < 0.15 * counts[-1]


def test_compact_cnn_parameter_count_matches_its_layers():
    # 8×8×1, width 0.25: conv 1→8, conv 8→16, two 2×2 pools to 2×2×16, dense 64→32, dense 32→10
    expected = (9 * 1 * 8 + 8) + (9 * 8 * 16 + 16) + (64 * 32 + 32) + (32 * 10 + 10)
    assert count_params(abstract_model(ModelConfig("cnn", (8, 8, 1), 10, 0.25))) == expected
    # 32×32×3 inputs get a third conv stage: 32 -> 16 -> 8 -> 4
    model = abstract_model(ModelConfig("cnn", (32, 32, 3), 10, 1.0))
    assert model.split_points == ("conv1", "conv2", "conv3", "hidden")


def test_mlp_parameter_count_matches_its_layers():
    expected = (784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert count_params(abstract_model(ModelConfig("mlp", (28, 28, 1), 10, 1.0))) == expected


CASES = [
    ("cnn", (8, 8, 1), 0.5),
    ("cnn", (28, 28, 1), 0.25),
    ("cnn", (32, 32, 3), 0.25),
    ("mlp", (28, 28, 1), 0.5),
    pytest.param("mobilenet_v2", (32, 32, 3), 0.25, marks=pytest.mark.slow),
]


def _front_back_and_full(model, x):
    """Full logits and back∘front at every split point, in one jitted program."""
    graphdef, state = nnx.split(model)

    def apply(state, x):
        copy = nnx.merge(graphdef, state)
        copy.eval()
        features = {p: copy.front(x, p) for p in copy.split_points}
        return copy(x), {p: copy.back(f, p) for p, f in features.items()}, features

    return jax.jit(apply)(state, x)


@pytest.mark.parametrize("kind, shape, width", CASES)
def test_front_then_back_equals_the_full_model_at_every_split_point(kind, shape, width):
    model = build_model(ModelConfig(kind, shape, 10, width), jax.random.key(0))
    x = normal(1, (3, *shape))
    full, composed, features = _front_back_and_full(model, x)
    assert full.shape == (3, 10) and np.all(np.isfinite(full)) and np.std(full) > 0
    for split_point in model.split_points:
        np.testing.assert_allclose(
            composed[split_point], full, atol=SPLIT_ATOL, err_msg=split_point
        )
        assert features[split_point].shape[1:] == feature_shape(model, split_point, shape)
        front, back = split_params(model, split_point)
        assert front > 0 and back > 0 and front + back == count_params(model)


def test_feature_shapes_of_the_cnn_are_the_documented_ones():
    model = abstract_model(ModelConfig("cnn", (28, 28, 1), 10, 0.25))
    assert feature_shape(model, "conv1", (28, 28, 1)) == (14, 14, 8)
    assert feature_shape(model, "conv2", (28, 28, 1)) == (7, 7, 16)
    assert feature_shape(model, "hidden", (28, 28, 1)) == (32,)


def test_flops_of_the_parts_add_up_to_the_whole():
    model = build_model(ModelConfig("cnn", (28, 28, 1), 10, 0.25), jax.random.key(0))
    total = flops(model, (28, 28, 1))
    # the first conv alone: 28·28 outputs × 8 channels × 9 taps × 2 flops per multiply-add
    assert flops(model, (28, 28, 1), "conv1", "front") >= 28 * 28 * 8 * 9 * 2
    for split_point in model.split_points:
        front = flops(model, (28, 28, 1), split_point, "front")
        back = flops(model, (28, 28, 1), split_point, "back")
        assert front > 0 and back > 0
        np.testing.assert_allclose(front + back, total, rtol=0.01, err_msg=split_point)


def test_width_multiplier_scales_the_cnn():
    narrow = count_params(abstract_model(ModelConfig("cnn", (28, 28, 1), 10, 0.25)))
    wide = count_params(abstract_model(ModelConfig("cnn", (28, 28, 1), 10, 1.0)))
    assert 8 * narrow < wide  # dense weights grow with width², convs too


def test_same_key_same_model_different_key_different_model():
    config = ModelConfig("mlp", (8, 8, 1), 10, 0.25)
    x = jnp.ones((1, 8, 8, 1))
    a, b, c = (build_model(config, jax.random.key(s))(x) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_split_point_and_bad_config_name_what_is_allowed():
    model = abstract_model(ModelConfig("mlp", (8, 8, 1), 10, 1.0))
    with pytest.raises(ValueError, match="unknown 'logits'; allowed: hidden1, hidden2"):
        model.front(jnp.ones((1, 8, 8, 1)), "logits")
    with pytest.raises(ValueError, match="model kind: unknown 'resnet'"):
        ModelConfig("resnet")
    with pytest.raises(ValueError, match="width"):
        ModelConfig("cnn", width=0.0)


def test_xla_flops_counts_a_matrix_product_and_ignores_values():
    # [4, 8] @ [8, 16]: 4·16 outputs × 8 multiply-adds × 2 flops
    a, b = jnp.ones((4, 8)), jax.ShapeDtypeStruct((8, 16), jnp.float32)
    assert xla_flops(jnp.matmul, a, b) == 2 * 4 * 16 * 8
    assert xla_flops(jnp.matmul, jnp.zeros((4, 8)), b) == xla_flops(jnp.matmul, a, b)
