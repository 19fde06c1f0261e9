"""Monte-Carlo loops sharded over devices: the same results on 1 and on 4 devices.

JAX fixes its device count when its backend starts, so the checks on four fake
CPU devices run in one child process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (:func:`four_devices`):
the ``ota_snr`` command twice (``devices=1``, ``devices=4``) on synthetic
members, and the module's own functions. The rest runs here, on one device.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from airinfer.experiments import (
    ota_snr,
    registry,
    runner,
    sharding,
    strategy_batches,
)
from airinfer.experiments.config import ConfigError, apply_overrides, leaf_keys
from airinfer.models.checkpoint import load_ensemble, verify_manifest
from airinfer.strategies.base import Link
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy

# The child: synthetic members (no training), then the CLI twice and the module's
# functions on 1..4 devices; it writes what the tests check as JSON.
_HEADER = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from airinfer.experiments import cli, ota_snr, sharding
    from airinfer.experiments.members import MemberOutputs

    def member_outputs(spec, progress=True):
        rng = np.random.default_rng(0)
        def split(n):
            labels = rng.integers(0, 10, n).astype(np.int32)
            logits = rng.normal(size=(spec.members, n, 10)).astype(np.float32)
            logits[:, np.arange(n), labels] += 1.6
            return logits, labels
        return MemberOutputs(*split(200), *split(100), (1,) * spec.members)

    """
)
_COMMANDS = textwrap.dedent(
    """
    ota_snr.member_outputs = member_outputs
    out = sys.argv[1]
    status = {}
    for devices in (1, 4):
        args = ["run", "ota_snr", "--quick", "--no-progress", "--out", f"{out}/devices{devices}"]
        for item in (*sys.argv[2:], f"devices={devices}"):
            args += ["--set", item]
        status[devices] = cli.main(args)

    def index_bits(key, index):
        return jax.random.bits(key, (2,), jnp.uint32), index
    """
)
# the ensemble's test probabilities for the curves
_PROBABILITIES = textwrap.dedent(
    """
    out = sys.argv[1]
    from airinfer.experiments import aggregation
    from airinfer.ota.aircomp import AirCompConfig
    from airinfer.ota.encoding import Normalization
    from airinfer.ota.orthogonal import BlerTable, OrthogonalConfig

    outputs = member_outputs(type("Spec", (), {"members": 4})())
    probs = np.asarray(np.moveaxis(aggregation.softmax(outputs.test_logits), 0, 1))[:60]
    labels, snr = outputs.test_labels[:60], np.array([-5.0, 0.0, 5.0], np.float32)
    """
)
_CURVES = textwrap.dedent(
    """
    # the other sharded curves, on 1 and 3 devices (9 draws: padded to 12 on 3)
    # a steep made-up BLER curve instead of the LDPC measurement (a minute)
    aggregation.measure_bler_table = lambda link: BlerTable(
        np.array([-5.0, 5.0], np.float32), np.array([1.0, 0.0], np.float32))
    air = AirCompConfig(channel="rayleigh", backend="jax", local_device=True)
    digital = OrthogonalConfig(channel="rayleigh", backend="jax", local_device=True)
    curves = {
        "ideal": lambda d: aggregation.ideal_accuracy_curve(
            key, probs, labels, [0.2, 0.5, 0.9], draws=3, devices=d),
        "orthogonal": lambda d: aggregation.orthogonal_accuracy_curve(
            key, probs, labels, snr, config=digital, draws=3, devices=d),
        "private": lambda d: aggregation.private_accuracy_curve(
            key, probs, labels, 0.0, np.array([0.1, 0.3, 1.0]), [[0.0, 1.0]] * 3,
            config=air, normalization=Normalization(offset=0.0, scale=1.0, clip=False),
            draws=3, devices=d),
    }
    key = jax.random.key(5)
    agree = {name: [np.asarray(a).tolist() for a in np.atleast_2d(curve(1))]
             == [np.asarray(a).tolist() for a in np.atleast_2d(curve(3))]
             for name, curve in curves.items()}

    # 7 indices, each device count with one chunk size: padded to 7, 8, 12 and 8
    key = jax.random.key(7)
    mapped = {
        f"{devices}x{chunk}": [a.tolist() for a in sharding.map_indices(
            index_bits, key, 7, devices=devices, chunk=chunk)]
        for devices, chunk in ((1, 1), (2, 2), (3, 2), (4, 1))
    }
    json.dump({
        "status": status,
        "visible": len(jax.devices()),
        "mapped": mapped,
        "agree": agree,
        "direct": [jax.random.bits(jax.random.fold_in(key, i), (2,), jnp.uint32).tolist()
                   for i in range(7)],
    }, open(f"{out}/child.json", "w"))
    """
)
CHILD = _HEADER + _COMMANDS + _PROBABILITIES + _CURVES
# TDL-A over OFDM on the JAX twin: sharded too (the calls are recorded), the same
# curve on 1 and 2 devices; compiled without XLA's expensive passes (seconds, not tens)
CHILD_TDL = (
    _HEADER
    + _PROBABILITIES
    + textwrap.dedent(
        """
    jax.config.update("jax_disable_most_optimizations", True)
    key = jax.random.key(5)
    sharded_calls = []
    map_indices = sharding.map_indices
    def recorded(*args, **kwargs):
        sharded_calls.append(kwargs["devices"])
        return map_indices(*args, **kwargs)
    sharding.map_indices = recorded
    tdl = AirCompConfig(channel="tdl-a", backend="jax", local_device=True)
    tdl_curves = [aggregation.ota_accuracy_curve(
        key, probs, labels, np.array([-10.0, 10.0], np.float32), scheme="ota_belief",
        config=tdl, draws=3, devices=d).tolist() for d in (1, 2)]
    json.dump({"curves": tdl_curves, "sharded_calls": sharded_calls},
              open(f"{out}/tdl.json", "w"))
    """
    )
)
# A quick ota_snr: one fading curve, 3 SNR points x 3 draws = 9 indices, which
# four devices share as 12 (padding dropped).
SETTINGS = (
    "backend=jax", "channels=rayleigh", "schemes=ota_belief", "num_devices=3",
    "snr_db=-10,0,10", "draws=3",
)  # fmt: skip


