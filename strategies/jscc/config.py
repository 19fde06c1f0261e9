"""The settings of an analog split link: where it cuts, what it sends, how it is trained."""

import dataclasses
import math
from typing import Literal

import numpy as np

from airinfer.strategies.base import CHANNELS

__all__ = ["JSCCConfig"]


@dataclasses.dataclass(frozen=True)
class JSCCConfig:
    """An analog split link and how its encoder/decoder are trained.

    Attributes:
        split_point: where the classifier is cut (a name of its ``split_points``).
        symbols: ``k``, complex channel uses per sample (>= 1).
        channel: ``awgn``, ``rayleigh`` or ``tdl-a``, the training channel.
        snr_range_db: ``(low, high)``: training SNRs (Es/N0 per complex symbol,
            dB) are drawn uniformly from it, one per sample.
        side_info: give the SNR to the encoder and the decoder.
        hidden: hidden units of the encoder and of the decoder.
        fine_tune_back: train the classifier's back end with the codec (the
            front stays frozen either way).
        epochs: passes over the training split.
        batch_size: samples per step.
        learning_rate: peak Adam learning rate, cosine-decayed to 0.
        seed: seeds the initialisation, batch order, SNRs and channel draws.
        backend: ``sionna`` (Sionna's channels through the bridge) or ``jax``
            (the twins, ``tdl-a`` included).
        ofdm_subcarriers: subcarriers of the resource grid (``tdl-a`` only).
    """

    split_point: str = "conv2"
    symbols: int = 16
    channel: Literal["awgn", "rayleigh", "tdl-a"] = "awgn"
    snr_range_db: tuple[float, float] = (-10.0, 20.0)
    side_info: bool = True
    hidden: int = 128
    fine_tune_back: bool = False
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    backend: Literal["sionna", "jax"] = "sionna"
    ofdm_subcarriers: int = 64

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel: unknown {self.channel!r}; allowed: {', '.join(CHANNELS)}")
        if self.backend not in ("sionna", "jax"):
            raise ValueError(f"backend: unknown {self.backend!r}; allowed: sionna, jax")
        for name in ("symbols", "hidden", "epochs", "batch_size", "ofdm_subcarriers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name}: {value!r} is not an int >= 1")
        try:
            low, high = (float(v) for v in self.snr_range_db)
        except (TypeError, ValueError):
            raise ValueError(
                f"snr_range_db: {self.snr_range_db!r} is not a pair (low, high) of numbers"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"snr_range_db: {self.snr_range_db!r} is not finite with low <= high")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: {self.learning_rate!r} is not > 0")
        # JSON round trips give lists; keep the config hashable
        object.__setattr__(self, "snr_range_db", (low, high))
        for name in ("side_info", "fine_tune_back"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):  # 1 and "yes" are no bools
                raise ValueError(f"{name}: {value!r} is not a bool")
            object.__setattr__(self, name, bool(value))

    def to_dict(self) -> dict:
        """A JSON-ready dict; ``JSCCConfig(**d)`` rebuilds the config."""
        return dataclasses.asdict(self) | {"snr_range_db": list(self.snr_range_db)}
