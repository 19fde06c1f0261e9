"""The edge ensemble's observation round: the direct multicast and the shared encoder.

The shared observation is tests/strategies/test_edge_ensemble.py; the heads' training
tests/strategies/test_heads.py. Strategies run eagerly where two strategies must
agree bit for bit (two jitted programs may round differently).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.zoo import ModelConfig, build_model, flops
from airinfer.phy import abstraction
from airinfer.strategies.base import Link
from airinfer.strategies.cloud import ImageLink
from airinfer.strategies.cost import Hardware
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy, noiseless_average
from airinfer.strategies.feature_coding import Bottleneck, bottleneck_flops
from airinfer.strategies.heads import Head
from airinfer.strategies.observation import DirectObservation, SharedEncoder

NUM_DEVICES = 4
NUM_IMAGES = 16
# ten classes over the air: five complex channel uses
RETURN_USES = 5
# 8 x 8 x 1 pixels of 8 bits: one LDPC block of k = 512, n = 1024, QPSK
IMAGE_USES = 512
# conv2 of the width-0.5 CNN on 8 x 8 inputs: 2 x 2 x 32 feature values
FEATURE_VALUES = 128
HIGH_SNR_DB = 40.0
HOPELESS_SNR_DB = -20.0


@pytest.fixture(scope="module")
def members(trained_digits_ensemble):
    """The session's four trained CNNs (shared: read only)."""
    return trained_digits_ensemble[0]


@pytest.fixture(scope="module")
def images(digits, digits_pixels):
    """Test images that 8-bit pixels carry exactly: a decoded copy is the image itself."""
    raw = jnp.asarray(digits.test_images[:NUM_IMAGES])
    return digits_pixels.from_codes(digits_pixels.to_codes(raw))


@pytest.fixture(scope="module")
def direct(members, digits_pixels):
    return EdgeEnsembleStrategy(members, observation=DirectObservation(ImageLink(digits_pixels)))


@pytest.fixture(scope="module")
def encoder(members):
    """Member 0's front at conv2, 4 bits per ReLU feature."""
    return SharedEncoder(members.member(0), "conv2", bits=4, clip=4.0, signed=False)


@pytest.fixture(scope="module")
def heads(members):
    """Three untrained heads cut at conv2 (distinct initialisations)."""
    config = members.groups[0].config
    return [Head(build_model(config, jax.random.key(k)), "conv2") for k in range(3)]


def _local(model, x):
    return jax.nn.softmax(model(x), axis=-1)


# --------------------------------------------------------------------------- direct


def test_direct_at_high_snr_is_shared_and_failed_copies_are_silent(
    direct, members, images, digits_pixels
):
    key = jax.random.key(3)
    link = Link(snr_db=HIGH_SNR_DB, backend="jax")
    shared = EdgeEnsembleStrategy(members)(key, images, link).logits
    np.testing.assert_array_equal(direct(key, images, link).logits, shared)
    # every copy fails its CRC: nobody joins device 0, which infers on its clean image
    hopeless = Link(snr_db=HOPELESS_SNR_DB, backend="jax")
    _, multicast = direct.observed_probs(jax.random.fold_in(key, 1), images, hopeless)
    assert not np.any(multicast.delivered)
    local = _local(members.member(0), images)
    np.testing.assert_array_equal(direct(key, images, hopeless).logits, local)
    # without the CRC the neighbours infer on their garbled copies and are heard
    careless = DirectObservation(ImageLink(digits_pixels), crc=False)
    garbled = EdgeEnsembleStrategy(members, observation=careless)(key, images, hopeless)
    assert np.max(np.abs(np.asarray(garbled.logits) - np.asarray(local))) > 1e-3
    # participation = joined AND delivered: with nobody joining, intact copies change nothing
    alone = Link(snr_db=HIGH_SNR_DB, connectivity=0.0, backend="jax")
    np.testing.assert_array_equal(direct(key, images, alone).logits, local)