def _child(out, script, settings=(), devices=4):
    """Run ``script`` in ``out`` on ``devices`` fake CPU devices; fail with its stderr."""
    (out / "child.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    for name in sharding.ENVIRONMENT:  # one process, whatever the caller's shell says
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, str(out / "child.py"), str(out), *settings],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    """The child's outputs folder, after one run on four fake CPU devices."""
    out = tmp_path_factory.mktemp("sharding")
    _child(out, CHILD, SETTINGS)
    return out


def test_ota_snr_results_are_byte_identical_on_1_and_4_devices(four_devices):
    child = json.loads((four_devices / "child.json").read_text())
    assert child["status"] == {"1": 0, "4": 0} and child["visible"] == 4
    one, four = four_devices / "devices1", four_devices / "devices4"
    # the two runs did shard differently: 1 device, then 4
    assert json.loads((one / "meta.json").read_text())["sharded_devices"] == 1
    assert json.loads((four / "meta.json").read_text())["sharded_devices"] == 4
    csv = (one / "results.csv").read_bytes()
    assert csv == (four / "results.csv").read_bytes()
    rows = runner.read_rows(one / "results.csv")
    assert len(rows) == 3 and all(0 < row["accuracy"] <= 1 for row in rows)
    # the fading curve rises with SNR: the draws are real draws, not one repeated
    accuracies = [row["accuracy"] for row in rows]
    assert accuracies[0] < accuracies[-1]


