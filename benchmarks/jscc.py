"""Cost of training the analog split link through Sionna inside JAX: one step, three ways.

The workload is one training step of :mod:`airinfer.strategies.jscc`: a batch of
digits images (8×8) through the frozen front of an MLP classifier (width 1,
cut after ``hidden1``: 256 features), the encoder (128 hidden units, SNR as
side information) to ``k = 16`` complex symbols of unit average energy,
Rayleigh block fading with an SNR drawn uniformly in [-10, 20] dB per sample,
the MMSE equaliser, the decoder, the frozen back end, the cross-entropy, its
gradient with respect to the encoder and decoder, and an Adam update with a
cosine learning-rate schedule. Timed as

(a) JAX with Sionna's channel through the bridge (``bridge_ms``): the
    library's own step: :func:`airinfer.models.fit.jitted_step` of
    :func:`~airinfer.strategies.jscc.jscc_loss` and its Adam;
(b) the same step with the JAX twin of the channel (``jax_ms``);
(c) the same network written in TensorFlow ops with Sionna's channel blocks,
    ``tf.GradientTape`` and a hand-written Adam on ``tf.Variable`` s, compiled
    with ``tf.function(jit_compile=True)`` (``tf_ms``);

each the median over ``--steps`` steps after warm-up, the variants taking turns
step by step (as :mod:`airinfer.benchmarks.bridge` does) so that a machine's drift hits
them alike, in a rotating order and after a short pause (see :func:`median_ms`).
Prints one JSON line with the medians and the ratios ``bridge_over_jax``
(target <= 1.5) and ``tf_over_bridge`` (target >= 1.0).

Run: ``python -m airinfer.benchmarks.jscc [--steps 50] [--batch 64]``.
"""

import argparse
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.benchmarks.timing import median_ms, parse_args, result_line
from airinfer.models.datasets import load_dataset
from airinfer.models.fit import jitted_step
from airinfer.models.zoo import ModelConfig, build_model
from airinfer.strategies.jscc import SNR_CLIP_DB, JSCCCodec, JSCCConfig, jscc_loss, jscc_optimizer

SYMBOLS, HIDDEN, SPLIT_POINT, SNR_RANGE_DB = 16, 128, "hidden1", (-10.0, 20.0)
LEARNING_RATE, SCHEDULE_STEPS = 3e-3, 1000


def _setup(batch):
    dataset = load_dataset("digits", seed=0)
    classifier = build_model(ModelConfig("mlp", dataset.image_shape, 10, 1.0), jax.random.key(0))
    classifier.eval()
    config = JSCCConfig(
        split_point=SPLIT_POINT, symbols=SYMBOLS, channel="rayleigh", snr_range_db=SNR_RANGE_DB,
        hidden=HIDDEN, batch_size=batch, learning_rate=LEARNING_RATE,
    )  # fmt: skip
    codec = JSCCCodec.from_config(config, (256,), jax.random.key(1))
    rng = np.random.default_rng(0)
    batches = rng.integers(0, len(dataset.train_labels), size=(64, batch)).astype(np.int32)
    return dataset, classifier, codec, config, batches


def jax_step(backend, setup):
    dataset, classifier, codec, config, batches = setup
    config = JSCCConfig(**(config.to_dict() | {"backend": backend}))
    classifier_def, classifier_state = nnx.split(classifier)
    codec_def, codec_state = nnx.split(codec)
    optimizer = jscc_optimizer(config.learning_rate, SCHEDULE_STEPS)
    step = jitted_step(jscc_loss(classifier_def, codec_def, config), optimizer)
    trainable = {"codec": codec_state}
    state = [trainable, optimizer.init(trainable)]
    data = (jnp.asarray(dataset.train_images), jnp.asarray(dataset.train_labels))
    batches = jnp.asarray(batches)
    root = jax.random.key(2)

    def run(i):
        trainable, _, opt_state, loss = step(
            state[0], classifier_state, state[1], jax.random.fold_in(root, i), data,
            batches[i % len(batches)],
        )  # fmt: skip
        state[:] = [trainable, opt_state]
        jax.block_until_ready(trainable)
        return float(loss)

    return run


def _dense_weights(module):
    return np.asarray(module.kernel[...]), np.asarray(module.bias[...])