@pytest.mark.parametrize("source", ["pixels", "webp"])
def test_direct_abstraction_keeps_the_simulated_verdicts_distribution(
    members, images, digits_pixels, source
):
    """Drawn CRC verdicts: everyone at +40 dB (as shared), nobody at -20 dB, and at the
    waterfall as many as the link's BLER says; a delivered copy is what was sent."""
    image_link = ImageLink(digits_pixels, source=source)
    drawn = EdgeEnsembleStrategy(
        members, observation=DirectObservation(image_link, mode="abstraction")
    )
    key = jax.random.key(3)
    high = Link(snr_db=HIGH_SNR_DB, backend="jax")
    sent = image_link.message(images)
    _, multicast = drawn.observed_probs(key, images, high)
    assert np.all(multicast.delivered)
    rebuilt = digits_pixels.from_codes(sent.astype(jnp.uint8))
    for k in range(NUM_DEVICES - 1):
        np.testing.assert_array_equal(multicast.inputs[:, k], rebuilt)
    hopeless = Link(snr_db=HOPELESS_SNR_DB, backend="jax")
    _, multicast = drawn.observed_probs(key, images, hopeless)
    assert not np.any(multicast.delivered)
    if source == "pixels":
        shared = EdgeEnsembleStrategy(members)(key, images, high).logits
        np.testing.assert_array_equal(drawn(key, images, high).logits, shared)
        # one block per image: delivered with probability 1 - BLER(1.5 dB)
        link = Link(snr_db=1.5, backend="jax")
        copies = jnp.tile(images, (40, 1, 1, 1))  # 640 images, 1,920 copies
        _, multicast = drawn.observed_probs(key, copies, link)
        curve = abstraction.link_bler_curve(image_link.link_config("awgn"))
        expected = 1 - np.interp(1.5, curve.snr_db, curve.bler)
        tolerance = 5 * np.sqrt(expected * (1 - expected) / multicast.delivered.size)
        assert abs(np.mean(multicast.delivered) - expected) < tolerance


def test_direct_cost_counts_both_rounds(direct, members, digits_pixels):
    member = flops(members.member(1), (8, 8, 1))
    cost = direct.cost((8, 8, 1), 10)
    assert (cost.channel_uses, cost.payload_bits) == (IMAGE_USES + RETURN_USES, 512)
    assert (cost.device_flops, cost.server_flops) == (member, 0.0)
    hardware = Hardware()
    assert cost.latency_s == pytest.approx(
        member / hardware.device_flops_per_s + (IMAGE_USES + RETURN_USES) / hardware.symbol_rate_hz,
        rel=1e-12,
    )
    alone = EdgeEnsembleStrategy([members.member(0)], observation=direct.observation)
    assert alone.cost((8, 8, 1), 10).channel_uses == 0  # nobody to multicast to
    jpeg = DirectObservation(ImageLink(digits_pixels, source="jpeg"))
    with pytest.raises(ValueError, match="stream's length depends on its image"):
        EdgeEnsembleStrategy(members, observation=jpeg).cost((8, 8, 1), 10)


# --------------------------------------------------------------------------- encoder


def test_encoder_at_high_snr_is_the_heads_ensemble_on_clean_features(encoder, heads, images):
    strategy = EdgeEnsembleStrategy(heads, observation=encoder)
    key, link = jax.random.key(4), Link(snr_db=HIGH_SNR_DB, backend="jax")
    features = encoder.clean_features(images)
    # the features as 4-bit codes bring back: on the quantiser's grid, not the front's output
    front = encoder.model.front(images, "conv2")
    assert 0 < np.max(np.abs(np.asarray(features) - np.clip(front, 0, 4.0))) <= 4.0 / 15 / 2 + 1e-6
    on_clean = EdgeEnsembleStrategy(heads)(key, features, link).logits
    np.testing.assert_array_equal(strategy(key, images, link).logits, on_clean)
    hopeless = Link(snr_db=HOPELESS_SNR_DB, backend="jax")
    np.testing.assert_array_equal(
        strategy(key, images, hopeless).logits, _local(heads[0], features)
    )