def test_every_sharded_curve_agrees_on_1_and_3_devices(four_devices):
    """The ideal, orthogonal and private curves: the same outputs on 1 and 3 devices."""
    child = json.loads((four_devices / "child.json").read_text())
    assert child["agree"] == {"ideal": True, "orthogonal": True, "private": True}


# the sharded path in the default suite: the Rayleigh curves above
@pytest.mark.slow  # the OFDM twin compiled twice, in a child of its own
def test_tdl_a_curve_is_sharded_and_agrees_on_1_and_2_devices(tmp_path):
    """With backend="jax" an OFDM curve runs the sharded path on the 38.901 twin."""
    _child(tmp_path, CHILD_TDL, devices=2)
    tdl = json.loads((tmp_path / "tdl.json").read_text())
    assert tdl["sharded_calls"] == [1, 2]
    one, two = tdl["curves"]
    assert one == two
    # 60 images x 3 draws: the draws are real, the curve rises from -10 to 10 dB
    assert 0 < one[0] < one[1] <= 1


def test_keys_depend_only_on_the_global_index(four_devices):
    """7 indices on 1-4 devices in chunks of 1 or 2 (padded to 8 or 12): the same bits,
    those of ``fold_in(key, i)``, in index order, the padding dropped."""
    child = json.loads((four_devices / "child.json").read_text())
    assert len(child["mapped"]) == 4
    for bits, indices in child["mapped"].values():
        assert indices == list(range(7))
        assert bits == child["direct"]


# Each of two processes runs the command once on its two fake devices, joined by
# the AIRINFER_* variables: four devices in all, each process with its own --out.
CHILD_OF_TWO = textwrap.dedent(
    """
    import sys
    from airinfer.experiments import cli, ota_snr
    from child import member_outputs

    ota_snr.member_outputs = member_outputs
    args = ["run", "ota_snr", "--quick", "--no-progress", "--out", sys.argv[1]]
    for item in sys.argv[2:]:
        args += ["--set", item]
    sys.exit(cli.main(args))
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_results_of_one(four_devices):
    """jax.distributed over two processes of two CPU devices each (gloo collectives)."""
    (four_devices / "child_of_two.py").write_text(CHILD_OF_TWO, encoding="utf-8")
    # the child module defines member_outputs; importing it must not run its body
    (four_devices / "child.py").write_text(
        CHILD.split("ota_snr.member_outputs = member_outputs")[0], encoding="utf-8"
    )
    port = _free_port()
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "AIRINFER_COORDINATOR": f"localhost:{port}",
            "AIRINFER_NUM_PROCESSES": "2",
            "AIRINFER_PROCESS_ID": str(rank),
            "PYTHONPATH": str(four_devices),
        }
        out = four_devices / f"process{rank}"
        processes.append(subprocess.Popen(
            [sys.executable, str(four_devices / "child_of_two.py"), str(out), *SETTINGS],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    single = (four_devices / "devices1" / "results.csv").read_bytes()
    for rank in range(2):
        meta = json.loads((four_devices / f"process{rank}" / "meta.json").read_text())
        assert (meta["process_count"], meta["sharded_devices"]) == (2, 4)
        assert (four_devices / f"process{rank}" / "results.csv").read_bytes() == single


# the CLI itself: real members, trained or loaded from the model cache
CLI = "import sys; from airinfer.experiments import cli; sys.exit(cli.main(sys.argv[1:]))"
REAL_SETTINGS = (*SETTINGS, "ensemble.epochs=2")


def _run_processes(commands: list[tuple[list[str], dict]], timeout: float) -> None:
    """Run the commands side by side; fail with a process's stderr if one fails or hangs."""
    processes = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args, env in commands
    ]
    try:
        for process in processes:
            _, err = process.communicate(timeout=timeout)
            assert process.returncode == 0, err[-3000:]
    finally:
        for process in processes:  # a rank left waiting for a failed one
            if process.poll() is None:
                process.kill()
                process.communicate()


