"""Monte-Carlo loops sharded over devices, with results that do not depend on how many.

A sweep's Monte-Carlo axis (SNR points x channel draws, or batches of test
samples) is a range of *global indices* ``0 .. count - 1``. :func:`map_indices`
evaluates a per-index JAX function over that range on a one-dimensional mesh of
devices (``jax.shard_map``): the range is padded to a multiple of
``devices x chunk`` (the padding repeats the last index and is dropped), each
device takes a contiguous block, and index ``i`` draws with the key
``jax.random.fold_in(key, i)``. Every index computes the same thing with the
same key whichever device runs it, and the per-index outputs come back
gathered in index order; reductions (counts of correct decisions, errors)
happen after that, on integers, so a result is bit-identical for any number of
devices.

Devices are those JAX sees: on one host ``jax.local_devices()``; over several
hosts every process's, once :func:`initialize_distributed` has joined them
(it reads the ``AIRINFER_*`` environment variables below; the runner calls it
before a run starts). Each process then runs the whole sweep program, the
devices of all processes share the indices, and every process gets the
gathered outputs (and writes the same results).

Environment variables (all three, or ``AIRINFER_DISTRIBUTED=auto``):

- ``AIRINFER_COORDINATOR``: ``host:port`` of process 0's coordinator service;
- ``AIRINFER_NUM_PROCESSES``: how many processes take part;
- ``AIRINFER_PROCESS_ID``: this process's rank, ``0 .. AIRINFER_NUM_PROCESSES - 1``;
- ``AIRINFER_DISTRIBUTED=auto``: let ``jax.distributed.initialize()`` read the
  cluster's own variables (SLURM, Open MPI, Kubernetes jobs).

Example::

    >>> import jax, jax.numpy as jnp
    >>> out = map_indices(lambda key, i: jax.random.bits(key, (), jnp.uint32),
    ...                   jax.random.key(0), 5)
    >>> out.shape
    (5,)
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from airinfer.experiments.config import ConfigError

__all__ = [
    "AXIS",
    "ENVIRONMENT",
    "check_devices",
    "device_mesh",
    "initialize_distributed",
    "map_indices",
    "padded_count",
    "sharded_devices",
]

#: The mesh axis the Monte-Carlo indices are sharded over.
AXIS = "draws"
#: The environment variables :func:`initialize_distributed` reads.
ENVIRONMENT = (
    "AIRINFER_COORDINATOR",
    "AIRINFER_NUM_PROCESSES",
    "AIRINFER_PROCESS_ID",
    "AIRINFER_DISTRIBUTED",
)
# fold_in takes 32-bit data: indices stay below 2**31.
_MAX_COUNT = 2**31 - 1

_distributed = False


def _env_int(name: str, environ) -> int:
    text = environ.get(name)
    if text is None:
        raise ConfigError(f"{name}: not set (AIRINFER_COORDINATOR needs it)")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an integer") from None


def initialize_distributed(environ=None) -> bool:
    """Join the processes of a multi-host run, once, if the environment asks for it.

    Reads :data:`ENVIRONMENT` (``os.environ`` by default) and calls
    ``jax.distributed.initialize`` before JAX starts its backends; does
    nothing when none of them is set. Returns whether this process runs
    distributed.

    Raises:
        ConfigError: an incomplete or malformed setting, named in one line.
    """
    global _distributed
    environ = os.environ if environ is None else environ
    if _distributed:
        return True
    coordinator = environ.get("AIRINFER_COORDINATOR")
    mode = environ.get("AIRINFER_DISTRIBUTED")
    if mode not in (None, "", "auto"):
        raise ConfigError(f"AIRINFER_DISTRIBUTED: {mode!r} is not 'auto'")
    if not coordinator:
        if any(environ.get(name) for name in ENVIRONMENT[1:3]):
            raise ConfigError("AIRINFER_COORDINATOR: not set (host:port of process 0)")
        if mode != "auto":
            return False
        jax.distributed.initialize()
    else:
        num_processes = _env_int("AIRINFER_NUM_PROCESSES", environ)
        process_id = _env_int("AIRINFER_PROCESS_ID", environ)
        if num_processes < 1:
            raise ConfigError(f"AIRINFER_NUM_PROCESSES: {num_processes} is not >= 1")
        if not 0 <= process_id < num_processes:
            raise ConfigError(
                f"AIRINFER_PROCESS_ID: {process_id} is not in [0, {num_processes - 1}]"
            )
        jax.distributed.initialize(coordinator, num_processes, process_id)
    _distributed = True
    return True


def check_devices(devices: int | None) -> int:
    """The number of devices a run with the setting ``devices`` uses (None: all).

    Raises:
        ConfigError: ``devices`` < 1, more than this process sees, or (over
            several processes) not all of them.
    """
    available = jax.devices()
    if devices is None:
        return len(available)
    if devices < 1:
        raise ConfigError(f"devices: {devices} is not >= 1")
    if devices > len(available):
        raise ConfigError(
            f"devices={devices}, but this process sees {len(available)} "
            f"({available[0].platform}): set devices to at most {len(available)}, "
            "or leave it unset for all"
        )
    if jax.process_count() > 1 and devices != len(available):
        raise ConfigError(
            f"devices={devices}: over {jax.process_count()} processes every one of the "
            f"{len(available)} devices takes part; leave devices unset"
        )
    return devices


def sharded_devices(devices: int | None) -> list:
    """The first ``devices`` devices JAX sees (all of them for None), checked."""
    return jax.devices()[: check_devices(devices)]


def device_mesh(devices: int | None = None) -> Mesh:
    """A one-dimensional mesh, axis :data:`AXIS`, of the first ``devices`` devices."""
    return _mesh(tuple(sharded_devices(devices)))


@functools.cache
def _mesh(devices: tuple) -> Mesh:
    return Mesh(np.array(devices), (AXIS,))


def padded_count(count: int, num_devices: int, chunk: int = 1) -> int:
    """``count`` rounded up to a multiple of ``num_devices x chunk``."""
    block = num_devices * chunk
    return -(-count // block) * block


@functools.cache
def _program(fn, mesh: Mesh, count: int, padded: int, chunk: int, num_args: int):
    """The jitted sharded program of ``fn`` (cached: one compilation per shape)."""
    local = padded // mesh.size
    in_axes = (0, 0) + (None,) * num_args

    def per_device(key, *args):
        start = jax.lax.axis_index(AXIS) * local
        # padding repeats the last index: valid for fn, dropped afterwards
        indices = jnp.minimum(start + jnp.arange(local, dtype=jnp.int32), count - 1)

        def step(chunk_indices):
            keys = jax.vmap(jax.random.fold_in, (None, 0))(key, chunk_indices)
            return jax.vmap(fn, in_axes)(keys, chunk_indices, *args)

        def one(index):  # chunk 1: fn as it is, without a batch axis of one
            return fn(jax.random.fold_in(key, index), index, *args)

        if chunk == 1:
            out = jax.lax.map(one, indices)
        else:
            out = jax.lax.map(step, indices.reshape(local // chunk, chunk))
            # [local // chunk, chunk, ...] -> [local, ...]
            out = jax.tree.map(lambda x: x.reshape(local, *x.shape[2:]), out)
        # every device's block, in index order, on every device
        return jax.tree.map(lambda x: jax.lax.all_gather(x, AXIS, tiled=True), out)

    # all_gather leaves every device the whole output, which shard_map's
    # replication check cannot infer: out_specs P() is right, the check is off.
    replicated = PartitionSpec()
    return jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=replicated, out_specs=replicated, check_vma=False
        )
    )


def map_indices(fn, key, count: int, *args, devices: int | None = None, chunk: int = 1):
    """``fn(fold_in(key, i), i, *args)`` for every global index ``i < count``, sharded.

    Input:
        fn: ``fn(key, index, *args) -> pytree of arrays``, a pure JAX function
            of one index (``index`` a traced int32 scalar); hashable and
            reused between calls (a module-level function or a cached
            ``functools.partial``), since the compiled program is cached on it.
        key: JAX PRNG key, the base of every index's key.
        count: how many indices (int, ``1 <= count < 2**31``).
        *args: arrays every index reads (replicated on every device).
        devices: how many devices share the indices (None: all JAX sees).
        chunk: indices per vectorised step (``jax.vmap``) on a device; steps
            run one after the other (``jax.lax.map``). It bounds the memory of
            a step and, not depending on ``devices``, keeps every step's
            program the same whatever the number of devices.

    Output:
        The pytree of ``fn``'s outputs, each a NumPy array ``[count, ...]`` in
        index order, identical for any ``devices``.
    """
    if not 1 <= count <= _MAX_COUNT:
        raise ValueError(f"count: {count} is not in [1, 2**31 - 1]")
    if chunk < 1:
        raise ValueError(f"chunk: {chunk} is not >= 1")
    mesh = device_mesh(devices)
    padded = padded_count(count, mesh.size, chunk)
    out = _program(fn, mesh, count, padded, chunk, len(args))(key, *args)
    return jax.tree.map(lambda x: np.asarray(x)[:count], out)
