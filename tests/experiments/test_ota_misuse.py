"""The over-the-air experiments refuse misuse and record the points where nothing decided.

Fields without effect under the other settings are refused by name; values
that the curves' links would refuse after training are refused at config
time; every bool field of every experiment config holds a bool; the rows of
the sweeps that aggregate over the air carry ``undecided`` (inferences whose
estimate was not finite), and a folder written before that column existed
still resumes.
"""

import csv
import dataclasses
import functools
import logging

import jax.numpy as jnp
import numpy as np
import pytest

from airinfer.experiments import (
    aggregation,
    ota_connectivity,
    ota_privacy,
    ota_snr,
    registry,
    runner,
)
from airinfer.experiments.config import ConfigError, apply_overrides, check_config
from airinfer.experiments.members import EnsembleSpec
from tests.experiments.older_results import read_rows, without_column
from tests.experiments.test_ota_experiments import NUM_MEMBERS, NUM_TEST, fake_members  # noqa: F401

TINY = ota_snr.OtaSnrConfig(
    ensemble=EnsembleSpec(members=NUM_MEMBERS), num_devices=(4,), channels=("awgn",),
    snr_db=(0.0, 10.0), draws=2, backend="jax", schemes=("noiseless", "ota_belief"),
)  # fmt: skip


# ------------------------------------------------------------------ fields without effect


@pytest.mark.parametrize(
    "config, changes, field",
    [
        (ota_snr.OtaSnrConfig(schemes=("noiseless", "orthogonal")), dict(precoding="phase"),
         "precoding"),
        (ota_snr.OtaSnrConfig(schemes=("best_single", "orthogonal")), dict(threshold=0.3),
         "threshold"),
        (ota_snr.OtaSnrConfig(schemes=("orthogonal",)), dict(equal_channel_uses=False),
         "equal_channel_uses"),
        (ota_snr.OtaSnrConfig(schemes=("ota_belief",), equal_channel_uses=False),
         dict(bits=4), "bits"),
        (ota_snr.OtaSnrConfig(schemes=("ota_vote",), equal_channel_uses=False),
         dict(modulation="16qam"), "modulation"),
        (ota_snr.OtaSnrConfig(schemes=("noiseless", "best_single")), dict(backend="jax"),
         "backend"),
        (ota_snr.OtaSnrConfig(channels=("awgn",)), dict(num_rx_ant=2), "num_rx_ant"),
        (ota_snr.OtaSnrConfig(channels=("awgn",)), dict(power_constraint="average"),
         "power_constraint"),
        (ota_privacy.OtaPrivacyConfig(schemes=("ota_belief",)), dict(code_rate=0.75),
         "code_rate"),
        (ota_privacy.OtaPrivacyConfig(schemes=("orthogonal_vote",)),
         dict(power_excess_probability=0.01), "power_excess_probability"),
        (ota_connectivity.OtaConnectivityConfig(aggregations=("ideal",)), dict(snr_db=0.0),
         "snr_db"),
        (ota_connectivity.OtaConnectivityConfig(aggregations=("ideal",)),
         dict(channel="awgn"), "channel"),
        (ota_connectivity.OtaConnectivityConfig(channel="awgn"), dict(threshold=0.5),
         "threshold"),
    ],
)  # fmt: skip
def test_a_field_without_effect_is_refused_by_name(config, changes, field):
    with pytest.raises(ConfigError) as excinfo:
        dataclasses.replace(config, **changes)
    message = str(excinfo.value)
    assert message.startswith(f"{field}: ") and "would have no effect" in message, message
    assert "\n" not in message


def test_the_same_fields_are_taken_where_they_have_an_effect():
    ota_snr.OtaSnrConfig(schemes=("ota_belief",), bits=4)  # sets the repetitions
    ota_snr.OtaSnrConfig(schemes=("orthogonal",), num_rx_ant=2, backend="jax")
    ota_snr.OtaSnrConfig(channels=("awgn", "rayleigh"), num_rx_ant=2)
    ota_privacy.OtaPrivacyConfig(schemes=("ota_belief", "orthogonal_vote"), code_rate=0.75)
    ota_connectivity.OtaConnectivityConfig(channel="rayleigh", threshold=0.5)


def test_the_command_line_names_the_field_whatever_the_order():
    experiment = registry.load("ota_snr")
    for items in (["schemes=[orthogonal]", "precoding=full"],
                  ["precoding=full", "schemes=[orthogonal]"]):  # fmt: skip
        with pytest.raises(ConfigError, match="precoding: 'full' would have no effect"):
            runner.resolve_config(experiment, quick=True, overrides=items)


@pytest.mark.parametrize("threshold", [0.0, -0.5])
def test_ota_connectivity_refuses_a_threshold_the_link_would_refuse_after_training(threshold):
    with pytest.raises(ConfigError, match="threshold"):
        ota_connectivity.OtaConnectivityConfig(threshold=threshold)


# -------------------------------------------------------------------------------- booleans


