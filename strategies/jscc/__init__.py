"""Split inference with an analog link: deep joint source-channel coding (JSCC) of features.

The device runs the front of a :class:`~airinfer.models.zoo.SplitClassifier` up to a
split point, and a learned encoder maps the features to ``k`` complex channel
symbols with exactly unit average energy per symbol for every sample. The
symbols cross the channel uncoded (analog); the server equalises them, a
learned decoder maps them back to features, and the back of the classifier
finishes the inference. Trained end to end through the channel, the scheme
degrades gracefully with the SNR instead of falling off a cliff as a coded
digital link does (Bourtsoulatze et al., "Deep Joint Source-Channel Coding for
Wireless Image Transmission", 2019).

Conventions (:mod:`airinfer.phy.conventions`): SNR is Es/N0 per complex symbol in dB,
noise is CN(0, no) with ``no = 10**(-snr_db/10)`` for the unit-energy symbols.

Channels (``channel``):

* ``awgn``: ``y = x + n`` (:func:`airinfer.phy.channels.awgn`).
* ``rayleigh``: one flat fading gain ``h ~ CN(0, 1)`` per sample, held over its
  ``k`` symbols (:func:`airinfer.phy.channels.flat_fading_mac` with one device).
* ``tdl-a``: 3GPP TDL-A over OFDM (:func:`airinfer.phy.channels.ofdm_mac`, Sionna's
  block or its JAX twin): the ``k`` symbols are spread evenly over a resource grid of
  ``ofdm_subcarriers`` subcarriers and ``ceil(k / ofdm_subcarriers)`` OFDM
  symbols (the other resource elements carry nothing and stay free for other
  users, so ``k`` channel uses are counted), each seeing its own gain.

The receiver knows the channel gains and ``no`` and equalises every symbol
with the MMSE weight ``x_hat = conj(h) y / (|h|^2 + no)``: the decoder sees
symbols on the transmitted scale, and a deep fade shrinks a symbol towards 0
instead of amplifying the noise. With ``side_info`` the encoder also sees the
nominal SNR and the decoder the effective SNR of every symbol,
``snr_db + 10 log10 |h|^2`` (clipped to [-50, 70] dB), as an extra input
(concatenated), so one codec serves a range of SNRs.

Training (:func:`train_jscc`) minimises the cross-entropy of the classifier's
logits with optax's Adam, the SNR drawn uniformly from ``snr_range_db`` per
sample and the channel drawn afresh every step, through Sionna via the bridge
(``backend="sionna"``) or through the JAX twins (``"jax"``, TDL-A included).
The front is frozen; the back is optionally fine-tuned. Trained codecs are
stored as orbax checkpoints and cached under a key of everything that
determines them (:func:`cached_train_jscc`).

Modules: :mod:`~airinfer.strategies.jscc.config` (:class:`JSCCConfig`),
:mod:`~airinfer.strategies.jscc.codec` (the encoder/decoder networks and their FLOPs),
:mod:`~airinfer.strategies.jscc.link` (the analog link and its equaliser),
:mod:`~airinfer.strategies.jscc.strategy` (the chain, the strategy, accuracy vs SNR) and
:mod:`~airinfer.strategies.jscc.training` (training, checkpoints, the cache); their
public names are re-exported here.
"""

from airinfer.strategies.jscc.codec import (
    SNR_CLIP_DB,
    FeatureDecoder,
    FeatureEncoder,
    JSCCCodec,
    codec_flops,
    unit_energy_symbols,
)
from airinfer.strategies.jscc.config import JSCCConfig
from airinfer.strategies.jscc.link import analog_link, ofdm_positions
from airinfer.strategies.jscc.strategy import JSCCSplitStrategy, accuracy_vs_snr, jscc_logits
from airinfer.strategies.jscc.training import (
    JSCC_CHECKPOINT_FORMAT,
    JSCCTrainReport,
    cached_train_jscc,
    classifier_fingerprint,
    jscc_cache_key,
    jscc_loss,
    jscc_optimizer,
    load_jscc,
    save_jscc,
    train_jscc,
)

__all__ = [
    "JSCC_CHECKPOINT_FORMAT",
    "SNR_CLIP_DB",
    "JSCCConfig",
    "unit_energy_symbols",
    "FeatureEncoder",
    "FeatureDecoder",
    "JSCCCodec",
    "ofdm_positions",
    "analog_link",
    "jscc_logits",
    "codec_flops",
    "JSCCSplitStrategy",
    "JSCCTrainReport",
    "jscc_loss",
    "jscc_optimizer",
    "train_jscc",
    "accuracy_vs_snr",
    "classifier_fingerprint",
    "jscc_cache_key",
    "save_jscc",
    "load_jscc",
    "cached_train_jscc",
]
