"""The over-the-air experiments on synthetic members (no training): properties of each curve."""

import dataclasses
import math

import jax
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from airinfer.experiments import (
    aggregation,
    members,
    ota_connectivity,
    ota_privacy,
    ota_snr,
    runner,
)
from airinfer.experiments.config import ConfigError
from airinfer.experiments.members import EnsembleSpec, MemberOutputs
from airinfer.experiments.stats import wilson_interval
from airinfer.ota.aircomp import AirCompConfig
from airinfer.ota.encoding import Normalization
from airinfer.ota.orthogonal import BlerTable, OrthogonalConfig
from airinfer.ota.privacy import (
    SOFTMAX_SENSITIVITY,
    analytic_gaussian_epsilon,
    analytic_gaussian_sigma,
)

NUM_CLASSES, NUM_TEST, NUM_MEMBERS = 10, 400, 6


def synthetic_outputs(num_members=NUM_MEMBERS, seed=0, signal=1.6):
    """Members that are right ~70 % of the time, each wrong in its own way."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
        logits = rng.normal(size=(num_members, n, NUM_CLASSES)).astype(np.float32)
        logits[:, np.arange(n), labels] += signal
        return logits, labels

    test_logits, test_labels = split(NUM_TEST)
    val_logits, val_labels = split(200)
    return MemberOutputs(test_logits, test_labels, val_logits, val_labels, (123,) * num_members)


@pytest.fixture
def fake_members(monkeypatch):
    """Every experiment gets synthetic members instead of trained ones."""
    outputs = {}

    def member_outputs(spec, progress=True):
        key = (spec.members, spec.width)
        if key not in outputs:
            outputs[key] = synthetic_outputs(spec.members, seed=len(outputs))
        return outputs[key]

    for module in (ota_snr, ota_connectivity, ota_privacy, members):
        monkeypatch.setattr(module, "member_outputs", member_outputs)
    for module in (ota_snr, ota_connectivity, ota_privacy):
        module._curve.cache_clear()
    return member_outputs


def device_major(outputs):
    return np.moveaxis(aggregation.softmax(outputs.test_logits), 0, 1)  # [N, K, C]


def test_over_the_air_at_high_snr_equals_the_noiseless_ensemble():
    outputs = synthetic_outputs()
    probs = device_major(outputs)
    noiseless = aggregation.noiseless_accuracy(probs, outputs.test_labels)
    config = AirCompConfig(channel="awgn", backend="jax")
    accuracy = aggregation.ota_accuracy_curve(
        jax.random.key(0), probs, outputs.test_labels, [40.0, -30.0], scheme="ota_belief",
        config=config, draws=4,
    )  # fmt: skip
    # Within 0.3 points of the noiseless ensemble at +40 dB (on AWGN: under fading,
    # truncated inversion silences the devices in deep fades, a different ensemble).
    assert abs(accuracy[0] - noiseless) <= 0.003
    assert accuracy[1] < noiseless - 0.1  # and the channel matters at -30 dB
    single = np.mean(np.argmax(outputs.test_logits, -1) == outputs.test_labels, -1)
    assert noiseless > single.max()  # the ensemble helps: the test sees a real ensemble


def test_ideal_connectivity_ends():
    outputs = synthetic_outputs()
    probs = device_major(outputs)
    accuracy = aggregation.ideal_accuracy_curve(
        jax.random.key(1), probs, outputs.test_labels, [0.0, 1.0], draws=3
    )
    local = np.mean(np.argmax(outputs.test_logits[0], -1) == outputs.test_labels)
    assert accuracy[0] == pytest.approx(local)  # p = 0: the device alone, exactly
    assert accuracy[1] == pytest.approx(aggregation.noiseless_accuracy(probs, outputs.test_labels))


def test_macro_f1_matches_scikit_learn():
    rng = np.random.default_rng(3)
    labels, predictions = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    expected = f1_score(labels, predictions, average="macro")
    assert aggregation.macro_f1(predictions, labels, 5) == pytest.approx(expected)


def test_best_single_member_is_chosen_on_validation():
    outputs = synthetic_outputs()
    accuracy, best = aggregation.best_single_member(
        outputs.val_logits, outputs.test_logits, outputs.test_labels, outputs.val_labels
    )
    val_accuracy = np.mean(np.argmax(outputs.val_logits, -1) == outputs.val_labels, -1)
    assert best == int(np.argmax(val_accuracy))
    assert accuracy == pytest.approx(
        np.mean(np.argmax(outputs.test_logits[best], -1) == outputs.test_labels)
    )


# The orthogonal scheme measures a BLER table through the LDPC link first (a
# minute on 2 cores): left to the slow test below.
TINY_SNR = ota_snr.OtaSnrConfig(
    ensemble=EnsembleSpec(members=NUM_MEMBERS), num_devices=(6,), channels=("awgn", "rayleigh"),
    snr_db=(-20.0, 40.0), draws=2, backend="jax",
    schemes=("noiseless", "ota_belief", "ota_sign", "best_single"),
)  # fmt: skip


def test_ota_snr_rows(fake_members, tmp_path):
    result = runner.run(ota_snr.EXPERIMENT, TINY_SNR, tmp_path, progress=False)
    rows = result.rows
    assert len(rows) == 2 * 4 * 2
    assert {r["scheme"] for r in rows} == set(TINY_SNR.schemes)

    def get(k, channel, scheme, snr):
        (row,) = [r for r in rows if (r["num_devices"], r["channel"], r["scheme"], r["snr_db"])
                  == (k, channel, scheme, snr)]  # fmt: skip
        return row

    noiseless = get(6, "awgn", "noiseless", 40.0)["accuracy"]
    assert abs(get(6, "awgn", "ota_belief", 40.0)["accuracy"] - noiseless) <= 0.003
    assert get(6, "rayleigh", "ota_belief", -20.0)["accuracy"] < noiseless
    # Equal channel uses: the over-the-air block (5 uses) is repeated up to the
    # orthogonal budget of the K - 1 neighbours, (K - 1) * C b / (r m) = 5 * 80.
    orthogonal_uses = 5 * math.ceil(NUM_CLASSES * 8 / (0.5 * 2))
    assert get(6, "rayleigh", "ota_sign", 40.0)["channel_uses"] == orthogonal_uses
    assert all(0 <= r["accuracy"] <= 1 and r["accuracy_ci"] > 0 for r in rows)
    # The interval counts test images (not image x draw pairs): Wilson's over NUM_TEST.
    row = get(6, "rayleigh", "ota_belief", -20.0)
    assert row["ci_test_images"] == NUM_TEST
    low, high = wilson_interval(round(row["accuracy"] * NUM_TEST), NUM_TEST)
    assert row["accuracy_ci"] == pytest.approx((high - low) / 2)
    # The power convention is named on the over-the-air rows of fading channels.
    assert row["power_constraint"] == "peak"
    assert get(6, "awgn", "ota_belief", 40.0)["power_constraint"] is None


def test_ota_snr_average_power_constraint_raises_the_received_amplitude(fake_members, tmp_path):
    """Under an average budget truncated inversion arrives 7.4 dB stronger at threshold 0.1:
    at -20 dB, where the peak budget's noise flips decisions, the average one is closer to
    the noiseless ensemble on the same draws."""
    config = dataclasses.replace(TINY_SNR, schemes=("noiseless", "ota_belief"), snr_db=(-20.0,))
    peak = runner.run(ota_snr.EXPERIMENT, config, tmp_path / "peak", progress=False).rows
    average_config = dataclasses.replace(config, power_constraint="average")
    ota_snr._curve.cache_clear()
    average = runner.run(ota_snr.EXPERIMENT, average_config, tmp_path / "avg", progress=False).rows

    def accuracy(rows, channel, scheme):
        return next(r["accuracy"] for r in rows if (r["channel"], r["scheme"]) == (channel, scheme))

    noiseless = accuracy(peak, "rayleigh", "noiseless")
    gap_peak = noiseless - accuracy(peak, "rayleigh", "ota_belief")
    gap_average = noiseless - accuracy(average, "rayleigh", "ota_belief")
    assert gap_peak > 0.05 and gap_average < gap_peak / 2
    # AWGN has no fading to average over: the same curve under both names
    assert accuracy(peak, "awgn", "ota_belief") == accuracy(average, "awgn", "ota_belief")
    assert {r["power_constraint"] for r in average if r["channel"] == "rayleigh"} == {
        "average",
        None,
    }


def test_ota_snr_optimal_power_control_and_lmmse_receiver(fake_members, tmp_path):
    config = dataclasses.replace(
        TINY_SNR, schemes=("noiseless", "ota_belief"), precoding="optimal", num_rx_ant=2,
        combiner="lmmse",
    )  # fmt: skip
    rows = runner.run(ota_snr.EXPERIMENT, config, tmp_path, progress=False).rows
    by = {(r["channel"], r["scheme"], r["snr_db"]): r["accuracy"] for r in rows}
    noiseless = by[("rayleigh", "noiseless", 40.0)]
    # At +40 dB the optimal policy is nearly full inversion: every neighbour counts,
    # so even under fading the decisions are the noiseless ensemble's (truncated
    # inversion would silence the faded neighbours). AWGN runs with one antenna.
    for channel in ("awgn", "rayleigh"):
        assert abs(by[(channel, "ota_belief", 40.0)] - noiseless) <= 0.003, channel
    assert by[("rayleigh", "ota_belief", -20.0)] < noiseless


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(precoding="optimal", threshold=0.2), "threshold"),
        (dict(precoding="zf"), "precoding"),
        (dict(combiner="lmmse"), "combiner"),  # one antenna
        (dict(num_rx_ant=0), "num_rx_ant"),
        (dict(power_constraint="mean"), "power_constraint"),
        (dict(power_constraint="average", precoding="optimal"), "power_constraint.*Cao"),
        (dict(power_constraint="average", channels=("tdl-a",)), "power_constraint"),
        (dict(power_constraint="average", num_rx_ant=2), "power_constraint"),
    ],
)
def test_ota_snr_refuses_receiver_options_without_effect(overrides, field):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(TINY_SNR, **overrides)


@pytest.mark.slow
def test_ota_snr_orthogonal_at_high_snr(fake_members, tmp_path):
    config = ota_snr.OtaSnrConfig(
        ensemble=EnsembleSpec(members=NUM_MEMBERS), num_devices=(6,), channels=("awgn",),
        schemes=("noiseless", "orthogonal"), snr_db=(-10.0, 30.0), draws=2, backend="jax",
    )  # fmt: skip
    rows = runner.run(ota_snr.EXPERIMENT, config, tmp_path, progress=False).rows
    by = {(r["scheme"], r["snr_db"]): r for r in rows}
    # 8-bit softmax outputs all decoded: the noiseless decision up to quantisation.
    assert abs(by[("orthogonal", 30.0)]["accuracy"] - by[("noiseless", 30.0)]["accuracy"]) < 0.01
    assert by[("orthogonal", 30.0)]["channel_uses"] == 5 * 80


def test_ota_snr_save_logits(fake_members, tmp_path):
    config = ota_snr.OtaSnrConfig(
        ensemble=EnsembleSpec(members=NUM_MEMBERS), num_devices=(2,), channels=("awgn",),
        schemes=("noiseless",), snr_db=(0.0,), save_logits=True,
    )  # fmt: skip
    runner.run(ota_snr.EXPERIMENT, config, tmp_path, progress=False)
    saved = np.load(tmp_path / "member_logits.npz")
    assert saved["logits"].shape == (NUM_MEMBERS, NUM_TEST, NUM_CLASSES)
    np.testing.assert_array_equal(saved["labels"], fake_members(config.ensemble).test_labels)


def test_ota_connectivity_rows(fake_members, tmp_path):
    config = ota_connectivity.OtaConnectivityConfig(
        dataset="digits", widths=(0.5,), members=NUM_MEMBERS, trained_members=NUM_MEMBERS,
        connectivity=(0.0, 1.0), draws=2,
        snr_db=40.0, backend="jax",
    )  # fmt: skip
    rows = runner.run(ota_connectivity.EXPERIMENT, config, tmp_path, progress=False).rows
    by = {(r["aggregation"], r["p"]): r["accuracy"] for r in rows if r["width"] == 0.5}
    assert by[("ideal", 0.0)] == by[("ota", 0.0)]  # p = 0 is local inference for both
    assert by[("ideal", 1.0)] > by[("ideal", 0.0)]
    assert {r["aggregation"] for r in rows} == {"ideal", "ota", "single"}


# The orthogonal schemes first measure their link's block-error table, by default
# 1000 LDPC blocks per 0.5 dB (most of this test's time). The accounting checked
# here does not hang on the table's precision: 200 blocks per 2 dB, a binomial
# sigma of sqrt(p (1 - p) / 200) <= 0.035 per point instead of 0.016.
BLER_TABLE_BLOCKS = 200
BLER_TABLE_GRID_DB = tuple(float(x) for x in np.arange(-6.0, 20.01, 2.0))


@pytest.fixture
def coarse_bler_tables(monkeypatch):
    """The aggregation measures block-error tables with BLER_TABLE_* (the same code, less of it)."""
    measure = aggregation.measure_bler_table

    def coarse(link):
        return measure(link, BLER_TABLE_GRID_DB, BLER_TABLE_BLOCKS)

    monkeypatch.setattr(aggregation, "measure_bler_table", coarse)


def test_ota_privacy_accounting(fake_members, coarse_bler_tables, tmp_path):
    config = ota_privacy.OtaPrivacyConfig(
        ensemble=EnsembleSpec(members=NUM_MEMBERS), epsilon=(1.0, math.inf), draws=2,
        backend="jax",
    )  # fmt: skip
    rows = runner.run(ota_privacy.EXPERIMENT, config, tmp_path, progress=False).rows
    by = {(r["scheme"], r["epsilon"]): r for r in rows}
    for scheme in ("ota_belief", "ota_vote"):
        # The noise on the released sum is the target's: its ε is the target.
        assert by[(scheme, 1.0)]["epsilon_achieved"] == pytest.approx(1.0, rel=1e-6)
        # 2 x 400 x 6 transmissions: above the budget with probability <= 1e-3 each.
        assert by[(scheme, 1.0)]["power_excess"] <= 1e-3 + 4 * math.sqrt(1e-3 / 4800)
        assert by[(scheme, math.inf)]["power_excess"] == 0.0
    assert by[("orthogonal_vote", 1.0)]["power_excess"] is None
    for scheme in ("orthogonal_belief", "orthogonal_vote"):
        assert by[(scheme, 1.0)]["epsilon_achieved"] == pytest.approx(1.0, rel=1e-6)
    # Orthogonally every device carries the whole noise: more per device than over the air.
    assert by[("orthogonal_vote", 1.0)]["dp_noise_std"] > by[("ota_vote", 1.0)]["dp_noise_std"]
    assert by[("ota_vote", 1.0)]["accuracy"] > by[("orthogonal_vote", 1.0)]["accuracy"]
    assert by[("ota_vote", math.inf)]["dp_noise_std"] == 0.0


PRIVATE_IMAGES, PRIVATE_DEVICES = 10_000, 20
# The realised noise on the sum, per entry, over N x C = 1e5 Gaussian entries: the
# sample variance has a relative std sqrt(2 / 1e5) = 0.45 %; tolerance 4 std.
VARIANCE_RTOL = 4 * math.sqrt(2 / (PRIVATE_IMAGES * NUM_CLASSES))
_private_estimate = jax.jit(aggregation.private_estimate,
                            static_argnames=("config", "normalization"))  # fmt: skip


def released_sum_noise(config, scheme, epsilon, table=None):
    """The noise on the released sum of one-hot votes, as built: ``[N, C]``, and the row."""
    rng = np.random.default_rng(0)
    votes = np.eye(NUM_CLASSES, dtype=np.float32)[
        rng.integers(0, NUM_CLASSES, (PRIVATE_IMAGES, PRIVATE_DEVICES))
    ]
    keys = jax.random.split(jax.random.key(7))
    if scheme == "ota":
        air, base, (plan,) = ota_privacy.over_the_air_plans(config, NUM_CLASSES, PRIVATE_DEVICES)
        std, low, high = math.sqrt(plan.device_noise_variance), 0.0, plan.normalization.scale
        high, normalization, link = high / base.scale, dataclasses.replace(base, clip=False), air
        nominal = plan.total_noise_variance
    else:
        std = ota_privacy._required_std(config)[0]
        low, high, normalization = -4 * std, 1 + 4 * std, None
        link = OrthogonalConfig(channel="awgn", low=0.0, high=1.0, backend="jax")
        nominal = PRIVATE_DEVICES * std**2
    average, over_budget = _private_estimate(
        keys, votes, np.float32(config.snr_db), std, low, high, table, config=link,
        normalization=normalization,
    )  # fmt: skip
    noise = PRIVATE_DEVICES * np.asarray(average, np.float64) - votes.sum(axis=1)
    return noise, nominal, float(np.sum(over_budget)) / votes.shape[0] / PRIVATE_DEVICES


@pytest.mark.parametrize(
    "epsilon",
    # one privacy level in the default suite; the other two only scale the same noise
    [pytest.param(0.5, marks=pytest.mark.slow), 1.0, pytest.param(4.0, marks=pytest.mark.slow)],
)
def test_over_the_air_release_carries_the_accounted_noise(epsilon):
    """As built, the released sum = clean sum + Gaussian noise of the variance the ε is
    computed from: unbiased, of the nominal variance, and that variance's ε is the target."""
    config = ota_privacy.OtaPrivacyConfig(epsilon=(epsilon,), backend="jax")
    noise, nominal, excess = released_sum_noise(config, "ota", epsilon)
    assert np.var(noise) == pytest.approx(nominal, rel=VARIANCE_RTOL)
    # unbiased: every class's mean noise within 4 std of 0 (10,000 images each)
    assert np.all(np.abs(noise.mean(axis=0)) < 4 * math.sqrt(nominal / PRIVATE_IMAGES))
    # Gaussian: the excess kurtosis of 1e5 normal entries has std sqrt(24 / 1e5) = 0.015
    assert abs(stats.kurtosis(noise.ravel())) < 0.08
    sigma = analytic_gaussian_sigma(epsilon, config.delta, SOFTMAX_SENSITIVITY)
    assert nominal == pytest.approx(sigma**2, rel=1e-9)
    assert analytic_gaussian_epsilon(math.sqrt(nominal), config.delta) == pytest.approx(
        epsilon, rel=1e-6
    )
    # 2e5 transmissions, each above its budget with probability <= 1e-3
    assert excess <= config.power_excess_probability + 4 * math.sqrt(1e-3 / 2e5)