def _bool_fields():
    for name in sorted(registry.available()):
        config_type = registry.load(name).config
        for field in dataclasses.fields(config_type):
            if field.type in (bool, "bool"):
                yield name, field.name


BOOL_FIELDS = list(_bool_fields())


def test_the_experiments_have_bool_fields_to_check():
    assert ("ota_snr", "equal_channel_uses") in BOOL_FIELDS and len(BOOL_FIELDS) >= 3


@pytest.mark.parametrize("name, field", BOOL_FIELDS)
@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_a_bool_field_holding_no_bool_is_refused(name, field, value):
    """A config built in Python with ``flag=1`` is refused before the run, by name."""
    bad = registry.load(name).config()
    object.__setattr__(bad, field, value)  # what Config(flag=1) holds: no check of its own
    with pytest.raises(ConfigError, match=f"^{field}: .* is not a bool"):
        check_config(bad)
    with pytest.raises(ConfigError, match=f"^{field}: .* is not a bool"):
        runner.resolve_config(registry.load(name), bad)


@pytest.mark.parametrize("name, field", BOOL_FIELDS)
def test_a_numpy_bool_is_a_bool(name, field):
    config = registry.load(name).config()
    default = getattr(config, field)
    changed = apply_overrides(config, {field: np.bool_(not default)})
    assert getattr(changed, field) is (not default)


# ------------------------------------------------------------------------------ undecided


def _poison_above(monkeypatch, snr_db):
    """Over the air, estimates turn NaN inside the jitted sweep above ``snr_db``."""
    real = aggregation.ensemble_over_the_air
    # the sharded program is compiled once per unit function: a fresh cache of units,
    # so that neither the poisoned program nor an earlier clean one is reused
    monkeypatch.setattr(
        aggregation, "_ota_unit_of", functools.cache(aggregation._ota_unit_of.__wrapped__)
    )

    def poisoned(key_air, key_join, probs, snr, config, payload, p, **kwargs):
        estimate = real(key_air, key_join, probs, snr, config, payload, p, **kwargs)
        average = jnp.where(snr > snr_db, jnp.nan, estimate.average)
        return estimate._replace(average=average)

    monkeypatch.setattr(aggregation, "ensemble_over_the_air", poisoned)


def test_ota_snr_rows_count_the_undecided_inferences(fake_members, monkeypatch, tmp_path):  # noqa: F811
    _poison_above(monkeypatch, 5.0)
    rows = runner.run(ota_snr.EXPERIMENT, TINY, tmp_path, progress=False).rows
    by = {(r["scheme"], r["snr_db"]): r for r in rows}
    assert by[("ota_belief", 0.0)]["undecided"] == 0
    assert by[("ota_belief", 10.0)]["undecided"] == TINY.draws * NUM_TEST
    assert by[("ota_belief", 10.0)]["accuracy"] == 0.0  # counted as wrong
    assert by[("noiseless", 10.0)]["undecided"] == 0
    with open(tmp_path / "results.csv", encoding="utf-8") as file:
        assert "undecided" in next(csv.reader(file))


def test_ota_connectivity_rows_count_the_undecided_inferences(fake_members, monkeypatch, tmp_path):  # noqa: F811
    _poison_above(monkeypatch, 5.0)
    config = ota_connectivity.OtaConnectivityConfig(
        dataset="digits", widths=(0.5,), members=NUM_MEMBERS, trained_members=NUM_MEMBERS,
        connectivity=(0.0, 1.0), draws=2, snr_db=10.0, backend="jax",
    )  # fmt: skip
    rows = runner.run(ota_connectivity.EXPERIMENT, config, tmp_path, progress=False).rows
    undecided = {(r["aggregation"], r["p"]): r["undecided"] for r in rows}
    assert undecided[("ota", 1.0)] == undecided[("ota", 0.0)] == 2 * NUM_TEST
    assert undecided[("ideal", 1.0)] == undecided[("single", 1.0)] == 0


def test_a_folder_written_before_the_column_resumes(fake_members, tmp_path, caplog):  # noqa: F811
    """Rows of an older run have no ``undecided``: the run resumes, the column joins at the end."""
    # the noiseless curve alone: resuming does not depend on the scheme, and nothing
    # is compiled for the air (the backend back at its default: no link to run)
    config = dataclasses.replace(TINY, schemes=("noiseless",), backend="sionna")
    runner.run(ota_snr.EXPERIMENT, config, tmp_path, progress=False)
    results = tmp_path / "results.csv"
    old_header, old_rows, num_rows = without_column(results, "undecided")
    ota_snr._curve.cache_clear()
    with caplog.at_level(logging.WARNING):
        result = runner.run(ota_snr.EXPERIMENT, config, tmp_path, progress=False)
    assert result.computed == 1 and result.resumed == num_rows - 1
    new_header, new_rows = read_rows(results)
    assert new_header == [*old_header, "undecided"]
    assert [row[:-1] for row in new_rows[:-1]] == old_rows
    assert [row[-1] for row in new_rows] == [""] * len(old_rows) + ["0"]
