"""Strategies whose logits are not finite for some images: those images get no decision,
are never counted correct, and the strategy sweeps count them in ``undecided``.

No training: a fake strategy reads its answer from the image itself.
"""

import dataclasses
import logging
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.experiments import (
    budget_settings,
    hybrid_snr,
    runner,
    strategies_budget,
    strategies_snr,
    strategy_batches,
    table1,
)
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Cost
from tests.experiments.older_results import read_rows, without_column

NUM_CLASSES = 10
# pixel [0, 0] holds the label, [1, 0] whether the answer is wrong, [0, 1] the poison
LABEL, WRONG, POISON = (0, 0), (1, 0), (0, 1)
NAN, POSINF = 1.0, 2.0
COST = Cost(channel_uses=3.0, payload_bits=8.0, device_flops=100.0, server_flops=0.0,
            latency_s=1e-6)  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class Poisoned:
    """Answers the label an image holds (or the next class where it says so); where an
    image is poisoned above ``above_db`` (of the link's SNR), the label's own logit is
    NaN or +inf: a plain argmax would still pick the label, ``decide`` refuses it."""

    above_db: float = -jnp.inf
    name = "poisoned"

    def __call__(self, key, images, link):
        label = images[:, *LABEL, 0].astype(jnp.int32)
        answer = (label + images[:, *WRONG, 0].astype(jnp.int32)) % NUM_CLASSES
        logits = jax.nn.one_hot(answer, NUM_CLASSES)
        poison = jnp.where(link.snr_db > self.above_db, images[:, *POISON, 0], 0.0)[:, None]
        at_label = jax.nn.one_hot(label, NUM_CLASSES) > 0
        logits = jnp.where(at_label & (poison == NAN), jnp.nan, logits)
        logits = jnp.where(at_label & (poison == POSINF), jnp.inf, logits)
        return Outcome(logits, COST)


def images_of(labels, wrong, poison):
    """``[N, 2, 2, 1]`` images holding each label, wrong flag and poison."""
    images = np.zeros((len(labels), 2, 2, 1), np.float32)
    images[:, *LABEL, 0], images[:, *WRONG, 0], images[:, *POISON, 0] = labels, wrong, poison
    return images


# 13 images in batches of 5: the last batch is padded with two copies of the last
# image, which is poisoned, so a count that included the padding would be off by two
LABELS = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9])
WRONG_FLAGS = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0])
POISONS = np.array([0, 0, NAN, 0, NAN, POSINF, 0, 0, 0, NAN, 0, 0, NAN])
IMAGES = images_of(LABELS, WRONG_FLAGS, POISONS)
UNDECIDED = int(np.sum(POISONS > 0))  # 5: one of them also marked wrong
CORRECT = int(np.sum((POISONS == 0) & (WRONG_FLAGS == 0)))  # 6
CLEAN_CORRECT = int(np.sum(WRONG_FLAGS == 0))  # 10: below 5 dB nothing is poisoned
BATCH = 5
# one object for every test: its compiled programs (per path) are shared
STRATEGY = Poisoned(above_db=5.0)


def test_both_paths_count_the_undecided_images_and_never_count_them_correct(caplog):
    key = jax.random.key(0)
    link = Link(snr_db=jnp.float32(10.0))
    with caplog.at_level(logging.WARNING, logger=strategy_batches.__name__):
        loop = strategy_batches.evaluate(
            STRATEGY, key, IMAGES, LABELS, link, BATCH, return_undecided=True
        )
        sharded = strategy_batches.evaluate_sharded(
            STRATEGY, key, IMAGES, LABELS, link, BATCH, strategy_batches.COST_COLUMNS,
            devices=1, return_undecided=True,
        )  # fmt: skip
    expected_cost = {name: float(getattr(COST, name)) for name in strategy_batches.COST_COLUMNS}
    assert loop == sharded == (CORRECT, pytest.approx(expected_cost), UNDECIDED)
    # one warning line per evaluation, with the count out of the test images
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(f"{UNDECIDED} of {len(LABELS)}" in w for w in warnings)
    # without return_undecided, the (correct, cost) of before
    assert strategy_batches.evaluate(STRATEGY, key, IMAGES, LABELS, link, BATCH) == loop[:2]
    # below 5 dB nothing is poisoned: every image decides, right unless marked wrong
    clean = link.replace(snr_db=jnp.float32(0.0))
    for counts in (
        strategy_batches.evaluate(STRATEGY, key, IMAGES, LABELS, clean, BATCH,
                                  return_undecided=True),
        strategy_batches.evaluate_sharded(STRATEGY, key, IMAGES, LABELS, clean, BATCH,
                                          strategy_batches.COST_COLUMNS, return_undecided=True),
    ):  # fmt: skip
        assert counts[0] == CLEAN_CORRECT and counts[2] == 0


# -------------------------------------------------------------------- the sweeps' rows


@pytest.fixture
def fake_setup(monkeypatch):
    """strategies_snr's models and strategies replaced by :data:`STRATEGY` on :data:`IMAGES`."""
    dataset = types.SimpleNamespace(image_shape=IMAGES.shape[1:], train_labels=LABELS)
    setup = strategies_snr.Setup(None, None, dataset, IMAGES, LABELS)
    monkeypatch.setattr(strategies_snr, "setup", lambda config: setup)
    monkeypatch.setattr(strategies_snr, "strategy", lambda config, name, channel: STRATEGY)


