"""The analog split strategy (deep JSCC of features): power, channel, gradients, cost, training."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.models.checkpoint import CheckpointMismatchError
from airinfer.models.ensemble import EnsembleConfig
from airinfer.models.train import TrainConfig, train_ensemble
from airinfer.models.zoo import ModelConfig, build_model, flops
from airinfer.phy.conventions import snr_db_to_no
from airinfer.strategies.base import Link
from airinfer.strategies.cost import Hardware, latency_s
from airinfer.strategies.jscc import (
    JSCCCodec,
    JSCCConfig,
    JSCCSplitStrategy,
    accuracy_vs_snr,
    analog_link,
    cached_train_jscc,
    codec_flops,
    jscc_logits,
    load_jscc,
    ofdm_positions,
    train_jscc,
    unit_energy_symbols,
)
from tests.conftest import complex_normal, normal

# float32 rounding of a mean of k squares, k <= 256
POWER_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def classifier(digits):
    """A small MLP trained briefly on digits (about 0.9 test accuracy)."""
    config = EnsembleConfig(ModelConfig("mlp", digits.image_shape, 10, 0.25), 1, "init")
    ensemble, _ = train_ensemble(digits, config, TrainConfig(epochs=8, seed=0))
    model = ensemble.member(0)
    model.eval()
    return model


def _config(**changes):
    base = JSCCConfig(
        split_point="hidden1", symbols=8, channel="awgn", hidden=32, epochs=4, backend="jax"
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def trained(classifier, digits):
    """A codec trained through the JAX twin of Rayleigh fading, with its training report."""
    config = _config(channel="rayleigh", epochs=6)
    codec, model, report = train_jscc(classifier, digits, config)
    return config, codec, model, report


# The strategy tests below share one strategy, one batch size and one link, so that
# its program is compiled once (jax.jit of the same strategy object reuses it, as
# accuracy_vs_snr does) and its eager run compiles its operations once.
ANALOG_BATCH = 50
ANALOG_HARDWARE = Hardware(device_flops_per_s=2e8, server_flops_per_s=5e12, symbol_rate_hz=1e5)


def _rayleigh(snr_db):
    """The shared link: Rayleigh fading through the JAX twin, a float32 SNR."""
    return Link(snr_db=jnp.float32(snr_db), channel="rayleigh", backend="jax")


@pytest.fixture(scope="module")
def analog(trained):
    """``(strategy, jitted)``: the analog split of ``trained`` and its jitted call."""
    config, codec, model, _ = trained
    strategy = JSCCSplitStrategy(model, codec, config, ANALOG_HARDWARE)
    return strategy, jax.jit(strategy)


def _codec(config, feature_shape, seed=0):
    return JSCCCodec.from_config(config, feature_shape, jax.random.key(seed))


# --------------------------------------------------------------------------- power constraint


def test_unit_energy_for_every_sample_at_any_input_scale():
    reals = normal(0, (64, 2 * 24))
    scales = 10.0 ** jnp.linspace(-30, 30, 64)  # each row its own scale
    reals = reals * scales[:, None]
    reals = reals.at[0].set(0.0).at[1].set(0.0).at[1, 5].set(-3e-38)  # zero and one tiny entry
    x = unit_energy_symbols(reals)
    assert x.shape == (64, 24) and x.dtype == jnp.complex64
    energy = np.mean(np.abs(np.asarray(x, np.complex128)) ** 2, axis=-1)
    np.testing.assert_allclose(energy, 1.0, atol=POWER_TOLERANCE)
    # a rescaled row sends the same symbols (the constraint, not the scale, sets the power)
    np.testing.assert_allclose(unit_energy_symbols(reals[2:] * 7.0), x[2:], rtol=1e-5, atol=1e-6)


def test_unit_energy_gradient_is_finite_for_a_zero_row():
    def total_power(reals):
        return jnp.sum(jnp.abs(unit_energy_symbols(reals)[:, :3]) ** 2)

    reals = jnp.zeros((2, 8)).at[1].set(jnp.arange(8.0))
    grad = jax.jit(jax.grad(total_power))(reals)  # one program, not one per operation
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0], 0.0)
    assert np.any(grad[1] != 0)


@pytest.mark.parametrize("side_info", [False, True])
def test_encoder_meets_the_power_constraint_for_adversarial_features(side_info):
    config = _config(symbols=16, side_info=side_info)
    codec = _codec(config, (2, 2, 6))
    base = normal(1, (6, 2, 2, 6))
    features = jnp.concatenate(
        [base * 1e-30, base * 1e30, jnp.zeros_like(base[:1]), jnp.abs(base) * 1e15, base]
    )
    snr_db = jnp.tile(jnp.array([-40.0, 60.0, jnp.inf, -jnp.inf, 0.0, 10.0]), 5)[: len(features)]
    x = codec.encode(features, snr_db)
    energy = np.mean(np.abs(np.asarray(x, np.complex128)) ** 2, axis=-1)
    np.testing.assert_allclose(energy, 1.0, atol=POWER_TOLERANCE)


# --------------------------------------------------------------------------- channel

# The channel tests send symbols of one shape, so that the link's operations, run
# eagerly, are compiled (and Sionna's traced) once per channel and backend.
LINK_SHAPE = (4096, 4)


@pytest.mark.parametrize("backend", ["jax", "sionna"])
@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_noise_free_link_returns_the_symbols(channel, backend):
    batch, k = LINK_SHAPE
    x = unit_energy_symbols(normal(2, (batch, 2 * k)))
    equalised, effective = analog_link(jax.random.key(3), x, jnp.inf, channel, backend=backend)
    # conj(h) h x / |h|^2 = x up to float rounding
    np.testing.assert_allclose(equalised, x, rtol=1e-5, atol=1e-5)
    assert effective.shape == x.shape and np.all(np.isposinf(effective))


@pytest.mark.parametrize("backend", ["jax", "sionna"])
def test_awgn_noise_has_the_stated_power(backend):
    """(1 + no) x_hat - x = n ~ CN(0, no); E|n|^2 = no, and |n|^2 ~ Exp has std no."""
    (batch, k), snr_db = LINK_SHAPE, 10.0
    samples = batch * k  # 16384
    tolerance = 5 / math.sqrt(samples)  # 5 sigma of the relative error of a mean of Exp(no)
    x = unit_energy_symbols(normal(4, (batch, 2 * k)))
    equalised, effective = analog_link(jax.random.key(5), x, snr_db, "awgn", backend=backend)
    no = float(snr_db_to_no(snr_db))
    noise = (1 + no) * np.asarray(equalised) - np.asarray(x)
    assert abs(np.mean(np.abs(noise) ** 2) / no - 1) < tolerance
    np.testing.assert_allclose(effective, snr_db, rtol=1e-6)


@pytest.mark.parametrize("backend", ["jax", "sionna"])
def test_rayleigh_effective_snr_has_one_unit_mean_gain_per_block(backend):
    """The effective SNR is snr + 10 log10|h|^2; E|h|^2 = 1 (exponential |h|^2, one per sample)."""
    (batch, k), snr_db = LINK_SHAPE, 5.0
    tolerance = 5 / math.sqrt(batch)  # 5 sigma of a mean of Exp(1): 0.078
    x = jnp.ones((batch, k), jnp.complex64)
    _, effective = analog_link(jax.random.key(6), x, snr_db, "rayleigh", backend=backend)
    gain = 10 ** ((np.asarray(effective) - snr_db) / 10)
    np.testing.assert_allclose(
        gain, np.broadcast_to(gain[:, :1], gain.shape), rtol=1e-5
    )  # block fading: one h per sample
    assert abs(gain[:, 0].mean() - 1) < tolerance


def test_ofdm_positions_spread_over_the_grid():
    (symbols, subcarriers), positions = ofdm_positions(16, 64)
    assert (symbols, subcarriers) == (1, 64)
    np.testing.assert_array_equal(positions, np.arange(0, 64, 4))
    (symbols, subcarriers), positions = ofdm_positions(100, 64)
    assert (symbols, subcarriers) == (2, 64)
    assert len(set(positions.tolist())) == 100 and positions.min() == 0 and positions.max() < 128


def test_tdl_a_on_the_jax_twin_equalises_to_the_symbols_at_high_snr():
    """The TDL-A link on the JAX twin: at 60 dB the MMSE estimates are the symbols
    (|error| <= 1e-2 wherever |h|^2 >= 1e-2), the effective SNR is 60 dB + |h|^2 in dB."""
    x = complex_normal(3, (8, 100))
    equalised, effective = analog_link(jax.random.key(1), x, 60.0, "tdl-a", backend="jax")
    assert equalised.shape == x.shape and effective.shape == x.shape
    gain = 10 ** ((np.asarray(effective) - 60.0) / 10)
    strong = gain >= 1e-2
    assert strong.mean() > 0.9
    np.testing.assert_allclose(np.asarray(equalised)[strong], np.asarray(x)[strong], atol=1e-2)


def test_bad_channel_backend_and_config_raise_value_errors():
    x = jnp.ones((2, 4), jnp.complex64)
    with pytest.raises(ValueError, match="channel: unknown 'rician'"):
        analog_link(jax.random.key(0), x, 0.0, "rician")
    with pytest.raises(ValueError, match=r"x must have shape \[batch, k\]"):
        analog_link(jax.random.key(0), x[0], 0.0, "awgn")
    with pytest.raises(ValueError, match="symbols: 0 is not an int >= 1"):
        JSCCConfig(symbols=0)
    with pytest.raises(ValueError, match=r"snr_range_db: \(5, -5\) is not finite with low <= high"):
        JSCCConfig(snr_range_db=(5, -5))
    with pytest.raises(ValueError, match="backend: unknown 'torch'"):
        JSCCConfig(backend="torch")
    with pytest.raises(ValueError, match="learning_rate: 0 is not > 0"):
        JSCCConfig(learning_rate=0)


# --------------------------------------------------------------------------- gradients


def _loss_of_codec(classifier, config, images, labels, snr_db, channel, backend, key):
    classifier_def, classifier_state = nnx.split(classifier)
    codec_def, _ = nnx.split(_codec(config, (64,)))

    def loss(codec_state):
        logits = jscc_logits(
            nnx.merge(classifier_def, classifier_state), nnx.merge(codec_def, codec_state),
            key, images, snr_db, channel, config, backend=backend,
        )  # fmt: skip
        return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels])

    return loss


def test_noise_free_gradients_through_sionna_match_the_jax_twin(classifier, digits):
    """Without noise both backends compute the same function: equal loss and gradients."""
    config = _config()
    images, labels = digits.train_images[:32], digits.train_labels[:32]
    state = nnx.state(_codec(config, (64,)))
    results = {}
    for backend in ("jax", "sionna"):
        loss = _loss_of_codec(
            classifier, config, images, labels, jnp.inf, "awgn", backend, jax.random.key(0)
        )
        results[backend] = jax.jit(jax.value_and_grad(loss))(state)
    (value_jax, grad_jax), (value_sionna, grad_sionna) = results["jax"], results["sionna"]
    np.testing.assert_allclose(value_sionna, value_jax, rtol=1e-6)
    leaves_jax, leaves_sionna = jax.tree.leaves(grad_jax), jax.tree.leaves(grad_sionna)
    for g_jax, g_sionna in zip(leaves_jax, leaves_sionna, strict=True):
        assert np.all(np.isfinite(g_sionna))
        np.testing.assert_allclose(g_sionna, g_jax, rtol=1e-4, atol=1e-6)
    assert max(float(jnp.max(jnp.abs(g))) for g in leaves_sionna) > 0


def _unit(tree):
    norm = jnp.sqrt(sum(jnp.vdot(leaf, leaf) for leaf in jax.tree.leaves(tree)))
    return jax.tree.map(lambda leaf: leaf / norm, tree)


def _assert_gradient_matches_finite_differences(loss, state, seed=0):
    """Central differences along unit directions vs the gradient's projections.

    Along the gradient itself (the derivative there is |g|) with step 1e-3,
    and along a random direction with step 3e-3: float32 rounding of a loss
    near 2 gives about 1e-4 of absolute error; larger steps cross ReLU kinks.
    """
    # one compiled program gives the gradient and, at the shifted points, the loss
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    _, grad = value_and_grad(state)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))
    random = jax.tree.map(lambda leaf: normal((seed, leaf.size), leaf.shape), state)

    def loss(state):
        return value_and_grad(state)[0]

    for direction, step, rtol, atol in ((grad, 1e-3, 0.01, 1e-3), (random, 3e-3, 0.1, 2e-4)):
        direction = _unit(direction)
        projected = float(
            sum(
                jnp.vdot(g, d)
                for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
            )
        )
        plus = loss(jax.tree.map(lambda p, d, s=step: p + s * d, state, direction))
        minus = loss(jax.tree.map(lambda p, d, s=step: p - s * d, state, direction))
        finite_difference = float((plus - minus) / (2 * step))
        assert abs(projected - finite_difference) <= rtol * abs(projected) + atol, (
            projected,
            finite_difference,
        )
    gradient_norm = float(jnp.sqrt(sum(jnp.vdot(g, g) for g in jax.tree.leaves(grad))))
    assert gradient_norm > 1e-2


def test_extreme_snrs_give_finite_logits_and_gradients(classifier, digits):
    """-40 dB, +60 dB and no noise, over Rayleigh fading (deep fades included: 256 draws)."""
    config = _config()
    images, labels = digits.train_images[:256], digits.train_labels[:256]
    state = nnx.state(_codec(config, (64,)))
    snr_db = jnp.repeat(jnp.array([-40.0, 60.0, jnp.inf, 0.0]), 64)
    loss = _loss_of_codec(
        classifier, config, images, labels, snr_db, "rayleigh", "jax", jax.random.key(8)
    )
    value, grad = jax.jit(jax.value_and_grad(loss))(state)
    assert np.isfinite(value)
    leaves = jax.tree.leaves(grad)
    assert all(np.all(np.isfinite(g)) for g in leaves) and any(np.any(g != 0) for g in leaves)


# AWGN alone is slow: the default run covers its gradient through the bridge by the
# noise-free comparison with the twin above, and with noise by the Rayleigh case
# (tests/phy/test_bridge.py checks the noise is the same forward and backward).
@pytest.mark.parametrize("channel", [pytest.param("awgn", marks=pytest.mark.slow), "rayleigh"])
def test_gradient_through_the_sionna_channel_matches_finite_differences(
    classifier, digits, channel
):
    """With noise (5 dB); the key fixes the channel draw, so the loss is a function of the codec."""
    config = _config()
    images, labels = digits.train_images[:32], digits.train_labels[:32]
    state = nnx.state(_codec(config, (64,)))
    loss = _loss_of_codec(
        classifier, config, images, labels, 5.0, channel, "sionna", jax.random.key(1)
    )
    _assert_gradient_matches_finite_differences(loss, state)


@pytest.mark.slow
def test_gradient_through_the_bridged_tdl_a_channel_matches_finite_differences(classifier, digits):
    """TDL-A over OFDM: here the gradient crosses the bridge (TF's own VJP)."""
    config = _config(channel="tdl-a", backend="sionna", symbols=8, ofdm_subcarriers=16)
    images, labels = digits.train_images[:32], digits.train_labels[:32]
    state = nnx.state(_codec(config, (64,)))
    loss = _loss_of_codec(
        classifier, config, images, labels, 5.0, "tdl-a", "sionna", jax.random.key(2)
    )
    _assert_gradient_matches_finite_differences(loss, state, seed=1)


# --------------------------------------------------------------------------- strategy


def test_strategy_is_jitted_deterministic_and_compiles_once(analog, digits):
    strategy, run = analog
    assert strategy.name == "split_analog"
    images = digits.test_images[:ANALOG_BATCH]
    key = jax.random.key(3)
    a = run(key, images, _rayleigh(0.0)).logits
    compiled = run._cache_size()
    b = run(key, images, _rayleigh(0.0)).logits
    c = run(jax.random.key(4), images, _rayleigh(0.0)).logits
    run(key, images, _rayleigh(12.0))
    assert a.shape == (ANALOG_BATCH, 10) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.asarray(a) != np.asarray(c)) > 0.9  # another channel draw
    assert run._cache_size() == compiled  # the SNR is traced: one compilation for the sweep
    eager = strategy(key, images, _rayleigh(0.0)).logits
    np.testing.assert_allclose(eager, a, rtol=1e-4, atol=1e-4)


