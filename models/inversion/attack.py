"""The attacker: an inverse network trained on (message, image) pairs, and its test PSNR.

:func:`train_inverter` trains on the messages of the attacker's own images,
standardised per element with their training statistics (an invertible map:
it changes no information, only the conditioning), minimising the MSE with
Adam on a held-out validation split with early stopping, and keeps the
parameters of the best validation epoch. :func:`privacy_psnr` trains and
returns the test PSNR of the reconstructions.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.models.datasets import epoch_batches
from airinfer.models.fit import adamw_cosine, fit
from airinfer.models.inversion.config import InversionConfig
from airinfer.models.inversion.images import check_unit_images, psnr_db
from airinfer.models.inversion.networks import DeconvDecoder, MLPDecoder, choose_decoders

__all__ = [
    "Inverter",
    "train_inverter",
    "reconstruction_mse",
    "reconstruction_psnr",
    "privacy_psnr",
]

# Rows evaluated per call when reconstructing: bounds memory, one compiled shape.
_EVAL_CHUNK = 1024
# Message elements whose training spread is below this are constant for the
# attacker: they are centred but not scaled (scaling would blow up test noise).
_MIN_FEATURE_STD = 1e-6


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
    instructions where threefry unrolls, as in :func:`airinfer.models.zoo.build_model`)
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
def _reconstruction_loss(graphdef: nnx.GraphDef):
    """The attacker's loss in :func:`~airinfer.models.fit.fit`'s form: the MSE of its images.

    Cached per architecture, so that a second attacker of the same architecture
    (another key, another leak of the same shape) reuses the compiled epoch.
    """

    def loss(params, state, key, messages, images):
        return jnp.mean((nnx.merge(graphdef, params)(messages) - images) ** 2), state

    return loss


@functools.lru_cache(maxsize=32)
def _jitted_mse(graphdef: nnx.GraphDef):
    return jax.jit(lambda params, messages, images: _reconstruction_loss(graphdef)(
        params, (), None, messages, images)[0])  # fmt: skip


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
    images = check_unit_images(images_train, "images_train")
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
    kinds = choose_decoders(config, message_shape, image_shape)

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
    candidates = [_train_decoder(kind, data, config, init_key, batch_key) for kind in kinds]
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


def _train_decoder(kind: str, data: _Split, config: InversionConfig, init_key, batch_key):
    """Train one decoder; ``(params, graphdef, kind, epochs_trained, best_epoch, val_mse)``."""
    message_shape, image_shape = data.messages.shape[1:], data.images.shape[1:]
    graphdef, initialise = _decoder_initialiser(kind, message_shape, image_shape, config)
    params = initialise(init_key, data.images[data.fit_rows].mean(axis=0))
    batch_size = min(config.batch_size, len(data.fit_rows))
    steps = len(data.fit_rows) // batch_size
    val_messages, val_images = data.messages[data.val_rows], data.images[data.val_rows]
    mse = _jitted_mse(graphdef)
    # small decoders: one scanned epoch per dispatch
    fitted = fit(
        _reconstruction_loss(graphdef),
        params,
        adamw_cosine(config.learning_rate, float(config.weight_decay), config.epochs * steps),
        (data.messages, data.images),
        lambda epoch: epoch_batches(
            jax.random.fold_in(batch_key, epoch + 1), data.fit_rows, batch_size
        ),
        epochs=config.epochs,
        validate=(lambda p, _: mse(p, val_messages, val_images)) if len(data.val_rows) else None,
        patience=config.patience,
        scan=True,
    )
    return fitted.params, graphdef, kind, fitted.epochs, fitted.best_epoch, fitted.val_loss


def reconstruction_mse(inverter: Inverter, sent_test, images_test) -> float:
    """Mean squared error over all pixels of the inverter's reconstructions.

    Args:
        inverter: from :func:`train_inverter`.
        sent_test: ``[M, ...]`` messages, per-sample shape as in training.
        images_test: ``[M, H, W, C]`` float in ``[0, 1]``, the true inputs.

    Returns:
        The MSE (images in ``[0, 1]``) as a Python float.
    """
    images = check_unit_images(images_test, "images_test")
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
    images_test = check_unit_images(images_test, "images_test")
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
