"""Images in their natural ``[0, 1]`` range, and the PSNR of reconstructions.

Images are compared in their natural ``[0, 1]`` range (``peak = 1``): the data
sets of :mod:`airinfer.models.datasets` are normalised per channel, and
:func:`to_unit_range` undoes that. PSNR is computed from the mean squared error
over all pixels of the whole test set, ``PSNR = 10·log10(1 / MSE)`` dB (not the
average of per-image PSNRs, which a single perfect reconstruction would make
infinite). :func:`blind_psnr`, the PSNR of guessing the mean training image, is
the floor of every privacy PSNR.
"""

import math

import numpy as np

from airinfer.models.datasets import Dataset

__all__ = ["PIXEL_PEAK", "to_unit_range", "psnr_db", "check_unit_images", "blind_psnr"]

# The largest raw pixel value of each data set: digits counts 0..16 set bits of
# a 4×4 block of the original bitmaps, the others are 8-bit images.
PIXEL_PEAK = {"digits": 16.0, "fashion_mnist": 255.0, "cifar10": 255.0}

# Images may exceed [0, 1] by float rounding of the de-normalisation.
_RANGE_TOLERANCE = 1e-3


def to_unit_range(images, dataset: Dataset) -> np.ndarray:
    """Undo a data set's normalisation: images in their natural ``[0, 1]`` range.

    Args:
        images: ``[N, H, W, C]`` float, normalised as ``dataset``'s images
            (``(raw - mean) / std`` per channel).
        dataset: the :class:`~airinfer.models.datasets.Dataset` they come from.

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


def check_unit_images(images, name: str) -> np.ndarray:
    """``images`` as float32 ``[N, H, W, C]`` in ``[0, 1]``, or a ValueError naming ``name``.

    Values beyond ``[0, 1]`` by float rounding of the de-normalisation are clipped.
    """
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
    images_train = check_unit_images(images_train, "images_train")
    images_test = check_unit_images(images_test, "images_test")
    if images_train.shape[1:] != images_test.shape[1:]:
        raise ValueError(
            f"images_test: image shape {list(images_test.shape[1:])} differs from "
            f"images_train's {list(images_train.shape[1:])}"
        )
    mean_image = images_train.mean(axis=0, dtype=np.float64)
    return psnr_db(np.mean((images_test - mean_image) ** 2))
