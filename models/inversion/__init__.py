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
sets of :mod:`airinfer.models.datasets` are normalised per channel, and
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

Modules: :mod:`~airinfer.models.inversion.config` (:class:`InversionConfig`),
:mod:`~airinfer.models.inversion.networks` (the inverse networks),
:mod:`~airinfer.models.inversion.attack` (training and evaluation) and
:mod:`~airinfer.models.inversion.images` (images in ``[0, 1]``, the PSNR); their public
names are re-exported here.

Example::

    import jax
    from airinfer.models import load_dataset
    from airinfer.models.inversion import (
        InversionConfig, blind_psnr, privacy_psnr, to_unit_range,
    )

    data = load_dataset("digits")
    x_train = to_unit_range(data.train_images, data)
    x_test = to_unit_range(data.test_images, data)
    leak = privacy_psnr(jax.random.key(0), x_train, x_train, x_test, x_test)  # raw pixels
    floor = blind_psnr(x_train, x_test)
"""

from airinfer.models.inversion.attack import (
    Inverter,
    privacy_psnr,
    reconstruction_mse,
    reconstruction_psnr,
    train_inverter,
)
from airinfer.models.inversion.config import DECODERS, InversionConfig
from airinfer.models.inversion.images import PIXEL_PEAK, blind_psnr, psnr_db, to_unit_range
from airinfer.models.inversion.networks import DeconvDecoder, MLPDecoder

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
