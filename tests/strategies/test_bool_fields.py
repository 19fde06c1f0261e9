"""Booleans must be booleans in the training and coding configs: 1, "yes" and None are
refused by name; NumPy bools are taken and stored as Python bools (configs hash and
serialise the same either way)."""

import numpy as np
import pytest

from airinfer.models.inversion.config import InversionConfig
from airinfer.models.recipe import TrainConfig
from airinfer.strategies.feature_coding import FeatureQuantizer
from airinfer.strategies.jscc import JSCCConfig

CASES = [
    (lambda v: JSCCConfig(side_info=v), "side_info"),
    (lambda v: JSCCConfig(fine_tune_back=v), "fine_tune_back"),
    (lambda v: InversionConfig(linear_path=v), "linear_path"),
    (lambda v: FeatureQuantizer(bits=4, clip=1.0, signed=v), "signed"),
    (lambda v: TrainConfig(1, 32, 1e-3, flip=v), "flip"),
]


@pytest.mark.parametrize("build, field", CASES, ids=[field for _, field in CASES])
@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_a_non_bool_is_refused_by_name(build, field, value):
    with pytest.raises(ValueError, match=rf"^{field}: .* is not a bool"):
        build(value)


@pytest.mark.parametrize("build, field", CASES, ids=[field for _, field in CASES])
def test_a_numpy_bool_is_stored_as_a_python_bool(build, field):
    config = build(np.True_)
    assert getattr(config, field) is True
    assert config == build(True) and hash(config) == hash(build(True))