def test_encoder_abstraction_delivers_the_quantised_features(members, heads, images):
    drawn = SharedEncoder(
        members.member(0), "conv2", bits=4, clip=4.0, signed=False, mode="abstraction"
    )
    strategy = EdgeEnsembleStrategy(heads, observation=drawn)
    key, link = jax.random.key(4), Link(snr_db=HIGH_SNR_DB, backend="jax")
    features = drawn.clean_features(images)
    on_clean = EdgeEnsembleStrategy(heads)(key, features, link).logits
    np.testing.assert_array_equal(strategy(key, images, link).logits, on_clean)
    _, multicast = strategy.observed_probs(key, images, Link(snr_db=HOPELESS_SNR_DB))
    assert not np.any(multicast.delivered)


def test_identity_encoder_over_a_noiseless_analog_link_is_the_clean_ensemble(members, images):
    identity = SharedEncoder(None, None, analog=True)
    strategy = EdgeEnsembleStrategy(members, observation=identity)
    noiseless = Link(snr_db=jnp.inf, backend="jax")
    outcome = strategy(jax.random.key(5), images, noiseless)
    clean = noiseless_average(EdgeEnsembleStrategy(members), images)
    np.testing.assert_allclose(outcome.logits, clean, rtol=1e-5, atol=1e-6)
    # 64 pixels as 32 complex symbols, then the return
    assert outcome.cost.channel_uses == 32 + RETURN_USES and outcome.cost.payload_bits == 0


def test_encoder_costs_hand_computed(members, encoder, heads):
    front = flops(members.member(0), (8, 8, 1), "conv2", "front")
    head = flops(heads[1], (2, 2, 32))
    hardware = Hardware()

    def check(cost, uses, bits, device):
        assert (cost.channel_uses, cost.payload_bits, cost.server_flops) == (uses, bits, 0.0)
        assert cost.device_flops == pytest.approx(device, rel=1e-12)
        latency = device / hardware.device_flops_per_s + uses / hardware.symbol_rate_hz
        assert cost.latency_s == pytest.approx(latency, rel=1e-12)

    digital = EdgeEnsembleStrategy(heads, observation=encoder).cost((8, 8, 1), 10)
    # 128 values x 4 bits = 512 bits: one block of 1024 coded bits, 512 QPSK symbols
    check(digital, 512 + RETURN_USES, FEATURE_VALUES * 4, front + head)
    analog = dataclasses.replace(encoder, analog=True, clip=None)
    check(
        EdgeEnsembleStrategy(heads, observation=analog).cost((8, 8, 1), 10),
        FEATURE_VALUES // 2 + RETURN_USES, 0, front + head,
    )  # fmt: skip
    bottleneck = Bottleneck(32, 8, rngs=nnx.Rngs(0))
    coded = SharedEncoder(members.member(0), "conv2", bottleneck, bits=4)
    compress = bottleneck_flops(bottleneck, (2, 2, 32), "compress")
    expand = bottleneck_flops(bottleneck, (2, 2, 32), "expand")
    # 2 x 2 x 8 code values x 4 bits = 128 bits, still one 512-bit block
    check(
        EdgeEnsembleStrategy(heads, observation=coded).cost((8, 8, 1), 10),
        512 + RETURN_USES, 32 * 4, front + compress + expand + head,
    )  # fmt: skip


# --------------------------------------------------------------------------- messages, jit