def test_orthogonal_release_carries_the_accounted_noise():
    """Each device carries σ² of its own; quantising (8 bits over [−4σ, 1 + 4σ]) and
    clipping to that range are post-processing and change the sum's noise by < 0.1 %."""
    config = ota_privacy.OtaPrivacyConfig(epsilon=(1.0,), backend="jax")
    lossless = BlerTable(np.array([-10.0, 30.0], np.float32), np.zeros(2, np.float32))
    noise, nominal, excess = released_sum_noise(config, "orthogonal", 1.0, lossless)
    assert np.var(noise) == pytest.approx(nominal, rel=VARIANCE_RTOL)
    assert np.all(np.abs(noise.mean(axis=0)) < 4 * math.sqrt(nominal / PRIVATE_IMAGES))
    assert excess == 0.0


def test_private_estimate_refuses_a_clipping_normalisation():
    air = AirCompConfig(channel="awgn", backend="jax")
    votes = np.eye(NUM_CLASSES, dtype=np.float32)[np.zeros((4, 3), int)]
    with pytest.raises(ValueError, match="normalization: clip=True"):
        aggregation.private_estimate(
            jax.random.split(jax.random.key(0)), votes, 0.0, 1.0, 0.0, 2.0, None, config=air,
            normalization=Normalization.simplex(NUM_CLASSES),
        )  # fmt: skip
