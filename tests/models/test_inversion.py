"""Model inversion as a privacy proxy: closed forms, leaks of known information, bad input."""

import dataclasses
import math

import jax
import numpy as np
import pytest
from flax import nnx

from airinfer.models import load_dataset
from airinfer.models.inversion import (
    DeconvDecoder,
    InversionConfig,
    blind_psnr,
    privacy_psnr,
    psnr_db,
    reconstruction_mse,
    reconstruction_psnr,
    to_unit_range,
    train_inverter,
)
from airinfer.models.inversion.networks import choose_decoders
from airinfer.phy.conventions import reals_to_symbols

# Long programs (inverters trained for many steps, shared by the tests): full
# XLA optimisation pays (tests/conftest.py).
pytestmark = pytest.mark.xla_optimized

# A quick attacker: the default decoder with fewer epochs (each training ~1-3 s on 2 cores).
# Every training below uses it: with the same epochs (the length of the learning-rate
# schedule) and the same message shape, a training reuses another's compiled step.
QUICK = InversionConfig(epochs=40)


@pytest.fixture(scope="module")
def digits():
    """Digits in [0, 1]: ``(train [1294, 8, 8, 1], test [359, 8, 8, 1])``."""
    data = load_dataset("digits")
    return to_unit_range(data.train_images, data), to_unit_range(data.test_images, data)


def pool(images, factor):
    """Average f × f blocks, ``[N, 8, 8, 1] -> [N, 8/f, 8/f, 1]``: less information."""
    n, h, w, c = images.shape
    return images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def pooled_inverters(digits):
    """QUICK inverters (key 0) of the f × f pooled digits, f = 1, 2, 4, shared by the tests."""
    train, _ = digits
    return {f: train_inverter(jax.random.key(0), pool(train, f), train, QUICK) for f in (1, 2, 4)}


def params_equal(first, second) -> bool:
    """Whether two inverters have the same parameters, bit for bit."""
    pairs = zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params), strict=True)
    return all(np.array_equal(a, b) for a, b in pairs)


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


def test_psnr_closed_form():
    assert psnr_db(0.01) == pytest.approx(20.0, abs=1e-12)
    assert psnr_db(1.0) == 0.0
    assert psnr_db(1e-3) == pytest.approx(30.0, abs=1e-12)
    assert psnr_db(255.0**2 / 100.0, peak=255.0) == pytest.approx(20.0, abs=1e-12)
    assert psnr_db(0.0) == math.inf
    for bad in (-1e-3, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="mse"):
            psnr_db(bad)
    with pytest.raises(ValueError, match="peak"):
        psnr_db(0.1, peak=0.0)


def test_blind_psnr_closed_form():
    # training mean 0.5 everywhere; test images at 0.6: MSE 0.01, PSNR 20 dB
    train = np.stack([np.full((4, 4, 1), 0.25), np.full((4, 4, 1), 0.75)]).astype(np.float32)
    test = np.full((3, 4, 4, 1), 0.6, np.float32)
    assert blind_psnr(train, test) == pytest.approx(20.0, abs=1e-5)
    # per-pixel mean: a test image equal to the training mean is reconstructed exactly
    assert blind_psnr(train, train.mean(axis=0, keepdims=True)) == math.inf


def test_to_unit_range_recovers_the_digit_counts():
    data = load_dataset("digits")
    unit = to_unit_range(data.test_images, data)
    assert unit.min() == 0.0 and unit.max() == 1.0
    # digits' raw pixels are integer counts 0..16
    np.testing.assert_allclose(unit * 16, np.round(unit * 16), atol=1e-4)
    with pytest.raises(ValueError, match="dataset"):
        fake = type("Fake", (), {"name": "mnist", "mean": data.mean, "std": data.std})()
        to_unit_range(data.test_images, fake)


# ---------------------------------------------------------------------------
# Leaks of known information
# ---------------------------------------------------------------------------


def test_empty_message_is_the_blind_attacker(digits):
    train, test = digits
    empty_train, empty_test = np.zeros((len(train), 0)), np.zeros((len(test), 0))
    inverter = train_inverter(jax.random.key(0), empty_train, train, QUICK)
    reconstructions = inverter(empty_test)
    # nothing to condition on: one image for every row, exactly
    assert np.array_equal(reconstructions, np.broadcast_to(reconstructions[0], test.shape))
    # it starts at the mean of 90 % of the training rows: within 0.1 dB of the full-mean floor
    assert reconstruction_psnr(inverter, empty_test, test) == pytest.approx(
        blind_psnr(train, test), abs=0.1
    )


