"""An ensemble over the air: one vocabulary of payloads and schemes, one path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer import ota
from tests.conftest import normal


def test_one_vocabulary_of_payloads_and_schemes():
    assert ota.SCHEMES == ("ota_belief", "ota_vote", "ota_sign", "orthogonal")
    assert [ota.SCHEME_PAYLOADS[s] for s in ota.OVER_THE_AIR_SCHEMES] == list(ota.PAYLOADS)
    assert [ota.over_the_air_scheme(p) for p in ota.PAYLOADS] == list(ota.OVER_THE_AIR_SCHEMES)
    with pytest.raises(ValueError, match="payload"):
        ota.over_the_air_scheme("one_hot")
    with pytest.raises(ValueError, match="payload"):
        ota.encode_payload(jnp.ones((2, 3)) / 3, "logits")


def test_payloads_and_their_normalisations():
    probs = jnp.array([[[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]])  # [N=1, K=2, C=3]
    values, normalization = ota.encode_payload(probs, "softmax")
    assert values is probs and normalization == ota.Normalization.simplex(3)
    values, normalization = ota.encode_payload(probs, "vote")
    np.testing.assert_array_equal(values, [[[1, 0, 0], [0, 0, 1]]])
    assert normalization == ota.Normalization.simplex(3)
    values, normalization = ota.encode_payload(probs, "sign")
    np.testing.assert_array_equal(values, [[[1, -1, -1], [-1, -1, 1]]])
    assert normalization == ota.Normalization.signs(3)


@pytest.mark.parametrize("payload", ["softmax", "vote", "sign"])
def test_the_path_is_encode_join_aggregate(payload):
    """The same keys give exactly the composition of the three ota steps."""
    probs = jax.nn.softmax(normal(0, (6, 4, 5)) * 3)  # [N, K, C]
    config = ota.AirCompConfig(channel="rayleigh", backend="jax", local_device=True)
    key_air, key_join = jax.random.key(1), jax.random.key(2)
    got = ota.ensemble_over_the_air(key_air, key_join, probs, 3.0, config, payload, 0.5)
    values, normalization = ota.encode_payload(probs, payload)
    joined = ota.participation_mask(key_join, (6,), 4, 0.5)
    expected = ota.over_the_air_average(key_air, values, 3.0, config, normalization, joined)
    np.testing.assert_array_equal(got.average, expected.average)
    np.testing.assert_array_equal(got.num_active, expected.num_active)
