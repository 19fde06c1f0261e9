"""Collaboration strategies behind one interface (see :mod:`strategies.base`).

The public API, re-exported from the submodules:

* :mod:`strategies.base`: ``Link``, ``Hardware``, ``Cost``, ``Outcome``, ``Strategy``.
* :mod:`strategies.local`: ``LocalStrategy``, the device model alone.
* :mod:`strategies.cloud` and :mod:`strategies.codec`: ``CloudStrategy`` (raw
  pixels or a JPEG/WebP stream over the digital link), ``PixelFormat``, ``ImageCodec``.
* :mod:`strategies.split_digital`: ``SplitDigitalStrategy``, ``calibrate_clip``,
  ``Bottleneck``, ``train_bottleneck``.
* :mod:`strategies.jscc`: ``JSCCSplitStrategy``, ``JSCCConfig``, ``train_jscc``,
  ``cached_train_jscc`` (deep JSCC of features over an analog link).
* :mod:`strategies.partition` and :mod:`strategies.digital_hop`:
  ``LayerPartitionStrategy``, ``HorizontalPartitionStrategy``, ``DigitalHop``.
* :mod:`strategies.edge_ensemble`: ``EdgeEnsembleStrategy`` (over the air).
* :mod:`strategies.latency`: the latency-vs-bitrate model of ``latency_bitrate``.
* :mod:`strategies.inversion`: the model-inversion privacy proxy.
"""

from airinfer.strategies.base import Cost, Hardware, Link, Outcome, Strategy, latency_s, make_cost
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.codec import ImageCodec, PixelFormat
from airinfer.strategies.digital_hop import DigitalHop
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.jscc import JSCCConfig, JSCCSplitStrategy, cached_train_jscc, train_jscc
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.partition import HorizontalPartitionStrategy, LayerPartitionStrategy
from airinfer.strategies.split_digital import (
    Bottleneck,
    SplitDigitalStrategy,
    calibrate_clip,
    train_bottleneck,
)

__all__ = [
    "Link", "Hardware", "Cost", "Outcome", "Strategy", "latency_s", "make_cost",
    "LocalStrategy", "CloudStrategy", "PixelFormat", "ImageCodec",
    "SplitDigitalStrategy", "calibrate_clip", "Bottleneck", "train_bottleneck",
    "JSCCSplitStrategy", "JSCCConfig", "train_jscc", "cached_train_jscc",
    "LayerPartitionStrategy", "HorizontalPartitionStrategy", "DigitalHop",
    "EdgeEnsembleStrategy",
]  # fmt: skip
