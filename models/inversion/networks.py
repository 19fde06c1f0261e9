"""The inverse networks of the attack: an MLP and a transposed-convolution decoder.

Both end in a linear layer whose weights start at zero, added to a trainable
per-pixel bias that starts at the mean training image: the untrained network
*is* the blind attacker. :func:`choose_decoders` picks the kinds to train for
an :class:`~airinfer.models.inversion.config.InversionConfig`.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.models.inversion.config import InversionConfig

__all__ = ["MLPDecoder", "DeconvDecoder", "choose_decoders"]

# "auto" picks the deconvolution decoder for upsampled feature maps from 16×16
# images up. Measured (2-core CPU): on 8×8 digits the MLP did as well (identity
# leak 29.9 against 27.4 dB, 2×2 block means 13.5 against 13.6 dB) and trained
# over 10× faster; on Fashion-MNIST (5000 rows, 20 epochs) the deconvolution
# decoder won on the 14×14×32 maps of a CNN's first stage (26.9 against 22.0
# dB), the MLP's linear path on raw pixels (34.5 against 29.0 dB), and they
# tied on 7×7×64 maps (18.0 against 18.6 dB).
_DECONV_MIN_PIXELS = 256

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


def choose_decoders(config: InversionConfig, message_shape, image_shape) -> tuple[str, ...]:
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
