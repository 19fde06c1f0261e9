"""The guides' code runs and does what the guides say (docs/guides/*.md)."""

import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.experiments import registry as experiments_registry
from airinfer.models.zoo import ModelConfig, build_model
from airinfer.strategies import registry as strategies_registry
from airinfer.strategies.base import Link

GUIDES = Path(__file__).resolve().parent.parent / "docs" / "guides"


def _run_blocks(guide: str, count: int) -> dict:
    """Execute the first ``count`` Python blocks of a guide in one namespace."""
    blocks = re.findall(r"```python\n(.*?)```", (GUIDES / guide).read_text(), re.S)
    namespace = {"__name__": f"guide_{guide.removesuffix('.md')}"}
    for block in blocks[:count]:
        exec(compile(block, guide, "exec"), namespace)
    return namespace


def test_experiment_guide_sweep_counts_silent_devices():
    try:
        guide = _run_blocks("experiment.md", 1)
        experiment = guide["EXPERIMENT"]
        assert experiments_registry.load("my_sweep") is experiment
        config = experiment.config(draws=200_000)
        points = experiment.points(config)
        assert [p["threshold"] for p in points] == list(config.thresholds)
        for index, point in enumerate(points):
            key = jax.random.fold_in(jax.random.key(config.seed), index)
            silent = experiment.run_point(key, config, point)["silent"]
            # P(|h|² < t) = 1 - exp(-t) for Rayleigh; 5 binomial standard deviations
            expected = 1 - math.exp(-point["threshold"])
            assert abs(silent - expected) < 5 * math.sqrt(expected * (1 - expected) / 200_000)
    finally:
        experiments_registry.REGISTERED.pop("my_sweep", None)


def test_strategy_guide_sends_logits_over_awgn():
    try:
        guide = _run_blocks("strategy.md", 2)  # the class, then its registration
        model = build_model(ModelConfig(), jax.random.key(0))
        context = strategies_registry.BuildContext(model, None, None, None)
        strategy = strategies_registry.build("analog_logits", context)
        assert isinstance(strategy, guide["AnalogLogits"])
        images = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
        clean = np.asarray(strategy.message(images))
        run = jax.jit(strategy)
        errors = {}
        for snr_db in (60.0, -10.0):
            outcome = run(jax.random.key(2), images, Link(snr_db=snr_db, backend="jax"))
            errors[snr_db] = float(jnp.sqrt(jnp.mean((outcome.logits - clean) ** 2)))
        power = float(np.sqrt(np.mean(clean**2)))
        # noise rms / signal rms = 10**(-snr/20): 1e-3 at 60 dB, 3.2 at -10 dB
        assert errors[60.0] < 3e-3 * power
        assert errors[-10.0] > power
        assert float(outcome.cost.channel_uses) == 5  # 10 classes, two per symbol
        with pytest.raises(ValueError, match="channel"):
            strategy(jax.random.key(2), images, Link(snr_db=0.0, channel="rayleigh"))
    finally:
        strategies_registry.unregister("analog_logits")


def test_channel_guide_awgn_has_the_noise_power_it_is_given():
    guide = _run_blocks("channel.md", 1)
    awgn = guide["awgn"]
    x = jnp.ones((4, 20_000), jnp.complex64)
    no = jnp.array([0.01, 0.1, 1.0, 10.0])
    y = awgn(jax.random.key(0), x, no[:, None], backend="jax")
    # CN(0, no): E|n|^2 = no, no/2 per real dimension; 20,000 draws per row: 4 % at 5 sigma
    power = np.mean(np.abs(np.asarray(y) - 1) ** 2, axis=-1)
    np.testing.assert_allclose(power, np.asarray(no), rtol=0.04)
    real = np.var(np.asarray(y).real - 1, axis=-1)
    np.testing.assert_allclose(real, np.asarray(no) / 2, rtol=0.06)
    with pytest.raises(ValueError, match="backend"):
        awgn(jax.random.key(0), x, 0.1, backend="numpy")
