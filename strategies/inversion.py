"""Model inversion as a privacy proxy: how well can the input be rebuilt from what is sent?

An attacker who observes what leaves the device (raw pixels, quantised split
features, channel symbols, softmax outputs, votes, or nothing at all) for a set
of inputs trains an *inverse network* on those pairs and tries to reconstruct
unseen inputs from their messages alone. The reconstruction PSNR on a test set
is the privacy proxy of the survey's Table I: the higher, the more the message
reveals. Its floor is :func:`blind_psnr`, the PSNR of guessing the mean
training image, which is what an attacker gets when no information leaves the
device.

Images are compared in their natural ``[0, 1]`` range (``peak = 1``): the data
sets of :mod:`models.datasets` are normalised per channel, and
:func:`to_unit_range` undoes that. PSNR is computed from the mean squared error
over all pixels of the whole test set, ``PSNR = 10·log10(1 / MSE)`` dB (not the
average of per-image PSNRs, which a single perfect reconstruction would make
infinite).

Two inverse networks:

* an MLP (:class:`MLPDecoder`): the flattened message through ReLU hidden
  layers, plus a linear path from message to image;
* a small transposed-convolution decoder (:class:`DeconvDecoder`) for
  messages with a spatial layout ``[H', W', C']``: a 3×3 convolution,
  stride-2 transposed convolutions until the image size is reached or passed
  (then a crop), and a 3×3 convolution to the image channels.

``decoder="auto"`` picks by shape: the deconvolution decoder for spatial
messages at a lower resolution than images of at least 16×16 pixels (feature
maps of a convolutional front end), the MLP for everything else (vectors,
logits, votes, symbols, full-resolution images, small images).
``decoder="best"`` trains both where both apply and keeps the one with the
lower validation MSE: the stronger attack, at the cost of both trainings.

Both end in a linear layer whose weights start at zero, added to a trainable
per-pixel bias that starts at the mean training image: the untrained inverter
*is* the blind attacker, and training can only move it away from that floor
where the messages help (on validation data). Reconstructions are clipped to
``[0, 1]``, which can only reduce the error against images in that range.
Messages are standardised per element with the attacker's training statistics
(an invertible map: it changes no information, only the conditioning).
Training minimises the MSE with Adam, on a held-out validation split with
early stopping, and keeps the parameters of the best validation epoch.

Example::

    import jax
    from airinfer.models import load_dataset
    from airinfer.strategies.inversion import (
        InversionConfig, blind_psnr, privacy_psnr, to_unit_range,
    )

    data = load_dataset("digits")
    x_train = to_unit_range(data.train_images, data)
    x_test = to_unit_range(data.test_images, data)
    leak = privacy_psnr(jax.random.key(0), x_train, x_train, x_test, x_test)  # raw pixels
    floor = blind_psnr(x_train, x_test)
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from airinfer.models.datasets import Dataset, epoch_batches

__all__ = [
    "DECODERS",
    "PIXEL_PEAK",
    "InversionConfig",
    "Inverter",
    "MLPDecoder",
    "DeconvDecoder",
    "to_unit_range",
    "psnr_db",
    "reconstruction_mse",
    "reconstruction_psnr",
    "blind_psnr",
    "train_inverter",
    "privacy_psnr",
]

DECODERS = ("auto", "mlp", "deconv", "best")

# The largest raw pixel value of each data set: digits counts 0..16 set bits of
# a 4×4 block of the original bitmaps, the others are 8-bit images.
PIXEL_PEAK = {"digits": 16.0, "fashion_mnist": 255.0, "cifar10": 255.0}

# Rows evaluated per call when reconstructing: bounds memory, one compiled shape.
_EVAL_CHUNK = 1024
# Message elements whose training spread is below this are constant for the
# attacker: they are centred but not scaled (scaling would blow up test noise).
_MIN_FEATURE_STD = 1e-6
# "auto" picks the deconvolution decoder for upsampled feature maps from 16×16
# images up. Measured (2-core CPU): on 8×8 digits the MLP did as well (identity
# leak 29.9 against 27.4 dB, 2×2 block means 13.5 against 13.6 dB) and trained
# over 10× faster; on Fashion-MNIST (5000 rows, 20 epochs) the deconvolution
# decoder won on the 14×14×32 maps of a CNN's first stage (26.9 against 22.0
# dB), the MLP's linear path on raw pixels (34.5 against 29.0 dB), and they
# tied on 7×7×64 maps (18.0 against 18.6 dB).
_DECONV_MIN_PIXELS = 256
# Images may exceed [0, 1] by float rounding of the de-normalisation.
_RANGE_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class InversionConfig:
    """How the inverse network is built and trained.

    The randomness (initialisation, validation split, batch order) comes from
    the key given to :func:`train_inverter`, so a config holds no seed.

    Attributes:
        epochs: maximum passes over the attacker's training rows.
        batch_size: rows per step (clipped to the number of training rows).
        learning_rate: peak learning rate of Adam, cosine-decayed to 0 over
            ``epochs``.
        weight_decay: decoupled weight decay (AdamW).
        hidden: widths of the MLP decoder's ReLU hidden layers (``()``: a
            linear decoder).
        linear_path: add a linear map from message to image to the MLP
            decoder (see :class:`MLPDecoder`).
        conv_channels: channels of the deconvolution decoder's first stage;
            each upsampling halves them, down to 16.
        decoder: ``"auto"`` (by the shapes, see the module docstring),
            ``"mlp"``, ``"deconv"`` (needs ``[H', W', C']`` messages) or
            ``"best"`` (both where both apply, the lower validation MSE kept).
        validation_fraction: share of the training rows held out for early
            stopping; 0 trains for exactly ``epochs`` and keeps the last
            parameters.
        patience: stop after this many epochs without a better validation
            MSE; 0 never stops early (the best epoch is still kept).
    """

    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    hidden: tuple[int, ...] = (256, 256)
    linear_path: bool = True
    conv_channels: int = 32
    decoder: str = "auto"
    validation_fraction: float = 0.1
    patience: int = 10

    def __post_init__(self):
        for name in ("epochs", "batch_size", "conv_channels"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}: {value!r} is not an int >= 1")
        if not (isinstance(self.patience, int) and self.patience >= 0):
            raise ValueError(f"patience: {self.patience!r} is not an int >= 0")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: {self.learning_rate!r} is not > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: {self.weight_decay!r} is not >= 0")
        hidden = tuple(self.hidden)
        if not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"hidden: {self.hidden!r} is not a tuple of ints >= 1")
        object.__setattr__(self, "hidden", hidden)  # JSON gives lists; keep it hashable
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder: unknown {self.decoder!r}; allowed: {', '.join(DECODERS)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction: {self.validation_fraction!r} is not in [0, 1)")


# ---------------------------------------------------------------------------
# Images in [0, 1] and the PSNR
# ---------------------------------------------------------------------------


def to_unit_range(images, dataset: Dataset) -> np.ndarray:
    """Undo a data set's normalisation: images in their natural ``[0, 1]`` range.

    Args:
        images: ``[N, H, W, C]`` float, normalised as ``dataset``'s images
            (``(raw - mean) / std`` per channel).
        dataset: the :class:`~models.datasets.Dataset` they come from.

    Returns:
        ``[N, H, W, C]`` float32, ``raw / PIXEL_PEAK[dataset.name]``, clipped
        to ``[0, 1]`` (the de-normalisation is exact up to float rounding).
    """
    if dataset.name not in PIXEL_PEAK:
        raise ValueError(
            f"dataset: no pixel peak known for {dataset.name!r}; known: {', '.join(PIXEL_PEAK)}"
        )
    raw = np.asarray(images, np.float32) * dataset.std + dataset.mean
    return np.clip(raw / PIXEL_PEAK[dataset.name], 0.0, 1.0).astype(np.float32)


def psnr_db(mse, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10·log10(peak² / mse)`` in dB.

    Args:
        mse: mean squared error, a float >= 0.
        peak: the largest possible pixel value (1 for images in ``[0, 1]``).

    Returns:
        The PSNR as a Python float; ``inf`` for ``mse == 0``.
    """
    mse = float(mse)
    if not (mse >= 0.0 and math.isfinite(mse)):
        raise ValueError(f"mse: {mse!r} is not a finite number >= 0")
    if not peak > 0:
        raise ValueError(f"peak: {peak!r} is not > 0")
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak**2 / mse)


def _check_images(images, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] < 1 or min(images.shape[1:]) < 1:
        raise ValueError(f"{name}: shape {list(images.shape)} is not [N, H, W, C] with N >= 1")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{name}: dtype {images.dtype} is not a float type")
    images = images.astype(np.float32)
    low, high = float(images.min()), float(images.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(
            f"{name}: values span [{low:.3g}, {high:.3g}], expected images in [0, 1] "
            "(undo the data set's normalisation with to_unit_range)"
        )
    return np.clip(images, 0.0, 1.0)


def blind_psnr(images_train, images_test) -> float:
    """PSNR of guessing the mean training image for every test image.

    What an attacker achieves when nothing about the input leaves the device:
    the floor of every privacy PSNR.

    Args:
        images_train: ``[N, H, W, C]`` float in ``[0, 1]``, the attacker's images.
        images_test: ``[M, H, W, C]`` float in ``[0, 1]``.

    Returns:
        PSNR in dB (peak 1) of the mean training image against ``images_test``.
    """
    images_train = _check_images(images_train, "images_train")
    images_test = _check_images(images_test, "images_test")
    if images_train.shape[1:] != images_test.shape[1:]:
        raise ValueError(
            f"images_test: image shape {list(images_test.shape[1:])} differs from "
            f"images_train's {list(images_train.shape[1:])}"
        )
    mean_image = images_train.mean(axis=0, dtype=np.float64)
    return psnr_db(np.mean((images_test - mean_image) ** 2))


# ---------------------------------------------------------------------------
# Messages: any per-sample array as float32
# ---------------------------------------------------------------------------


def _as_message(sent, name: str) -> np.ndarray:
    """``sent [N, ...]`` of any dtype -> float32 ``[N, ...]``.

    Complex messages are unfolded into real and imaginary parts on the last axis.

    ``[N]`` becomes ``[N, 1]``; an empty message ``[N, 0]`` becomes one
    constant zero per row, so that the decoder reduces to a learned constant
    image (the blind attacker).
    """
    sent = np.asarray(sent)
    if sent.ndim < 1 or sent.shape[0] < 1:
        raise ValueError(f"{name}: shape {list(sent.shape)} has no leading batch axis N >= 1")
    if np.iscomplexobj(sent):
        sent = np.concatenate([sent.real, sent.imag], axis=-1)
    elif not (np.issubdtype(sent.dtype, np.number) or sent.dtype == np.bool_):
        raise ValueError(f"{name}: dtype {sent.dtype} is not numeric")
    sent = sent.astype(np.float32)
    if sent.ndim == 1:
        sent = sent[:, None]
    if sent[0].size == 0:
        return np.zeros((sent.shape[0], 1), np.float32)
    if not np.all(np.isfinite(sent)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return sent


# ---------------------------------------------------------------------------
# The inverse networks
# ---------------------------------------------------------------------------

_KERNEL_INIT = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")


class MLPDecoder(nnx.Module):
    """Flattened message ``[B, D]`` -> image ``[B, H, W, C]``: ReLU MLP plus a linear path.

    The output is ``mean_image + W_out·MLP(x) + W_lin·x``: a per-pixel bias
    that starts at ``mean_image`` and output weights that start at zero, so the
    untrained decoder is the blind attacker. The linear path (kept when there
    are hidden layers and ``linear_path``) makes the attack at least as strong
    as a linear decoder: on digits a ReLU MLP alone learnt the identity leak
    only to 25 dB, a linear map to 59 dB. The output is not bounded; clip it to
    ``[0, 1]`` for images.
    """

    def __init__(
        self, in_features: int, mean_image, hidden, linear_path: bool = True, *, rngs: nnx.Rngs
    ):
        widths = (in_features, *hidden)
        self.hidden = nnx.List(
            [
                nnx.Linear(a, b, kernel_init=_KERNEL_INIT, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        )
        self.image_shape = tuple(np.shape(mean_image))
        zero_linear = functools.partial(
            nnx.Linear, use_bias=False, kernel_init=nnx.initializers.zeros, rngs=rngs
        )
        self.out = zero_linear(widths[-1], math.prod(self.image_shape))
        self.linear = (
            zero_linear(in_features, self.out.out_features) if hidden and linear_path else None
        )
        self.image_bias = nnx.Param(jnp.asarray(mean_image, jnp.float32))

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        y = x
        for layer in self.hidden:
            y = jax.nn.relu(layer(y))
        y = self.out(y)
        if self.linear is not None:
            y = y + self.linear(x)
        return y.reshape(x.shape[0], *self.image_shape) + self.image_bias


def _upsampling_steps(size: int, target: int) -> int:
    """Doublings that take ``size`` to at least ``target``."""
    return math.ceil(math.log2(target / size)) if size < target else 0


class DeconvDecoder(nnx.Module):
    """Spatial message ``[B, H', W', C']`` -> image ``[B, H, W, C]``.

    A 3×3 convolution, then stride-2 3×3 transposed convolutions (ReLU) until
    both image axes are reached or passed, a crop to ``H × W`` (top-left, as
    the classifiers' ceil-halving pads bottom and right), and a 3×3
    convolution to ``C`` channels whose weights start at zero, added to a
    per-pixel bias that starts at ``mean_image`` (the blind attacker, as in
    :class:`MLPDecoder`). The output is not bounded.
    """

    def __init__(self, in_shape, mean_image, channels: int, *, rngs: nnx.Rngs):
        (h_in, w_in, c_in), (h, w, c) = in_shape, np.shape(mean_image)
        steps = max(_upsampling_steps(h_in, h), _upsampling_steps(w_in, w))
        conv = functools.partial(nnx.Conv, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.stem = conv(c_in, channels, kernel_init=_KERNEL_INIT)
        ups, size_h, size_w = [], h_in, w_in
        for _ in range(steps):
            # an axis already at its size keeps stride 1 (non-square upsampling)
            strides = (2 if size_h < h else 1, 2 if size_w < w else 1)
            size_h, size_w = size_h * strides[0], size_w * strides[1]
            out = max(16, channels // 2)
            ups.append(
                nnx.ConvTranspose(
                    channels,
                    out,
                    (3, 3),
                    strides=strides,
                    padding="SAME",
                    kernel_init=_KERNEL_INIT,
                    rngs=rngs,
                )  # fmt: skip
            )
            channels = out
        self.ups = nnx.List(ups)
        self.out = conv(channels, c, use_bias=False, kernel_init=nnx.initializers.zeros)
        self.image_bias = nnx.Param(jnp.asarray(mean_image, jnp.float32))
        self.image_shape = (h, w, c)

    def __call__(self, x):
        x = jax.nn.relu(self.stem(x))
        for layer in self.ups:
            x = jax.nn.relu(layer(x))
        h, w, _ = self.image_shape
        return self.out(x[:, :h, :w, :]) + self.image_bias


def _choose_decoders(config: InversionConfig, message_shape, image_shape) -> tuple[str, ...]:
    """The decoder kinds to train for ``config.decoder`` (see :class:`InversionConfig`)."""
    spatial = len(message_shape) == 3 and min(message_shape[:2]) >= 2
    if config.decoder == "deconv" and not spatial:
        raise ValueError(
            f"decoder: 'deconv' needs messages [N, H', W', C'] with H', W' >= 2, "
            f"got per-sample shape {list(message_shape)}"
        )
    if config.decoder == "best":
        if config.validation_fraction == 0:
            raise ValueError("decoder: 'best' chooses on validation data; validation_fraction is 0")
        return ("mlp", "deconv") if spatial else ("mlp",)
    if config.decoder == "auto":
        if not spatial:
            return ("mlp",)
        large = image_shape[0] * image_shape[1] >= _DECONV_MIN_PIXELS
        upsampled = message_shape[0] < image_shape[0] or message_shape[1] < image_shape[1]
        return ("deconv",) if large and upsampled else ("mlp",)
    return (config.decoder,)


def _build_decoder(kind: str, message_shape, mean_image, config: InversionConfig, key):
    rngs = nnx.Rngs(params=key)
    if kind == "deconv":
        return DeconvDecoder(message_shape, mean_image, config.conv_channels, rngs=rngs)
    return MLPDecoder(
        math.prod(message_shape), mean_image, config.hidden, config.linear_path, rngs=rngs
    )


@functools.lru_cache(maxsize=32)
def _decoder_initialiser(kind: str, message_shape, image_shape, config: InversionConfig):
    """``(graphdef, init(key, mean_image) -> params)``, the initialiser jitted and cached.

    Built eagerly, a decoder compiled one random-number program per weight
    tensor: 24 s for a small deconvolution decoder on the shared 2-core CPU.
    One jitted program drawing from an ``rbg`` key (XLA's own generator, a few
    instructions where threefry unrolls, as in :func:`models.zoo.build_model`)
    takes about a second.
    """

    def build(key, mean_image):
        rbg_key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
        return _build_decoder(kind, message_shape, mean_image, config, rbg_key)

    abstract = nnx.eval_shape(lambda: build(jax.random.key(0), jnp.zeros(image_shape)))
    return nnx.graphdef(abstract), jax.jit(lambda key, mean: nnx.state(build(key, mean), nnx.Param))


@dataclasses.dataclass(frozen=True, eq=False)
class Inverter:
    """A trained inverse network: message -> reconstructed image in ``[0, 1]``.

    Attributes:
        decoder: ``"mlp"`` or ``"deconv"``.
        graphdef, params: the NNX decoder, split.
        message_shape: per-sample shape of the messages it takes (after complex
            messages were unfolded into real/imag parts on the last axis).
        image_shape: ``(H, W, C)`` of the images it reconstructs.
        feature_mean, feature_std: ``message_shape`` float32, the
            standardisation fitted on the training messages.
        epochs_trained: epochs run before stopping.
        best_epoch: the epoch (1-based) whose parameters were kept.
        val_mse: validation MSE of the kept parameters (NaN without validation).
    """

    decoder: str
    graphdef: nnx.GraphDef
    params: nnx.State
    message_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    epochs_trained: int
    best_epoch: int
    val_mse: float

    def __call__(self, sent) -> np.ndarray:
        """Reconstruct images from messages.

        Args:
            sent: ``[N, *message_shape]`` messages, of the dtype and layout the
                inverter was trained on (complex, integer and bool accepted).

        Returns:
            ``[N, H, W, C]`` float32 reconstructions in ``[0, 1]``.
        """
        message = _as_message(sent, "sent")
        if message.shape[1:] != self.message_shape:
            raise ValueError(
                f"sent: per-sample shape {list(message.shape[1:])} differs from the "
                f"{list(self.message_shape)} the inverter was trained on"
            )
        message = (message - self.feature_mean) / self.feature_std
        n = message.shape[0]
        chunk = min(n, _EVAL_CHUNK)
        padded = -n % chunk  # pad to whole chunks: one compiled shape
        message = np.concatenate([message, np.zeros((padded, *self.message_shape), np.float32)])
        apply = _jitted_apply(self.graphdef)
        out = [apply(self.params, message[i : i + chunk]) for i in range(0, len(message), chunk)]
        return np.asarray(jnp.concatenate(out)[:n])


@functools.lru_cache(maxsize=32)
def _jitted_apply(graphdef: nnx.GraphDef):
    # clipping to the images' range can only bring a reconstruction closer
    return jax.jit(lambda params, x: jnp.clip(nnx.merge(graphdef, params)(x), 0.0, 1.0))


@functools.lru_cache(maxsize=32)
def _jitted_epoch(graphdef: nnx.GraphDef, weight_decay: float):
    """A jitted epoch: ``(params, opt_state, rates [S], messages, images, batches [S, B])``.

    Cached on what the program depends on, so a second attacker of the same
    architecture (another key, another leak of the same shape) reuses it; the
    learning rate is an argument for the same reason.
    """
    optimizer = optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(weight_decay))

    def loss_fn(params, x, y):
        return jnp.mean((nnx.merge(graphdef, params)(x) - y) ** 2)

    def step(carry, inputs):
        params, opt_state, messages, images = carry
        rate, rows = inputs
        loss, grads = jax.value_and_grad(loss_fn)(params, messages[rows], images[rows])
        direction, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, jax.tree.map(lambda d: -rate * d, direction))
        return (params, opt_state, messages, images), loss

    def epoch(params, opt_state, rates, messages, images, batches):
        (params, opt_state, _, _), losses = jax.lax.scan(
            step, (params, opt_state, messages, images), (rates, batches)
        )
        return params, opt_state, losses.mean()

    def mse(params, messages, images):
        return loss_fn(params, messages, images)

    return optimizer, jax.jit(epoch), jax.jit(mse)


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------


def train_inverter(
    key, sent_train, images_train, config: InversionConfig = InversionConfig()
) -> Inverter:
    """Train an inverse network on pairs (message, image).

    Keys: ``fold_in(key, 0)`` initialises the decoder, ``fold_in(key, 1)``
    draws the validation split, ``fold_in(fold_in(key, 2), epoch)`` shuffles
    the batches of each epoch. The same key gives the same inverter bit for
    bit on one backend.

    Args:
        key: a ``jax.random`` key.
        sent_train: ``[N, ...]`` what left the device for each training image:
            any numeric dtype (complex is unfolded into real/imag parts on the
            last axis; ``[N]`` is read as ``[N, 1]``; ``[N, 0]`` is "nothing").
        images_train: ``[N, H, W, C]`` float in ``[0, 1]`` (see :func:`to_unit_range`).
        config: decoder and training settings.

    Returns:
        The trained :class:`Inverter` (the parameters of the best validation epoch).

    Raises:
        ValueError: shapes that do not match, images outside ``[0, 1]``,
            non-finite messages, too few rows for the validation split.
    """
    images = _check_images(images_train, "images_train")
    message = _as_message(sent_train, "sent_train")
    n = images.shape[0]
    if message.shape[0] != n:
        raise ValueError(
            f"sent_train: {message.shape[0]} rows for {n} images in images_train; "
            "one message per image is needed"
        )
    n_val = int(round(config.validation_fraction * n))
    if config.validation_fraction > 0 and not 1 <= n_val <= n - 1:
        raise ValueError(
            f"validation_fraction: {config.validation_fraction} of {n} rows leaves "
            f"{n_val} for validation and {n - n_val} for training; both need >= 1"
        )
    message_shape, image_shape = message.shape[1:], images.shape[1:]
    kinds = _choose_decoders(config, message_shape, image_shape)

    init_key, split_key, batch_key = (jax.random.fold_in(key, i) for i in range(3))
    order = np.asarray(jax.random.permutation(split_key, n), np.int32)
    val_rows, fit_rows = np.sort(order[:n_val]), np.sort(order[n_val:])

    feature_mean = message[fit_rows].mean(axis=0, dtype=np.float64).astype(np.float32)
    feature_std = message[fit_rows].std(axis=0, dtype=np.float64).astype(np.float32)
    feature_std = np.where(feature_std > _MIN_FEATURE_STD, feature_std, 1.0).astype(np.float32)
    data = _Split(
        messages=jnp.asarray((message - feature_mean) / feature_std),
        images=jnp.asarray(images),
        fit_rows=fit_rows,
        val_rows=val_rows,
    )
    # "best": every applicable decoder on the same split and batches, the lowest validation MSE
    candidates = [_fit(kind, data, config, init_key, batch_key) for kind in kinds]
    params, graphdef, kind, epochs_trained, best_epoch, val_mse = min(
        candidates, key=lambda fitted: fitted[-1]
    )
    return Inverter(
        decoder=kind,
        graphdef=graphdef,
        params=params,
        message_shape=tuple(message_shape),
        image_shape=tuple(image_shape),
        feature_mean=feature_mean,
        feature_std=feature_std,
        epochs_trained=epochs_trained,
        best_epoch=best_epoch,
        val_mse=val_mse,
    )


class _Split(NamedTuple):
    """Standardised messages and images of the attacker, with the rows to fit and to validate."""

    messages: jax.Array
    images: jax.Array
    fit_rows: np.ndarray
    val_rows: np.ndarray


def _fit(kind: str, data: _Split, config: InversionConfig, init_key, batch_key):
    """Train one decoder; ``(params, graphdef, kind, epochs_trained, best_epoch, val_mse)``."""
    message_shape, image_shape = data.messages.shape[1:], data.images.shape[1:]
    graphdef, initialise = _decoder_initialiser(kind, message_shape, image_shape, config)
    params = initialise(init_key, data.images[data.fit_rows].mean(axis=0))
    optimizer, run_epoch, evaluate = _jitted_epoch(graphdef, float(config.weight_decay))
    opt_state = optimizer.init(params)

    batch_size = min(config.batch_size, len(data.fit_rows))
    steps = len(data.fit_rows) // batch_size
    rates = optax.cosine_decay_schedule(config.learning_rate, config.epochs * steps)(
        jnp.arange(config.epochs * steps)
    ).astype(jnp.float32)
    val_messages, val_images = data.messages[data.val_rows], data.images[data.val_rows]

    best = (math.inf, params, 0)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        batches = epoch_batches(jax.random.fold_in(batch_key, epoch), data.fit_rows, batch_size)
        params, opt_state, _ = run_epoch(
            params,
            opt_state,
            rates[(epoch - 1) * steps : epoch * steps],
            data.messages,
            data.images,
            jnp.asarray(batches),
        )
        if len(data.val_rows) == 0:
            best = (math.nan, params, epoch)
            continue
        val_mse = float(evaluate(params, val_messages, val_images))
        if val_mse < best[0]:
            best = (val_mse, params, epoch)
        elif config.patience and epoch - best[2] >= config.patience:
            break
    val_mse, params, best_epoch = best
    return params, graphdef, kind, epoch, best_epoch, val_mse


def reconstruction_mse(inverter: Inverter, sent_test, images_test) -> float:
    """Mean squared error over all pixels of the inverter's reconstructions.

    Args:
        inverter: from :func:`train_inverter`.
        sent_test: ``[M, ...]`` messages, per-sample shape as in training.
        images_test: ``[M, H, W, C]`` float in ``[0, 1]``, the true inputs.

    Returns:
        The MSE (images in ``[0, 1]``) as a Python float.
    """
    images = _check_images(images_test, "images_test")
    if images.shape[1:] != inverter.image_shape:
        raise ValueError(
            f"images_test: image shape {list(images.shape[1:])} differs from the "
            f"{list(inverter.image_shape)} the inverter was trained on"
        )
    rows = np.shape(sent_test)[0] if np.ndim(sent_test) else 0
    if rows != images.shape[0]:
        raise ValueError(
            f"sent_test: {rows} rows for {images.shape[0]} images in images_test; "
            "one message per image is needed"
        )
    reconstructions = inverter(sent_test)
    return float(np.mean((reconstructions.astype(np.float64) - images) ** 2))


def reconstruction_psnr(inverter: Inverter, sent_test, images_test) -> float:
    """Test PSNR in dB (peak 1) of the reconstructions (see :func:`reconstruction_mse`)."""
    return psnr_db(reconstruction_mse(inverter, sent_test, images_test))


def privacy_psnr(
    key,
    sent_train,
    images_train,
    sent_test,
    images_test,
    config: InversionConfig = InversionConfig(),
) -> float:
    """The privacy proxy: train an inverter on the training pairs, return its test PSNR.

    Args:
        key: a ``jax.random`` key (see :func:`train_inverter`).
        sent_train: ``[N, ...]`` messages of the attacker's training images.
        images_train: ``[N, H, W, C]`` float in ``[0, 1]``.
        sent_test: ``[M, ...]`` messages of unseen images, same per-sample shape.
        images_test: ``[M, H, W, C]`` float in ``[0, 1]``.
        config: decoder and training settings.

    Returns:
        Reconstruction PSNR in dB (peak 1): compare with :func:`blind_psnr`.
    """
    # check the test pair before the (long) training, not after
    images_test = _check_images(images_test, "images_test")
    train_shape, test_shape = np.shape(images_train)[1:], images_test.shape[1:]
    if test_shape != train_shape:
        raise ValueError(
            f"images_test: image shape {list(test_shape)} differs from images_train's "
            f"{list(train_shape)}"
        )
    message_train, message_test = (
        _as_message(sent_train, "sent_train"),
        _as_message(sent_test, "sent_test"),
    )
    if message_test.shape[1:] != message_train.shape[1:]:
        raise ValueError(
            f"sent_test: per-sample shape {list(np.shape(sent_test)[1:])} differs from "
            f"sent_train's {list(np.shape(sent_train)[1:])}"
        )
    inverter = train_inverter(key, sent_train, images_train, config)
    return reconstruction_psnr(inverter, sent_test, images_test)