def test_identity_leak_approaches_perfect_reconstruction(digits, pooled_inverters):
    train, test = digits
    blind = blind_psnr(train, test)
    psnr = reconstruction_psnr(pooled_inverters[1], test, test)
    # measured 28.0 dB after QUICK's 40 epochs (29.8 dB after the default 100) against
    # a floor of 11.4 dB; 27 dB is an RMS error of 0.045, under a grey level of digits (1/16)
    assert psnr >= 27.0
    assert psnr >= blind + 15.0
    # a linear decoder can represent the identity exactly: near-perfect (measured 59 dB)
    linear = privacy_psnr(jax.random.key(0), train, train, test, test, InversionConfig(hidden=()))
    assert linear >= 50.0


def test_noise_leak_gives_no_more_than_the_floor(digits):
    train, test = digits
    rng = np.random.default_rng(0)
    noise_train = rng.normal(size=(len(train), 16)).astype(np.float32)
    noise_test = rng.normal(size=(len(test), 16)).astype(np.float32)
    inverter = train_inverter(jax.random.key(0), noise_train, train, QUICK)
    psnr = reconstruction_psnr(inverter, noise_test, test)
    # Messages independent of the images: no reconstruction beats the test set's own
    # mean image in expectation. 0.1 dB covers chance correlations of 359 test rows.
    oracle = psnr_db(np.mean((test - test.mean(axis=0)) ** 2))
    assert psnr <= oracle + 0.1
    assert psnr <= blind_psnr(train, test) + 0.3
    # the blind start and early stopping keep it from doing much worse than the floor
    assert psnr >= blind_psnr(train, test) - 0.5
    # early stopping: it ran exactly `patience` epochs past its best
    assert inverter.epochs_trained == inverter.best_epoch + QUICK.patience < QUICK.epochs


def test_more_information_gives_higher_psnr(digits, pooled_inverters):
    train, test = digits
    psnrs = [reconstruction_psnr(pooled_inverters[f], pool(test, f), test) for f in (1, 2, 4)]
    blind = blind_psnr(train, test)
    # measured (digits, 40 epochs): 8×8 ≈ 29, 4×4 ≈ 20, 2×2 ≈ 13.5, blind 11.4 dB
    assert psnrs[0] >= psnrs[1] + 3.0
    assert psnrs[1] >= psnrs[2] + 2.0
    assert psnrs[2] >= blind + 1.0


@pytest.mark.slow  # compiling the transposed convolutions took 20-40 s on the shared 2-core CPU
def test_deconv_decoder_and_the_best_of_both(digits):
    train, test = digits
    config = InversionConfig(epochs=10, conv_channels=16)
    sent_train, sent_test = pool(train, 4), pool(test, 4)
    fitted = {
        decoder: train_inverter(
            jax.random.key(0), sent_train, train, dataclasses.replace(config, decoder=decoder)
        )
        for decoder in ("deconv", "mlp", "best")
    }
    deconv = fitted["deconv"]
    assert deconv.decoder == "deconv"
    reconstructions = deconv(sent_test)
    assert reconstructions.shape == test.shape
    assert reconstructions.min() >= 0.0 and reconstructions.max() <= 1.0
    # measured 13.1 dB against a floor of 11.4 dB (the MLP: 13.5 dB)
    assert reconstruction_psnr(deconv, sent_test, test) >= blind_psnr(train, test) + 1.0
    # "best" trains both on the same split and batches and keeps the lower validation MSE
    winner = min((fitted["deconv"], fitted["mlp"]), key=lambda inverter: inverter.val_mse)
    assert fitted["best"].decoder == winner.decoder
    assert fitted["best"].val_mse == winner.val_mse
    assert params_equal(fitted["best"], winner)


@pytest.mark.parametrize(
    "decoder, message_shape, image_shape, expected",
    [
        ("auto", (14, 14, 32), (28, 28, 1), ("deconv",)),  # upsampled feature maps
        ("auto", (28, 28, 1), (28, 28, 1), ("mlp",)),  # full resolution: the linear path
        ("auto", (2, 2, 64), (8, 8, 1), ("mlp",)),  # small images
        ("auto", (128,), (28, 28, 1), ("mlp",)),
        ("best", (7, 7, 64), (28, 28, 1), ("mlp", "deconv")),
        ("best", (10,), (28, 28, 1), ("mlp",)),
        ("deconv", (2, 2, 64), (8, 8, 1), ("deconv",)),
        ("mlp", (7, 7, 64), (28, 28, 1), ("mlp",)),
    ],
)
def test_decoder_choice_by_shape(decoder, message_shape, image_shape, expected):
    config = InversionConfig(decoder=decoder)
    assert choose_decoders(config, message_shape, image_shape) == expected