def test_messages_are_what_is_multicast(direct, encoder, heads, members, images):
    pixels = np.asarray(direct.message(images))
    assert pixels.shape == (NUM_IMAGES, 8, 8, 1) and pixels.min() >= 0 and pixels.max() <= 255
    np.testing.assert_array_equal(pixels, direct.observation.image_link.message(images))
    features = EdgeEnsembleStrategy(heads, observation=encoder).message(images)
    np.testing.assert_array_equal(features, encoder.clean_features(images))
    assert features.shape == (NUM_IMAGES, 2, 2, 32)
    analog = EdgeEnsembleStrategy(heads, observation=dataclasses.replace(encoder, analog=True))
    symbols = np.asarray(analog.message(images))
    assert symbols.shape == (NUM_IMAGES, FEATURE_VALUES)  # 64 symbols: real, then imaginary parts
    # unit average energy per complex symbol: the squares of 2k reals sum to k
    np.testing.assert_allclose(np.sum(symbols**2, axis=-1), FEATURE_VALUES // 2, rtol=1e-5)
    assert EdgeEnsembleStrategy(members).message(images).shape == (NUM_IMAGES, 10)
    assert EdgeEnsembleStrategy([heads[0]], observation=encoder).message(images) is None


def test_one_compile_across_an_snr_sweep(encoder, heads, images):
    analog = dataclasses.replace(encoder, analog=True)
    strategy = EdgeEnsembleStrategy(heads, observation=analog)
    run = jax.jit(strategy)
    outcomes = [
        run(jax.random.key(6), images, Link(jnp.float32(snr), channel="rayleigh", backend="jax"))
        for snr in (-10.0, 0.0, 30.0)
    ]
    assert run._cache_size() == 1
    # noisier copies move the average further from the clean ensemble's
    clean = np.asarray(noiseless_average(strategy, images))
    errors = [np.mean(np.abs(np.asarray(o.logits) - clean)) for o in outcomes]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.slow  # compiles the Sionna LDPC link under jit: ~1 min on 2 busy cores
def test_direct_compiles_once_across_an_snr_sweep(direct, members, images):
    run = jax.jit(direct)
    key = jax.random.key(7)
    run(key, images, Link(jnp.float32(HIGH_SNR_DB), backend="jax"))
    hopeless = run(key, images, Link(jnp.float32(HOPELESS_SNR_DB), backend="jax")).logits
    assert run._cache_size() == 1
    np.testing.assert_allclose(hopeless, _local(members.member(0), images), rtol=1e-5, atol=1e-6)


def test_bad_input(members, encoder, digits_pixels, images, heads):
    member = members.member(0)
    with pytest.raises(ValueError, match="split_point: unknown 'conv9'"):
        SharedEncoder(member, "conv9", clip=1.0)
    with pytest.raises(ValueError, match="identity encoder"):
        SharedEncoder(member, None)
    with pytest.raises(ValueError, match="clip: None"):
        SharedEncoder(member, "conv2")
    with pytest.raises(ValueError, match="given with a bottleneck"):
        SharedEncoder(member, "conv2", Bottleneck(32, 8, rngs=nnx.Rngs(0)), clip=1.0)
    with pytest.raises(ValueError, match="analog: 'yes' is not a bool"):
        SharedEncoder(member, "conv2", analog="yes")
    with pytest.raises(ValueError, match="bits: 0 is not in"):
        SharedEncoder(member, "conv2", bits=0, clip=1.0)
    with pytest.raises(ValueError, match="bottleneck: takes 16 features"):
        SharedEncoder(member, "conv2", Bottleneck(16, 4, rngs=nnx.Rngs(0))).encode(images)
    with pytest.raises(ValueError, match="mode: unknown 'guess'"):
        DirectObservation(ImageLink(digits_pixels), mode="guess")
    with pytest.raises(ValueError, match="with crc=False the neighbours infer"):
        DirectObservation(ImageLink(digits_pixels), crc=False, mode="abstraction")
    with pytest.raises(ValueError, match="applies to the digital link, not analog"):
        SharedEncoder(member, "conv2", analog=True, mode="abstraction")
    with pytest.raises(ValueError, match="image_link: str is not"):
        DirectObservation("pixels")
    with pytest.raises(ValueError, match="observation must be None"):
        EdgeEnsembleStrategy(members, observation="direct")
    direct = EdgeEnsembleStrategy(members, observation=DirectObservation(ImageLink(digits_pixels)))
    with pytest.raises(ValueError, match="one SNR for the whole batch"):
        direct(jax.random.key(0), images, Link(jnp.zeros(NUM_IMAGES)))
    assert direct.name == "edge_ensemble_direct"
    assert EdgeEnsembleStrategy(heads, observation=encoder).name == "edge_ensemble_encoder"
    other = ModelConfig("cnn", (8, 8, 1), 10, 0.25)
    assert Head(build_model(other, jax.random.key(0)), "conv1").stage_names == (
        "conv2", "hidden", "logits",
    )  # fmt: skip
