"""Run Sionna (TensorFlow) blocks inside jit-compiled, differentiable JAX programs.

:func:`bridge` turns a TensorFlow function built from Sionna blocks into a JAX
function ``f(key, *args)`` that works under ``jax.jit`` and ``jax.grad``. It
applies the four fixes that naive use of ``jax2tf.call_tf`` needs:

1. **Randomness.** Sionna draws from ``sionna.phy.config.tf_rng``, a stateful
   generator that breaks under ``jit`` and redraws in the backward pass. While
   the function is traced it is replaced by :class:`StatelessGenerator`, whose
   draws are ``tf.random.stateless_*`` seeded from the JAX key and folded with a
   per-draw counter: the same key gives the same draws, forward and backward.
2. **Complex values** never cross the boundary (TF and JAX use different
   complex cotangent conventions): complex arrays travel as real/imag pairs.
3. **Captured constants** (TDL, CDL, OFDM, LDPC tables) are inlined by
   freezing the traced graph, so XLA sees compile-time constants.
4. **AutoGraph**: the graph is traced with AutoGraph on, then frozen, so blocks
   with Python control flow work although ``call_tf`` disables AutoGraph.

``mode="callback"`` is the fallback for blocks that do not lower to XLA: the
graph runs on the host through ``jax.pure_callback`` with a ``custom_vjp``
whose backward pass asks TensorFlow for the vector-Jacobian product. Its random
draws are as reproducible, but not the same numbers as in ``"xla"`` mode: TF's
kernels and XLA implement the stateless generators differently.

``vmap`` cannot cross ``call_tf``: put Monte-Carlo trials and SNR points in the
batch dimension instead (Sionna's ``no`` broadcasts over leading dimensions).
"""

import contextlib
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.phy.sionna_backend import sionna_phy, tensorflow

__all__ = ["bridge", "key_to_tf_seed", "StatelessGenerator", "stateless_sionna_rng"]


def key_to_tf_seed(key):
    """A JAX PRNG key to the ``int32[2]`` seed of TensorFlow's stateless ops."""
    bits = jax.random.bits(key, (2,), jnp.uint32)
    return jax.lax.bitcast_convert_type(bits, jnp.int32)


class StatelessGenerator:
    """Drop-in for the ``tf.random.Generator`` that Sionna draws from.

    Sionna only calls ``normal`` and ``uniform`` on its generator. Each call here
    derives a fresh seed by folding a counter into ``seed``, so a traced graph
    makes the same draws every time it is traced with the same seed tensor.

    Parameters:
        seed: ``int32[2]`` tensor, the stateless seed of this trace.
    """

    def __init__(self, seed):
        self._tf = tensorflow()
        self._seed = seed
        self._count = 0

    # One named algorithm: "auto_select" picks different generators in TF's
    # kernels and under XLA, so eager and jitted runs would draw differently.
    _ALGORITHM = "philox"

    def _next_seed(self):
        seed = self._tf.random.experimental.stateless_fold_in(
            self._seed, self._count, alg=self._ALGORITHM
        )
        self._count += 1
        return seed

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=None, name=None):
        dtype = dtype or self._tf.float32
        return self._tf.random.stateless_normal(
            shape, self._next_seed(), mean, stddev, dtype, alg=self._ALGORITHM
        )

    def uniform(self, shape, minval=0, maxval=None, dtype=None, name=None):
        dtype = dtype or self._tf.float32
        return self._tf.random.stateless_uniform(
            shape, self._next_seed(), minval=minval, maxval=maxval, dtype=dtype, alg=self._ALGORITHM
        )


@contextlib.contextmanager
def stateless_sionna_rng(seed):
    """Within the block, Sionna draws from a :class:`StatelessGenerator` seeded by ``seed``.

    Sionna's NumPy generator (used while constructing some codes) is seeded with
    a constant too, so that building a block is deterministic.
    """
    config = sionna_phy().config
    saved = config._tf_rng, config._np_rng
    config._tf_rng = StatelessGenerator(seed)
    config._np_rng = np.random.default_rng(0)
    try:
        yield
    finally:
        config._tf_rng, config._np_rng = saved


class _Leaf(NamedTuple):
    """What crosses the boundary for one array: its real shape, dtype and whether it was complex."""

    shape: tuple
    dtype: str
    is_complex: bool


def _real_dtype(dtype):
    return {
        np.dtype("complex64"): np.dtype("float32"),
        np.dtype("complex128"): np.dtype("float64"),
    }.get(np.dtype(dtype), np.dtype(dtype))


def _split(x):
    return [jnp.real(x), jnp.imag(x)] if jnp.iscomplexobj(x) else [x]


class _Frozen(NamedTuple):
    function: object  # the frozen TF ConcreteFunction, real tensors in and out
    out_leaves: list  # [_Leaf] of the outputs, in flattened order
    out_structure: object  # a TF nest structure to pack the outputs into