@pytest.mark.parametrize(
    "message_shape, image_shape",
    [
        ((2, 2, 64), (8, 8, 1)),
        ((7, 7, 4), (28, 28, 1)),
        ((3, 5, 2), (8, 8, 3)),
        ((8, 8, 1), (8, 8, 1)),
    ],
)
def test_deconv_decoder_shapes(message_shape, image_shape):
    mean_image = np.full(image_shape, 0.25, np.float32)

    def output(x):
        return DeconvDecoder(message_shape, mean_image, 16, rngs=nnx.Rngs(0))(x)

    # shapes only: nothing is compiled
    out = jax.eval_shape(output, jax.ShapeDtypeStruct((2, *message_shape), np.float32))
    assert out.shape == (2, *image_shape)


def test_untrained_deconv_decoder_is_the_blind_attacker():
    mean_image = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8, 1)
    message = np.random.default_rng(0).normal(size=(2, 2, 2, 3)).astype(np.float32)
    # an rbg key: threefry compiled a large program per weight tensor (16 s here)
    rngs = nnx.Rngs(params=jax.random.key(0, impl="rbg"))
    out = DeconvDecoder((2, 2, 3), mean_image, 16, rngs=rngs)(message)
    # the output weights start at zero: whatever the message, the mean image
    np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(mean_image, out.shape))


# ---------------------------------------------------------------------------
# Determinism, message types
# ---------------------------------------------------------------------------


def test_same_key_same_inverter_other_key_other_inverter(digits, pooled_inverters):
    train, test = digits
    config = QUICK
    sent_train, sent_test = pool(train, 2), pool(test, 2)
    first = pooled_inverters[2]  # key 0
    again = train_inverter(jax.random.key(0), sent_train, train, config)
    other = train_inverter(jax.random.key(8), sent_train, train, config)
    assert params_equal(first, again)
    assert not params_equal(first, other)
    assert reconstruction_mse(first, sent_test, test) == reconstruction_mse(again, sent_test, test)
    assert reconstruction_mse(first, sent_test, test) != reconstruction_mse(other, sent_test, test)


def test_complex_messages_are_their_real_and_imaginary_parts(digits):
    train, test = digits
    config = QUICK
    symbols_train = np.asarray(reals_to_symbols(pool(train, 2).reshape(len(train), -1)))
    reals_train = np.concatenate([symbols_train.real, symbols_train.imag], axis=-1)
    from_complex = train_inverter(jax.random.key(0), symbols_train, train, config)
    from_reals = train_inverter(jax.random.key(0), reals_train, train, config)
    assert from_complex.message_shape == (16,)
    assert params_equal(from_complex, from_reals)
    # integer votes and a flat [N] message are accepted too
    votes = np.argmax(pool(train, 4).reshape(len(train), -1), axis=-1)
    assert train_inverter(jax.random.key(0), votes, train, config).message_shape == (1,)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_bad_input_raises_clear_errors(digits, pooled_inverters):
    train, test = digits
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"sent_train: 10 rows for 1294 images"):
        train_inverter(key, train[:10], train)
    with pytest.raises(ValueError, match=r"images_train: shape \[1294, 8, 8\]"):
        train_inverter(key, train, train[..., 0])
    data = load_dataset("digits")
    with pytest.raises(ValueError, match="images_train: values span .*to_unit_range"):
        train_inverter(key, data.train_images, data.train_images)
    with pytest.raises(ValueError, match="sent_train: contains NaN"):
        train_inverter(key, np.full((len(train), 3), np.nan), train)
    with pytest.raises(ValueError, match="decoder: 'deconv' needs messages"):
        train_inverter(key, train.reshape(len(train), -1), train, InversionConfig(decoder="deconv"))
    with pytest.raises(ValueError, match="decoder: 'best' chooses on validation data"):
        train_inverter(key, train, train, InversionConfig(decoder="best", validation_fraction=0.0))
    with pytest.raises(ValueError, match="validation_fraction: 0.1 of 4 rows"):
        train_inverter(key, train[:4], train[:4])
    # test messages of another shape: refused before any training
    with pytest.raises(ValueError, match=r"sent_test: per-sample shape \[4, 4, 1\] differs"):
        privacy_psnr(key, train, train, pool(test, 2), test)
    with pytest.raises(ValueError, match=r"images_test: image shape \[4, 4, 1\] differs"):
        privacy_psnr(key, train, train, test, pool(test, 2))
    inverter = pooled_inverters[4]  # trained on pool(train, 4)
    with pytest.raises(ValueError, match=r"sent: per-sample shape \[4, 4, 1\] differs"):
        reconstruction_psnr(inverter, pool(test, 2), test)
    with pytest.raises(ValueError, match="sent_test: 5 rows for 359 images"):
        reconstruction_psnr(inverter, pool(test, 4)[:5], test)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", 1.5),
        ("learning_rate", 0.0),
        ("weight_decay", -1.0),
        ("hidden", (64, 0)),
        ("decoder", "unet"),
        ("validation_fraction", 1.0),
        ("patience", -1),
        ("conv_channels", 0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        InversionConfig(**{field: value})
