"""Collaboration strategies behind one interface (see :mod:`airinfer.strategies.base`).

The public API, re-exported from the submodules:

* :mod:`airinfer.strategies.base`: ``Link``, ``Outcome``, ``Strategy`` (the interface).
* :mod:`airinfer.strategies.cost`: ``Hardware``, ``Cost``, ``latency_s``, ``make_cost``
  (what one inference costs), and the latency-vs-bitrate model of
  ``latency_bitrate``.
* :mod:`airinfer.strategies.local`: ``LocalStrategy``, the device model alone.
* :mod:`airinfer.strategies.cloud`: ``CloudStrategy`` (raw pixels or a JPEG/WebP stream
  over the digital link, ``ImageLink``; the codecs, ``PixelFormat`` and
  ``ImageCodec``, live in :mod:`airinfer.phy.source_coding`).
* :mod:`airinfer.strategies.split_digital`: ``SplitDigitalStrategy``, ``calibrate_clip``,
  ``FeatureQuantizer``, ``Bottleneck``, ``train_bottleneck``.
* :mod:`airinfer.strategies.jscc` (a package): ``JSCCSplitStrategy``, ``JSCCConfig``,
  ``train_jscc``, ``cached_train_jscc`` (deep JSCC of features over an analog link).
* :mod:`airinfer.strategies.partition` and :mod:`airinfer.strategies.digital_hop`:
  ``LayerPartitionStrategy``, ``HorizontalPartitionStrategy``, ``DigitalHop``.
* :mod:`airinfer.strategies.edge_ensemble`: ``EdgeEnsembleStrategy`` (over the air), its
  observation round in :mod:`airinfer.strategies.observation` (``DirectObservation``,
  ``SharedEncoder``) and the shared encoder's heads in :mod:`airinfer.strategies.heads`
  (``Head``, ``train_heads``, ``cached_train_heads``).
* :mod:`airinfer.strategies.hybrid`: ``HybridStrategy``, an edge ensemble fused with a
  server.
* :mod:`airinfer.strategies.adaptation`: ``adapt_mcs`` (every digital link of a strategy
  at the 5G NR MCS an SNR affords, fallbacks reported) and ``digital_links``.

The model-inversion privacy proxy that attacks a strategy's ``message`` is
:mod:`airinfer.models.inversion`.
"""

from airinfer.phy.source_coding import ImageCodec, PixelFormat
from airinfer.strategies.adaptation import Adaptation, adapt_mcs, digital_links
from airinfer.strategies.base import Link, Outcome, Strategy
from airinfer.strategies.cloud import CloudStrategy, ImageLink
from airinfer.strategies.cost import Cost, Hardware, latency_s, make_cost
from airinfer.strategies.digital_hop import DigitalHop
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.feature_coding import (
    Bottleneck,
    FeatureQuantizer,
    calibrate_clip,
    train_bottleneck,
)
from airinfer.strategies.heads import Head, cached_train_heads, train_heads
from airinfer.strategies.hybrid import HybridStrategy
from airinfer.strategies.jscc import JSCCConfig, JSCCSplitStrategy, cached_train_jscc, train_jscc
from airinfer.strategies.local import LocalStrategy
from airinfer.strategies.observation import DirectObservation, SharedEncoder
from airinfer.strategies.partition import HorizontalPartitionStrategy, LayerPartitionStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy

__all__ = [
    "Link", "Hardware", "Cost", "Outcome", "Strategy", "latency_s", "make_cost",
    "LocalStrategy", "CloudStrategy", "ImageLink", "PixelFormat", "ImageCodec",
    "SplitDigitalStrategy", "calibrate_clip", "FeatureQuantizer", "Bottleneck",
    "train_bottleneck",
    "JSCCSplitStrategy", "JSCCConfig", "train_jscc", "cached_train_jscc",
    "LayerPartitionStrategy", "HorizontalPartitionStrategy", "DigitalHop",
    "EdgeEnsembleStrategy", "DirectObservation", "SharedEncoder", "Head", "train_heads",
    "cached_train_heads", "HybridStrategy", "adapt_mcs", "digital_links", "Adaptation",
]  # fmt: skip
