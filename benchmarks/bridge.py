"""Cost of running Sionna inside JAX: one value-and-grad step of a fixed workload, three ways.

The workload: 16 devices, each with its own dense encoder (32 features to 1024
complex channel symbols, unit average power), a 16-user Rayleigh block-fading
MAC at 10 dB, a dense decoder that sees the received block and the channel,
and the MSE of the reconstructed features; batch 64. Timed as

(a) JAX with Sionna's channel through the bridge (``bridge_ms``),
(b) JAX with the JAX-native twin of the channel (``jax_ms``),
(c) TensorFlow with Sionna, ``tf.function(jit_compile=True)`` (``tf_ms``),

each the median over ``--steps`` steps after warm-up, the variants taking turns
(:func:`airinfer.benchmarks.timing.median_ms`). Prints one JSON line with
the medians and the ratios ``bridge_over_jax`` (target <= 1.5) and
``tf_over_bridge`` (target >= 1.0).

Run: ``python -m airinfer.benchmarks.bridge [--steps 30]``.
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.benchmarks.timing import median_ms, parse_args, result_line
from airinfer.phy import channels
from airinfer.phy.bridge import key_to_tf_seed, stateless_sionna_rng
from airinfer.phy.conventions import normalize_power, snr_db_to_no
from airinfer.phy.sionna_backend import sionna_phy, tensorflow

NUM_DEVICES, FEATURES, CHANNEL_USES, BATCH, SNR_DB = 16, 32, 1024, 64, 10.0


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    scale_enc = 1 / np.sqrt(FEATURES)
    decoder_inputs = 2 * CHANNEL_USES + 2 * NUM_DEVICES  # received block + channel, as reals
    return {
        "encoder": (rng.normal(size=(NUM_DEVICES, FEATURES, 2 * CHANNEL_USES)) * scale_enc),
        "decoder": rng.normal(size=(decoder_inputs, NUM_DEVICES * FEATURES))
        / np.sqrt(decoder_inputs),
    }


def jax_loss(params, key, features, backend):
    """features [batch, K, F] -> encoders -> MAC -> decoder -> MSE."""
    key_channel, _ = jax.random.split(key)
    # Device axis leading: XLA's CPU dot then writes [K, B, 2n] contiguously. The
    # einsum "bkf,kfn->bkn" made it transpose a [K, 2n, B] product instead, about
    # a third of the step; the same rewrite slows the TensorFlow variant down.
    z = jnp.matmul(features.transpose(1, 0, 2), params["encoder"]).transpose(1, 0, 2)
    x = normalize_power(z[..., :CHANNEL_USES] + 1j * z[..., CHANNEL_USES:])
    out = channels.flat_fading_mac(key_channel, x, snr_db_to_no(SNR_DB), backend=backend)
    y, h = out.y[:, 0], out.h_est[:, 0]
    received = jnp.concatenate([y.real, y.imag, h.real, h.imag], axis=-1)
    estimate = (received @ params["decoder"]).reshape(features.shape)
    return jnp.mean((estimate - features) ** 2)


def jax_step(backend):
    params = jax.tree.map(jnp.asarray, init_params())
    features = jax.random.normal(jax.random.key(1), (BATCH, NUM_DEVICES, FEATURES))
    value_and_grad = jax.jit(jax.value_and_grad(jax_loss), static_argnums=3)
    root = jax.random.key(2)

    def step(i):
        loss, grads = value_and_grad(params, jax.random.fold_in(root, i), features, backend)
        jax.block_until_ready(grads)

    return step


def tensorflow_step():
    tf = tensorflow()
    sn = sionna_phy()
    params = {k: tf.Variable(v.astype(np.float32)) for k, v in init_params().items()}
    features = tf.constant(
        np.asarray(jax.random.normal(jax.random.key(1), (BATCH, NUM_DEVICES, FEATURES)))
    )
    generate = sn.channel.GenerateFlatFadingChannel(NUM_DEVICES, 1)
    awgn = sn.channel.AWGN()
    no = float(snr_db_to_no(SNR_DB))

    @tf.function(jit_compile=True)
    def value_and_grad(seed):
        with tf.GradientTape() as tape, stateless_sionna_rng(seed):
            z = tf.einsum("bkf,kfn->bkn", features, params["encoder"])
            x = tf.complex(z[..., :CHANNEL_USES], z[..., CHANNEL_USES:])
            power = tf.reduce_mean(tf.abs(x) ** 2, axis=-1, keepdims=True)
            x = x * tf.cast(tf.sqrt(1.0 / (power + 1e-12)), x.dtype)
            h = generate(BATCH)  # [B, 1, K]
            y = awgn(tf.einsum("bmk,bkn->bmn", h, x), no)[:, 0]
            h = h[:, 0]
            received = tf.concat(
                [tf.math.real(y), tf.math.imag(y), tf.math.real(h), tf.math.imag(h)], axis=-1
            )
            estimate = tf.reshape(received @ params["decoder"], features.shape)
            loss = tf.reduce_mean((estimate - features) ** 2)
        return loss, tape.gradient(loss, list(params.values()))

    root = jax.random.key(2)

    def step(i):
        seed = tf.constant(np.asarray(key_to_tf_seed(jax.random.fold_in(root, i))))
        _, grads = value_and_grad(seed)
        [g.numpy() for g in grads]

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    args, variants = parse_args(parser, argv)
    builders = {
        "bridge": lambda: jax_step("sionna"),
        "jax": lambda: jax_step("jax"),
        "tf": tensorflow_step,
    }
    ms = median_ms({name: builders[name]() for name in variants}, args.steps)
    workload = f"{NUM_DEVICES} devices x {CHANNEL_USES} channel uses, batch {BATCH}, value-and-grad"
    print(json.dumps(result_line("bridge", workload, ms)))


if __name__ == "__main__":
    main()