def tensorflow_step(setup):
    from airinfer.phy.bridge import key_to_tf_seed, stateless_sionna_rng
    from airinfer.phy.sionna_backend import sionna_phy, tensorflow

    tf = tensorflow()
    sn = sionna_phy()
    dataset, classifier, codec, config, batches = setup
    frozen = {
        "front": _dense_weights(classifier.stages[0].dense),
        "hidden2": _dense_weights(classifier.stages[1].dense),
        "logits": _dense_weights(classifier.stages[2].dense),
    }
    frozen = {name: [tf.constant(a) for a in pair] for name, pair in frozen.items()}
    layers = (codec.encoder.hidden, codec.encoder.out, codec.decoder.hidden, codec.decoder.out)
    params = [tf.Variable(a) for layer in layers for a in _dense_weights(layer)]
    moments = [tf.Variable(tf.zeros_like(p)) for p in params for _ in range(2)]
    count = tf.Variable(0.0)
    images = tf.constant(dataset.train_images)
    labels = tf.constant(dataset.train_labels)
    generate = sn.channel.GenerateFlatFadingChannel(1, 1)
    awgn = sn.channel.AWGN()
    low, high = SNR_RANGE_DB

    def dense(x, w, b, relu):
        y = tf.matmul(x, w) + b
        return tf.nn.relu(y) if relu else y

    def snr_input(snr_db):
        return tf.clip_by_value(snr_db, *SNR_CLIP_DB) / 10.0

    def unit_energy(reals):
        peak = tf.reduce_max(tf.abs(reals), axis=-1, keepdims=True)
        nonzero = peak > 0
        scaled = reals / tf.where(nonzero, peak, 1.0)
        energy = 2.0 * tf.reduce_mean(scaled**2, axis=-1, keepdims=True)
        scaled = scaled * tf.math.rsqrt(tf.where(nonzero, energy, 1.0))
        re, im = tf.split(scaled, 2, axis=-1)
        return tf.where(nonzero, tf.complex(re, im), tf.ones_like(tf.complex(re, im)))

    @tf.function(jit_compile=True)
    def train_step(seed, batch):
        x_in = tf.reshape(tf.gather(images, batch), [batch.shape[0], -1])
        y_true = tf.gather(labels, batch)
        snr_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        snr_db = tf.random.stateless_uniform([batch.shape[0]], snr_seed, low, high)
        no = tf.pow(10.0, -snr_db / 10.0)
        features = dense(x_in, *frozen["front"], relu=True)
        with tf.GradientTape() as tape, stateless_sionna_rng(seed):
            w = params
            inputs = tf.concat([features, snr_input(snr_db)[:, None]], axis=-1)
            symbols = unit_energy(dense(dense(inputs, w[0], w[1], True), w[2], w[3], False))
            h = generate(batch.shape[0])[:, 0, 0][:, None]  # [B, 1]
            y = awgn(h * symbols, no)
            gain = tf.math.real(h) ** 2 + tf.math.imag(h) ** 2
            denominator = tf.maximum(gain + no[:, None], np.finfo(np.float32).tiny)
            equalised = tf.math.conj(h) * y / tf.cast(denominator, tf.complex64)
            effective = snr_db[:, None] + 10.0 * tf.math.log(tf.maximum(gain, 1e-30)) / math.log(
                10.0
            )
            effective = tf.broadcast_to(effective, tf.shape(equalised))
            received = tf.concat(
                [tf.math.real(equalised), tf.math.imag(equalised), snr_input(effective)], axis=-1
            )
            decoded = dense(dense(received, w[4], w[5], True), w[6], w[7], False)
            logits = dense(dense(decoded, *frozen["hidden2"], relu=True), *frozen["logits"], False)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
            )
        grads = tape.gradient(loss, params)
        # Adam (optax defaults: b1 0.9, b2 0.999, eps 1e-8) with optax's cosine decay
        count.assign_add(1.0)
        rate = 0.5 * LEARNING_RATE * (1 + tf.cos(math.pi * tf.minimum(count - 1, SCHEDULE_STEPS)
                                                  / SCHEDULE_STEPS))  # fmt: skip
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m, v = moments[2 * i], moments[2 * i + 1]
            m.assign(0.9 * m + 0.1 * g)
            v.assign(0.999 * v + 0.001 * g * g)
            m_hat = m / (1 - 0.9**count)
            v_hat = v / (1 - 0.999**count)
            p.assign_sub(rate * m_hat / (tf.sqrt(v_hat) + 1e-8))
        return loss

    root = jax.random.key(2)

    def run(i):
        seed = tf.constant(np.asarray(key_to_tf_seed(jax.random.fold_in(root, i))))
        loss = train_step(seed, tf.constant(batches[i % len(batches)]))
        [p.numpy() for p in params]
        return float(loss.numpy())

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    parser.add_argument("--batch", type=int, default=64, help="samples per step (default 64)")
    args, variants = parse_args(parser, argv)
    if args.steps < 1 or args.batch < 1:
        parser.error("--steps and --batch must be >= 1")
    setup = _setup(args.batch)
    builders = {
        "bridge": lambda: jax_step("sionna", setup),
        "jax": lambda: jax_step("jax", setup),
        "tf": lambda: tensorflow_step(setup),
    }
    ms = median_ms({name: builders[name]() for name in variants}, args.steps)
    workload = (
        f"one training step: MLP front (frozen) -> encoder -> {SYMBOLS} symbols -> "
        f"Rayleigh, SNR U{list(SNR_RANGE_DB)} dB -> MMSE -> decoder -> back (frozen) -> "
        f"cross-entropy, grad + Adam; batch {args.batch}"
    )
    result = result_line("jscc", workload, ms, digits=3, extra={"steps": args.steps})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