# Two more compilations of the whole strategy; the default run covers the same
# comparison (jscc_logits, which the strategy calls, over both backends without
# noise) in test_noise_free_gradients_through_sionna_match_the_jax_twin.
@pytest.mark.slow
def test_noise_free_strategy_over_sionna_equals_the_twin(trained, digits):
    config, codec, model, _ = trained
    strategy = JSCCSplitStrategy(model, codec, config)
    run = jax.jit(strategy)
    images, key = digits.test_images[:50], jax.random.key(3)
    # noise-free awgn: the codec's reconstruction alone decides
    snr = jnp.full((50,), jnp.inf)
    jax_logits = run(key, images, Link(snr_db=snr, channel="awgn", backend="jax")).logits
    sionna_logits = run(key, images, Link(snr_db=snr, channel="awgn", backend="sionna")).logits
    np.testing.assert_allclose(sionna_logits, jax_logits, rtol=1e-5, atol=1e-5)


def test_cost_fields_are_exact(trained, analog, digits):
    config, codec, model, _ = trained
    strategy, run = analog
    hardware = ANALOG_HARDWARE
    images = digits.test_images[:ANALOG_BATCH]
    cost = strategy(jax.random.key(0), images, _rayleigh(3.0)).cost
    encoder, decoder = codec_flops(codec)
    shape = digits.image_shape
    assert cost.channel_uses == config.symbols == 8
    assert cost.payload_bits == 0
    assert cost.device_flops == flops(model, shape, "hidden1", "front") + encoder
    assert cost.server_flops == decoder + flops(model, shape, "hidden1", "back")
    assert cost.latency_s == latency_s(cost.device_flops, 8, cost.server_flops, hardware)
    # the networks' dense layers: a multiply-add is 2 flops; biases, ReLU and
    # the power normalisation add a few per unit
    features, hidden, k = 64, config.hidden, config.symbols
    dense_encoder = 2 * (features + 1) * hidden + 2 * hidden * 2 * k
    dense_decoder = 2 * 3 * k * hidden + 2 * hidden * features
    assert dense_encoder <= encoder <= dense_encoder + 20 * (hidden + k)
    assert dense_decoder <= decoder <= dense_decoder + 20 * (hidden + k + features)
    # jitted, the same numbers (float32 holds these integers exactly)
    jitted = run(jax.random.key(0), images, _rayleigh(3.0))
    np.testing.assert_array_equal([float(v) for v in jitted.cost[:4]], [float(v) for v in cost[:4]])


