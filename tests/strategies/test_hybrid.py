"""The hybrid: an edge ensemble fused with a server's answer when the server's link delivers.

Strategies run eagerly where two must agree bit for bit.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.models.zoo import flops
from airinfer.strategies.base import Link
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.cost import Hardware
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.hybrid import HybridStrategy

# 48 images: as many LDPC blocks as test_observation's direct multicast (16 images to 3
# neighbours), so that the server's link, run eagerly, reuses its compiled programs
NUM_IMAGES = 48
HIGH_SNR_DB = 40.0
HOPELESS_SNR_DB = -20.0
# ten classes over the air, then 8 x 8 8-bit pixels in one 512-bit LDPC block (QPSK)
RETURN_USES, UPLINK_USES = 5, 512


@pytest.fixture(scope="module")
def parents(trained_digits_ensemble, new_digits_cnn, digits_pixels):
    """The session's four CNNs as a shared edge ensemble, and a cloud server."""
    ensemble = EdgeEnsembleStrategy(trained_digits_ensemble[0])
    return ensemble, CloudStrategy(new_digits_cnn(), digits_pixels)


@pytest.fixture(scope="module")
def images(digits):
    return jnp.asarray(digits.test_images[:NUM_IMAGES])


def test_no_server_is_the_ensemble_and_a_perfect_one_with_full_trust_is_the_server(parents, images):
    ensemble, server = parents
    key = jax.random.key(1)
    unreachable = Link(HIGH_SNR_DB, backend="jax", server_connectivity=0.0)
    hybrid = HybridStrategy(ensemble, server, trust=1.0)
    np.testing.assert_array_equal(
        hybrid(key, images, unreachable).logits, ensemble(key, images, unreachable).logits
    )
    perfect = Link(HIGH_SNR_DB, backend="jax", server_connectivity=1.0)
    served = jax.nn.softmax(server(key, images, perfect).logits, axis=-1)
    np.testing.assert_array_equal(hybrid(key, images, perfect).logits, served)
    # a server link that never decodes: the ensemble again, whatever the trust
    hopeless = Link(HOPELESS_SNR_DB, backend="jax", server_connectivity=1.0)
    assert not np.any(hybrid.branches(key, images, hopeless).server_ok)
    np.testing.assert_array_equal(
        hybrid(key, images, hopeless).logits, ensemble(key, images, hopeless).logits
    )


def test_fusion_weighs_the_server_by_trust_where_it_is_reachable(parents, images):
    ensemble, server = parents
    hybrid = HybridStrategy(ensemble, server, trust=0.3)
    p = 0.5
    link = Link(HIGH_SNR_DB, backend="jax", server_connectivity=p)
    branches = hybrid.branches(jax.random.key(2), images, link)
    ok = np.asarray(branches.server_ok)
    # Bernoulli(0.5) reachability of 48 inferences: sigma = 0.072, bound 4 sigma
    assert abs(ok.mean() - p) <= 4 * math.sqrt(p * (1 - p) / NUM_IMAGES)
    average = np.asarray(branches.ensemble.logits)
    served = np.asarray(jax.nn.softmax(branches.server.logits, axis=-1))
    expected = np.where(ok[:, None], 0.3 * served + 0.7 * average, average)
    np.testing.assert_allclose(hybrid.fuse(branches), expected, rtol=1e-6, atol=1e-7)


def test_cost_of_both_branches_side_by_side(parents, images):
    ensemble, server = parents
    cost = HybridStrategy(ensemble, server)(
        jax.random.key(3), images, Link(HIGH_SNR_DB, backend="jax")
    ).cost
    member = flops(ensemble._groups[0].model, (8, 8, 1))
    full = flops(server.model, (8, 8, 1))
    hardware = Hardware()
    assert float(cost.channel_uses) == RETURN_USES + UPLINK_USES
    assert float(cost.payload_bits) == 512
    assert float(cost.device_flops) == member and float(cost.server_flops) == full
    ensemble_path = member / hardware.device_flops_per_s + RETURN_USES / hardware.symbol_rate_hz
    server_path = UPLINK_USES / hardware.symbol_rate_hz + full / hardware.server_flops_per_s
    assert float(cost.latency_s) == pytest.approx(max(ensemble_path, server_path), rel=1e-6)


def test_message_holds_both_links(parents, images):
    ensemble, server = parents
    message = HybridStrategy(ensemble, server).message(images)
    assert message.shape == (NUM_IMAGES, 10 + 64)
    np.testing.assert_array_equal(message[:, 10:], server.message(images).reshape(-1, 64))


@pytest.mark.slow  # compiles the Sionna LDPC link under jit: ~1 min on 2 busy cores
def test_one_compile_across_snr_and_server_connectivity(parents, images):
    run = jax.jit(HybridStrategy(*parents))
    for snr, p in ((HIGH_SNR_DB, 1.0), (0.0, 0.5), (HOPELESS_SNR_DB, 0.0)):
        run(jax.random.key(4), images, Link(jnp.float32(snr), server_connectivity=jnp.float32(p)))
    assert run._cache_size() == 1


def test_bad_input(parents, images):
    ensemble, server = parents
    with pytest.raises(ValueError, match="trust: 1.5 is not in"):
        HybridStrategy(ensemble, server, trust=1.5)
    with pytest.raises(ValueError, match="server: EdgeEnsembleStrategy is not a CloudStrategy"):
        HybridStrategy(ensemble, ensemble)
    with pytest.raises(ValueError, match="ensemble: CloudStrategy is not an EdgeEnsembleStrategy"):
        HybridStrategy(server, server)
    with pytest.raises(ValueError, match="link.server_connectivity must be in"):
        HybridStrategy(ensemble, server)(
            jax.random.key(0), images, Link(0.0, server_connectivity=1.5)
        )
    assert HybridStrategy(ensemble, server).name == "hybrid"