def _freeze(tf_fn, in_leaves):
    """Trace ``tf_fn`` with AutoGraph and the stateless RNG, then inline all captured constants."""
    tf = tensorflow()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    record = {}

    def real_boundary(seed, *flat):
        flat = list(flat)
        args = []
        for leaf in in_leaves:
            re = flat.pop(0)
            args.append(tf.complex(re, flat.pop(0)) if leaf.is_complex else re)
        with stateless_sionna_rng(seed):
            out = tf_fn(*args)
        out_flat = tf.nest.flatten(out)
        record["structure"] = out
        record["leaves"] = [
            _Leaf(tuple(o.shape), _real_dtype(o.dtype.as_numpy_dtype).name, o.dtype.is_complex)
            for o in out_flat
        ]
        reals = []
        for o in out_flat:
            reals += [tf.math.real(o), tf.math.imag(o)] if o.dtype.is_complex else [o]
        return reals

    signature = [tf.TensorSpec([2], tf.int32)]
    for leaf in in_leaves:
        signature += [tf.TensorSpec(leaf.shape, leaf.dtype)] * (2 if leaf.is_complex else 1)
    concrete = tf.function(real_boundary, autograph=True).get_concrete_function(*signature)
    # Keep functional While/If: the v1 control flow the default lowering emits
    # (Enter/Exit/Switch) does not compile with XLA.
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    for leaf in record["leaves"]:
        if None in leaf.shape:
            raise ValueError(f"bridge: output shape {leaf.shape} is not static")
    return _Frozen(frozen, record["leaves"], record["structure"])


def _pack(frozen, real_outputs):
    tf = tensorflow()
    real_outputs = list(real_outputs)
    outs = []
    for leaf in frozen.out_leaves:
        re = real_outputs.pop(0)
        outs.append(jax.lax.complex(re, real_outputs.pop(0)) if leaf.is_complex else re)
    return tf.nest.pack_sequence_as(frozen.out_structure, outs)


def _out_specs(frozen):
    specs = []
    for leaf in frozen.out_leaves:
        specs += [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)] * (2 if leaf.is_complex else 1)
    return specs


def _through_xla(frozen):
    from jax.experimental import jax2tf

    call = jax2tf.call_tf(
        lambda *a: frozen.function(*a),
        has_side_effects=False,
        output_shape_dtype=_out_specs(frozen),
    )
    # Always through XLA, even when called eagerly: TF's own kernels draw
    # different stateless random numbers than XLA does for the same seed.
    return jax.jit(call)


def _through_callback(frozen):
    tf = tensorflow()
    specs = _out_specs(frozen)
    run = tf.function(lambda *a: frozen.function(*a))

    def host_forward(seed, *flat):
        return [np.asarray(o) for o in run(seed, *flat)]

    @tf.function
    def host_vjp(seed, flat, cotangents):
        with tf.GradientTape() as tape:
            tape.watch(flat)
            outs = frozen.function(seed, *flat)
        return tape.gradient(outs, flat, output_gradients=cotangents, unconnected_gradients="zero")

    @jax.custom_vjp
    def call(seed, *flat):
        return jax.pure_callback(host_forward, specs, seed, *flat)

    def forward(seed, *flat):
        return call(seed, *flat), (seed, flat)

    def backward(residuals, cotangents):
        seed, flat = residuals
        in_specs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in flat]
        grads = jax.pure_callback(
            lambda s, f, c: [np.asarray(g) for g in host_vjp(s, list(f), list(c))],
            in_specs,
            seed,
            list(flat),
            list(cotangents),
        )
        return (None, *grads)

    call.defvjp(forward, backward)
    return call


def bridge(tf_fn, *, mode="xla"):
    """Wrap a TensorFlow/Sionna function as a JAX function of a key and arrays.

    Build Sionna blocks *inside* ``tf_fn`` (or close over them: their constants
    are inlined either way). Bind configuration with ``functools.partial``
    before bridging; the returned function takes arrays only.

    Parameters:
        tf_fn: ``tf_fn(*args) -> outputs``: TF tensors in, a nest (tensor,
            tuple, list or dict) of statically shaped TF tensors out. Complex
            inputs and outputs are allowed.
        mode: ``"xla"`` (default) compiles the graph into the JAX program with
            ``jax2tf.call_tf``; ``"callback"`` runs it on the host with
            ``jax.pure_callback`` for blocks that do not lower to XLA.

    Returns:
        ``f(key, *args) -> outputs``: ``key`` is a JAX PRNG key seeding every
        random draw of the Sionna blocks; ``args`` are JAX/NumPy arrays
        (complex allowed); outputs have the structure ``tf_fn`` returns, as JAX
        arrays. Jit-able and differentiable in reverse mode with respect to the
        floating-point inputs; not ``vmap``-able.
    """
    if mode not in ("xla", "callback"):
        raise ValueError(f"bridge: mode must be 'xla' or 'callback', got {mode!r}")
    through = _through_xla if mode == "xla" else _through_callback
    cache = {}

    @functools.wraps(tf_fn)
    def jax_fn(key, *args):
        arrays = [jnp.asarray(a) for a in args]
        in_leaves = tuple(
            _Leaf(tuple(a.shape), _real_dtype(a.dtype).name, jnp.iscomplexobj(a)) for a in arrays
        )
        if in_leaves not in cache:
            frozen = _freeze(tf_fn, in_leaves)
            cache[in_leaves] = frozen, through(frozen)
        frozen, call = cache[in_leaves]
        flat = [part for a in arrays for part in _split(a)]
        return _pack(frozen, call(key_to_tf_seed(key), *flat))

    return jax_fn