def test_strategy_rejects_mismatched_inputs(trained, digits):
    config, codec, model, _ = trained
    with pytest.raises(ValueError, match="split_point: unknown 'conv2'"):
        JSCCSplitStrategy(model, codec, dataclasses.replace(config, split_point="conv2"))
    with pytest.raises(ValueError, match="symbols: the codec sends 8, the config says 4"):
        JSCCSplitStrategy(model, codec, dataclasses.replace(config, symbols=4))
    strategy = JSCCSplitStrategy(model, codec, config)
    with pytest.raises(ValueError, match=r"images must have shape \[batch, H, W, C\]"):
        strategy(jax.random.key(0), digits.test_images[0], Link(0.0, backend="jax"))


# --------------------------------------------------------------------------- training


def test_training_reduces_the_loss_and_beats_chance(trained, analog, digits):
    """Digits, k = 8, 6 epochs through Rayleigh fading (SNR in [-10, 20] dB)."""
    config, codec, model, report = trained
    steps = 6 * (len(digits.train_labels) // config.batch_size)
    assert report.losses.shape == (steps,) and np.all(np.isfinite(report.losses))
    first, last = report.losses[:10].mean(), report.losses[-10:].mean()
    assert first > 1.5  # a fresh codec sends noise: near chance (ln 10 = 2.3)
    assert last < 0.5 * first, (first, last)
    strategy, _ = analog  # the codec and model of ``trained``, compiled for chunks of 50
    accuracy = accuracy_vs_snr(
        strategy, jax.random.key(0), digits.test_images, digits.test_labels, [-10.0, 20.0],
        channel="rayleigh", backend="jax", chunk_size=ANALOG_BATCH,
    )  # fmt: skip
    # 359 test images: binomial sigma <= 0.027; graceful, monotone in SNR, well above chance 0.1
    assert accuracy[1] > 0.75 and accuracy[1] > accuracy[0] + 0.1, accuracy


def test_fine_tuning_trains_the_back_and_never_the_front(classifier, digits):
    config = _config(fine_tune_back=True, epochs=1)
    _, model, _ = train_jscc(classifier, digits, config)
    before, after = nnx.state(classifier), nnx.state(model)
    front_before = nnx.state(classifier.stages[0])
    front_after = nnx.state(model.stages[0])
    for old, new in zip(jax.tree.leaves(front_before), jax.tree.leaves(front_after), strict=True):
        np.testing.assert_array_equal(old, new)
    changed = [
        not np.array_equal(old, new)
        for old, new in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    ]
    assert sum(changed) == 4  # the kernels and biases of hidden2 and logits


def test_checkpoint_cache_round_trip(classifier, digits, tmp_path):
    # the config of the ``trained`` fixture: its compiled training step serves again
    config = _config(channel="rayleigh", epochs=6)
    codec, model, report, path = cached_train_jscc(classifier, digits, 0, config, root=tmp_path)
    assert report is not None and path.parent == tmp_path and path.name.startswith("jscc-")
    again, model_again, report_again, path_again = cached_train_jscc(
        classifier, digits, 0, config, root=tmp_path
    )
    assert report_again is None and path_again == path
    for a, b in zip(
        jax.tree.leaves(nnx.state(codec)), jax.tree.leaves(nnx.state(again)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(model_again)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # another config or another classifier is another entry
    other = build_model(ModelConfig("mlp", digits.image_shape, 10, 0.25), jax.random.key(9))
    _, _, other_report, other_path = cached_train_jscc(other, digits, 0, config, root=tmp_path)
    assert other_report is not None and other_path != path
    with pytest.raises(CheckpointMismatchError, match="symbols: checkpoint has 8, expected 4"):
        load_jscc(path, classifier, dataclasses.replace(config, symbols=4))


# --------------------------------------------------------------------------- backends agree


@pytest.mark.slow
def test_sionna_and_jax_channels_give_statistically_equal_accuracy(trained, digits):
    """The same codec over Sionna's channel and over the JAX twin: equal accuracy within noise.

    5 channel draws of the 359 test images per point (N = 1795); the difference of
    two accuracies has sigma <= sqrt(2 * 0.25 / 1795) = 0.017; bound 4 sigma.
    """
    config, codec, model, _ = trained
    strategy = JSCCSplitStrategy(model, codec, config)
    images = np.concatenate([digits.test_images] * 5)
    labels = np.concatenate([digits.test_labels] * 5)
    points = [-5.0, 0.0, 5.0]
    for channel in ("awgn", "rayleigh"):
        results = {
            backend: accuracy_vs_snr(
                strategy,
                jax.random.key(11),
                images,
                labels,
                points,
                channel=channel,
                backend=backend,
                chunk_size=len(labels),
            )  # fmt: skip
            for backend in ("jax", "sionna")
        }
        np.testing.assert_array_less(np.abs(results["jax"] - results["sionna"]), 4 * 0.017)


@pytest.mark.slow
def test_training_through_sionna_reaches_the_accuracy_of_training_through_the_twin(
    classifier, digits
):
    """Trained through each backend (other channel draws): test accuracies within 0.08."""
    accuracies = {}
    for backend in ("jax", "sionna"):
        config = _config(channel="rayleigh", epochs=6, backend=backend)
        codec, model, _ = train_jscc(classifier, digits, config)
        accuracies[backend] = accuracy_vs_snr(
            JSCCSplitStrategy(model, codec, config), jax.random.key(0),
            np.concatenate([digits.test_images] * 3), np.concatenate([digits.test_labels] * 3),
            [0.0, 10.0], channel="rayleigh", backend="jax",
        )  # fmt: skip
    np.testing.assert_array_less(np.abs(accuracies["jax"] - accuracies["sionna"]), 0.08)


def test_received_symbols_are_the_mmse_estimates_of_the_message(analog, digits):
    """Over AWGN the receiver's estimate is ``y / (1 + no)``: noise-free it is the message;
    at 0 dB (no = 1) its squared error per real is no / (1 + no) / 2 = 0.25 on average."""
    strategy, _ = analog
    images = digits.test_images[:ANALOG_BATCH]
    received = jax.jit(strategy.received)
    link = Link(snr_db=jnp.float32(jnp.inf), channel="awgn", backend="jax")
    sent = np.asarray(strategy.message(images, jnp.inf))  # the encoder knows the SNR
    np.testing.assert_allclose(received(jax.random.key(0), images, link), sent, atol=1e-5)
    sent = np.asarray(strategy.message(images, 0.0))
    link = Link(snr_db=jnp.float32(0.0), channel="awgn", backend="jax")
    errors = np.concatenate([
        (np.asarray(received(jax.random.key(seed), images, link)) - sent).ravel() ** 2
        for seed in range(8)
    ])  # fmt: skip
    # the mean of N squared errors: 6 standard errors
    assert abs(errors.mean() - 0.25) < 6 * errors.std() / np.sqrt(errors.size)


def test_message_is_the_unit_energy_symbols(trained, analog, digits):
    config = trained[0]
    strategy, _ = analog
    sent = strategy.message(digits.test_images[:ANALOG_BATCH], 5.0)
    assert sent.shape == (ANALOG_BATCH, 2 * config.symbols)
    energy = jnp.mean(sent[:, : config.symbols] ** 2 + sent[:, config.symbols :] ** 2, axis=-1)
    np.testing.assert_allclose(energy, 1.0, rtol=1e-5)