def test_strategies_snr_rows_count_the_undecided_and_an_older_folder_resumes(fake_setup, tmp_path):
    """The rows carry ``undecided``; rows of an older run, which have none, resume, and the
    column joins at the end."""
    config = strategies_snr.StrategiesSnrConfig(
        dataset="digits", strategies=("local",), channels=("awgn",), snr_db=(0.0, 2.0, 10.0),
        num_test=len(LABELS), batch_size=BATCH,
    )  # fmt: skip
    rows = runner.run(strategies_snr.EXPERIMENT, config, tmp_path, progress=False).rows
    by_snr = {row["snr_db"]: row for row in rows}
    assert by_snr[0.0]["undecided"] == 0
    assert by_snr[0.0]["accuracy"] == CLEAN_CORRECT / len(LABELS)
    assert by_snr[10.0]["undecided"] == UNDECIDED
    assert by_snr[10.0]["accuracy"] == CORRECT / len(LABELS)

    results = tmp_path / "results.csv"
    old_header, old_rows, num_rows = without_column(results, "undecided")
    result = runner.run(strategies_snr.EXPERIMENT, config, tmp_path, progress=False)
    assert result.computed == 1 and result.resumed == num_rows - 1
    new_header, new_rows = read_rows(results)
    assert new_header == [*old_header, "undecided"]
    assert [row[:-1] for row in new_rows[:-1]] == old_rows
    assert [row[-1] for row in new_rows] == [""] * len(old_rows) + [str(UNDECIDED)]


def test_a_table1_row_counts_the_undecided_images(fake_setup, monkeypatch):
    monkeypatch.setattr(table1, "privacy_psnr", lambda key, config, strategy: 0.0)
    monkeypatch.setattr(table1, "blind_floor", lambda config: 0.0)
    config = table1.Table1Config(
        dataset="digits", strategies=("local",), channel="awgn", snr_db=(10.0,),
        num_test=len(LABELS), batch_size=BATCH,
    )  # fmt: skip
    row = table1.run_point(jax.random.key(0), config, {"strategy": "local"})
    assert row["undecided"] == UNDECIDED and row["accuracy"] == CORRECT / len(LABELS)


def test_strategies_budget_rows_count_the_undecided_images(fake_setup, monkeypatch):
    config = strategies_budget.StrategiesBudgetConfig(
        dataset="digits", strategies=("local",), channels=("awgn",), snr_db=(0.0, 10.0),
        budgets=(16,), num_test=len(LABELS), batch_size=BATCH,
    )  # fmt: skip
    setting = budget_settings.settings(config, "local")[0]
    plan = budget_settings.Plan(uses=0.0, mcs_fallback=False, strategy=STRATEGY)
    monkeypatch.setattr(strategies_budget, "plan", lambda *args: plan)
    monkeypatch.setattr(strategies_budget, "runnable", lambda config, s, c, chosen: chosen.strategy)
    monkeypatch.setattr(strategies_snr, "mcs_cell", lambda built, shape: None)

    def row(choice, snr_db):
        monkeypatch.setattr(strategies_budget, "choose", lambda *args: choice)
        point = {"channel": "awgn", "snr_db": snr_db, "strategy": "local", "budget": 16}
        return strategies_budget.run_point(None, config, point)

    strategies_budget._measured.cache_clear()
    try:
        spent = {snr: row(budget_settings.Choice(setting, plan, None), snr) for snr in (0.0, 10.0)}
        guessed = row(budget_settings.Choice(None, None, "chance"), 10.0)
    finally:
        strategies_budget._measured.cache_clear()  # forget the fake's measurements
    assert spent[10.0]["undecided"] == UNDECIDED
    assert spent[10.0]["accuracy"] == CORRECT / len(LABELS)
    assert spent[0.0]["undecided"] == 0
    # guessing the most frequent class decides every image
    assert guessed["undecided"] == 0 and guessed["fallback"] == "chance"


@dataclasses.dataclass(frozen=True, eq=False)
class PoisonedHybrid:
    """A hybrid whose fused scores are :class:`Poisoned`'s, its ensemble always right and
    its server right but never reached."""

    fused: Poisoned = STRATEGY

    def branches(self, key, images, link):
        clean = Poisoned()(key, images.at[:, *WRONG, 0].set(0.0).at[:, *POISON, 0].set(0.0), link)
        return types.SimpleNamespace(
            fused=self.fused(key, images, link), ensemble=clean, server=clean,
            server_ok=jnp.zeros(len(images), bool),
        )  # fmt: skip

    def fuse(self, branches):
        return branches.fused.logits


def test_hybrid_snr_counts_the_images_its_fused_decision_leaves_undecided():
    correct, reached, undecided = hybrid_snr.evaluate(
        PoisonedHybrid(), jax.random.key(0), IMAGES, LABELS, Link(snr_db=jnp.float32(10.0)), BATCH
    )
    assert undecided == UNDECIDED
    assert correct == {"hybrid": CORRECT, "ensemble": len(LABELS), "server": 0}
    assert reached == 0


def test_a_hybrid_snr_point_leads_with_the_hybrid_accuracy(monkeypatch):
    # the row's first measured column is what the point's status line shows
    monkeypatch.setattr(strategies_snr, "setup", lambda config: (None, None, None, IMAGES, LABELS))
    monkeypatch.setattr(strategies_snr, "strategy", lambda *args: PoisonedHybrid())
    config = hybrid_snr.HybridSnrConfig(batch_size=BATCH)
    point = {"channel": "awgn", "server_connectivity": 0.5, "snr_db": 10.0}
    row = hybrid_snr.run_point(jax.random.key(0), config, point)
    assert next(iter(row)) == "hybrid"
    assert row["hybrid"] == CORRECT / len(LABELS) and row["undecided"] == UNDECIDED
    cells = {name: str(value) for name, value in row.items()}
    assert runner._headline(cells, point).startswith(f"hybrid={CORRECT / len(LABELS):.4g} +/- ")