def _ota_snr_command(out, cache, environment=None) -> tuple[list[str], dict]:
    args = [sys.executable, "-c", CLI, "run", "ota_snr", "--quick", "--no-progress"]
    for item in REAL_SETTINGS:
        args += ["--set", item]
    env = {**os.environ, "AIRINFER_CACHE": str(cache), **(environment or {})}
    return [*args, "--out", str(out)], env


def _two_ranks(tmp_path, name: str, cache) -> list[tuple[list[str], dict]]:
    port = _free_port()
    return [
        _ota_snr_command(
            tmp_path / f"{name}{rank}",
            cache,
            {
                "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                "AIRINFER_COORDINATOR": f"localhost:{port}",
                "AIRINFER_NUM_PROCESSES": "2",
                "AIRINFER_PROCESS_ID": str(rank),
            },
        )
        for rank in range(2)
    ]


def _entries(cache):
    """The cache's entries (and any moved aside), not the lock files one process leaves."""
    return sorted(entry.name for entry in cache.iterdir() if entry.suffix != ".lock")


@pytest.mark.slow
def test_two_processes_train_and_load_real_members_like_one(tmp_path):
    """Two jax.distributed processes train the members (empty cache), then load them.

    Each process trains itself and saves host-local checkpoints (orbax would
    refuse device arrays, and sync with the other process); process 0 stores
    the cache entry, which holds the one-process run's weights. A second pair
    loads the entry the one-process run stored (this used to hang). Every
    ``results.csv`` equals the one-process run's, byte for byte.
    """
    single_cache, cache = tmp_path / "cache1", tmp_path / "cache2"
    _run_processes([_ota_snr_command(tmp_path / "single", single_cache)], timeout=600)
    single = (tmp_path / "single" / "results.csv").read_bytes()
    _run_processes(_two_ranks(tmp_path, "trained", cache), timeout=600)
    entries = _entries(cache)
    assert entries == _entries(single_cache)  # nothing aside
    stored, reference = (
        load_ensemble(root / entries[0])[0] for root in (cache, single_cache)
    )  # fmt: skip
    assert verify_manifest(cache / entries[0])
    for mine, theirs in zip(stored.groups, reference.groups, strict=True):
        jax.tree.map(
            np.testing.assert_array_equal,
            nnx.to_pure_dict(mine.state),
            nnx.to_pure_dict(theirs.state),
        )
    _run_processes(_two_ranks(tmp_path, "loaded", single_cache), timeout=600)
    assert _entries(single_cache) == entries  # loaded, not rebuilt
    for name in ("trained", "loaded"):
        for rank in range(2):
            out = tmp_path / f"{name}{rank}"
            meta = json.loads((out / "meta.json").read_text())
            assert (meta["process_count"], meta["sharded_devices"]) == (2, 4)
            assert (out / "results.csv").read_bytes() == single, (name, rank)


# ----------------------------------------------------------------- one device, here


def _index_bits(key, index):
    return jax.random.bits(key, (3,), jnp.uint32), index * 2


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_map_indices_pads_and_drops(chunk):
    key = jax.random.key(3)
    bits, doubled = sharding.map_indices(_index_bits, key, 5, chunk=chunk)
    expected = [jax.random.bits(jax.random.fold_in(key, i), (3,), jnp.uint32) for i in range(5)]
    np.testing.assert_array_equal(bits, np.stack(expected))
    np.testing.assert_array_equal(doubled, 2 * np.arange(5))


def test_padded_count():
    assert sharding.padded_count(9, 4, 3) == 12
    assert sharding.padded_count(7, 4) == 8
    assert sharding.padded_count(8, 4) == 8
    assert sharding.padded_count(1, 3, 2) == 6


def test_refusals():
    visible = len(jax.devices())
    with pytest.raises(ConfigError, match=r"^devices: 0 is not >= 1"):
        sharding.check_devices(0)
    with pytest.raises(
        ConfigError, match=rf"^devices={visible + 7}, but this process sees {visible} "
    ):
        sharding.check_devices(visible + 7)
    assert sharding.check_devices(None) == visible
    with pytest.raises(ValueError, match="count"):
        sharding.map_indices(_index_bits, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="chunk"):
        sharding.map_indices(_index_bits, jax.random.key(0), 3, chunk=0)


