"""How the model-inversion attacker's inverse network is built and trained."""

import dataclasses

import numpy as np

__all__ = ["DECODERS", "InversionConfig"]

DECODERS = ("auto", "mlp", "deconv", "best")


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
        if not isinstance(self.linear_path, bool | np.bool_):
            raise ValueError(f"linear_path: {self.linear_path!r} is not a bool")
        object.__setattr__(self, "linear_path", bool(self.linear_path))
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder: unknown {self.decoder!r}; allowed: {', '.join(DECODERS)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction: {self.validation_fraction!r} is not in [0, 1)")