def test_devices_is_checked_with_the_config():
    with pytest.raises(ConfigError, match=r"^devices: 0 is not >= 1"):
        runner.resolve_config(ota_snr.EXPERIMENT, overrides=["devices=0"])
    assert apply_overrides(ota_snr.OtaSnrConfig(), ["devices=none"]).devices is None


def test_a_run_resumes_on_another_number_of_devices():
    """Results do not depend on ``devices``: a folder written with 1 is no conflict for 4."""
    stored = {"seed": 0, "devices": 1, "draws": 3}
    assert runner._config_differences(stored, {**stored, "devices": 4}) == []
    assert runner._config_differences({"seed": 0}, {"seed": 0, "devices": None}) == []
    assert runner._config_differences(stored, {**stored, "draws": 4}) == ["draws: 3 -> 4"]


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"AIRINFER_NUM_PROCESSES": "2"}, "^AIRINFER_COORDINATOR: not set"),
        ({"AIRINFER_COORDINATOR": "h:1"}, "^AIRINFER_NUM_PROCESSES: not set"),
        (
            {"AIRINFER_COORDINATOR": "h:1", "AIRINFER_NUM_PROCESSES": "two"},
            "^AIRINFER_NUM_PROCESSES: 'two' is not an integer",
        ),
        (
            {
                "AIRINFER_COORDINATOR": "h:1",
                "AIRINFER_NUM_PROCESSES": "2",
                "AIRINFER_PROCESS_ID": "2",
            },
            r"^AIRINFER_PROCESS_ID: 2 is not in \[0, 1\]",
        ),  # fmt: skip
        ({"AIRINFER_DISTRIBUTED": "yes"}, "^AIRINFER_DISTRIBUTED: 'yes' is not 'auto'"),
    ],
)
def test_distributed_settings_are_refused_in_one_line(environ, message):
    with pytest.raises(ConfigError, match=message):
        sharding.initialize_distributed(environ)


def test_no_distributed_settings_means_one_process():
    assert sharding.initialize_distributed({}) is False


def test_strategy_batches_sharded_equal_the_loop(digits, digits_ensemble):
    """An edge ensemble over the air on the JAX twins: batch i keeps ``fold_in(key, i)``
    and its padding, so the counts and costs are those of strategy_batches.evaluate."""
    ensemble, _ = digits_ensemble
    strategy = EdgeEnsembleStrategy(ensemble)
    images, labels = digits.test_images[:150], digits.test_labels[:150]
    link = Link(snr_db=jnp.float32(-5.0), channel="rayleigh", backend="jax")
    assert strategy_batches.runs_on_jax(strategy, link, images.shape[1:])
    assert not strategy_batches.runs_on_jax(strategy, link.replace(backend="sionna"), (8, 8, 1))
    key = jax.random.key(4)
    loop = strategy_batches.evaluate(strategy, key, images, labels, link, 64)
    sharded = strategy_batches.evaluate_sharded(
        strategy, key, images, labels, link, 64, strategy_batches.COST_COLUMNS
    )
    assert sharded == loop
    # at -5 dB under fading the channel costs accuracy: the draws matter
    # (a float32 SNR as above: a Python float would be weakly typed, a new compilation)
    clean_link = link.replace(snr_db=jnp.float32(40.0))
    clean = strategy_batches.evaluate(strategy, key, images, labels, clean_link, 64)
    assert loop[0] < clean[0]


@pytest.mark.parametrize("name", sorted(registry.builtin()))
def test_every_experiment_has_the_devices_setting(name):
    config_type = registry.load(name).config
    assert "devices" in leaf_keys(config_type)
    assert apply_overrides(config_type(), ["devices=2"]).devices == 2
