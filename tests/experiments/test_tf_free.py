"""Experiments with ``--set backend=jax`` run where TensorFlow and Sionna are not installed.

Each test runs ``airinfer run NAME --quick --set backend=jax`` with tiny
overrides in a child process (tests/tf_free.py) and asks for exit status 0 and
the results file. Link adaptation included: strategies_snr with ``mcs=adaptive``
and strategies_budget read the 38.214 MCS tables and the shipped BLER curves as
data, and measure the curves that do not ship on the JAX link. ``orthogonal_*``
schemes of ota_privacy run as ota_snr's ``orthogonal`` does (tested here), only
their BLER tables cost minutes.
"""

import pytest

from tests.tf_free import run_without_tensorflow

_CHILD = """
    import pathlib

    from airinfer.experiments.cli import main

    out = pathlib.Path({out!r})
    for name, settings in {runs!r}:
        argv = ["run", name, "--quick", "--no-progress", "--out", str(out / name),
                "--set", "backend=jax"]
        for setting in settings:
            argv += ["--set", setting]
        status = main(argv)
        assert status == 0, (name, status)
        assert (out / name / "results.csv").stat().st_size > 0, name
"""

# BER over both flat channels, uncoded (no LDPC decoder to compile): seconds.
LINK_BER = ("link_ber", ("snr_db=[30]", "modulations=[qpsk]", "channels=[awgn,rayleigh]",
                         "codings=[uncoded]", "max_bits=1024", "blocks_per_batch=2"))  # fmt: skip
# Two members trained one epoch; the over-the-air sum on a flat channel.
OTA_SNR = ("ota_snr", ("ensemble.members=2", "ensemble.epochs=1", "num_devices=[2]",
                       "snr_db=[20]", "draws=1", "channels=[awgn]",
                       "schemes=[ota_belief]"))  # fmt: skip


def _run(tmp_path, runs):
    script = _CHILD.format(out=str(tmp_path / "runs"), runs=runs)
    result = run_without_tensorflow(script, env={"AIRINFER_CACHE": str(tmp_path / "models")})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow  # LDPC decoders and OFDM links to compile, BLER tables to measure: minutes
def test_experiments_with_digital_and_ofdm_links_run_without_tensorflow(tmp_path):
    runs = (
        ("link_ber", ("snr_db=[30]", "modulations=[qpsk]", "channels=[awgn,rayleigh]",
                      "codings=[uncoded,ldpc]", "max_bits=2048", "blocks_per_batch=4")),
        # the orthogonal digital slots (LDPC) and TDL-A through the 38.901 twin
        ("ota_snr", ("ensemble.members=2", "ensemble.epochs=1", "num_devices=[2]",
                     "snr_db=[20]", "draws=1", "channels=[awgn,tdl-a]",
                     "schemes=[ota_belief,orthogonal]")),
        # digital strategies over TDL-A: the OFDM link on the JAX backend
        ("strategies_snr", ("epochs=1", "server_recipe=short", "ensemble_members=2",
                            "ensemble_devices=2", "num_test=40", "batch_size=40",
                            "channels=[tdl-a]", "snr_db=[30]",
                            "strategies=[local,cloud_digital,split_digital_b8]")),
    )  # fmt: skip
    _run(tmp_path, runs)


_STRATEGIES = ("epochs=1", "server_recipe=short", "ensemble_members=2", "ensemble_devices=2",
               "num_test=40", "batch_size=40", "channels=[awgn]", "snr_db=[30]")  # fmt: skip


@pytest.mark.slow  # six experiments, each training its tiny models: minutes
def test_the_other_channel_experiments_run_without_tensorflow(tmp_path):
    runs = (
        ("ota_privacy", ("ensemble.members=2", "ensemble.epochs=1", "epsilon=[inf,1.0]",
                         "draws=1", "schemes=[ota_belief,ota_vote]")),
        ("ota_connectivity", ("widths=[0.5]", "members=2", "trained_members=2",
                              "connectivity=[1.0]", "aggregations=[ota]", "epochs=1", "draws=1",
                              "reference_recipe=short")),
        ("train_encoder", ("classifier_epochs=1", "epochs=1", "snr_db=[10]")),
        ("table1", (*_STRATEGIES[:-2], "strategies=[local,cloud_digital]")),
        ("hybrid_snr", (*_STRATEGIES, "server_connectivities=[1.0]")),
        ("inversion_snr", (*_STRATEGIES, "strategies=[cloud_digital]", "attack_train=50",
                           "attack_epochs=1")),
    )  # fmt: skip
    _run(tmp_path, runs)


# Tiny models (trained in the child), one channel.
_TINY_STRATEGIES = ("epochs=1", "server_recipe=short", "ensemble_members=2",
                    "ensemble_devices=2", "num_test=40", "batch_size=40",
                    "channels=[awgn]")  # fmt: skip


# strategies_snr over the split's 512-bit blocks at the MCS chosen for 12 dB (16QAM or
# 64QAM): the LDPC decoder with early stopping runs on the JAX twin. strategies_budget
# plans every setting through link adaptation and runs none over LDPC.
ADAPTIVE_MCS = ("strategies_snr", (*_TINY_STRATEGIES, "mcs=adaptive", "snr_db=[12]",
                                   "strategies=[local,split_digital_b8]"))  # fmt: skip
BUDGET = ("strategies_budget", (*_TINY_STRATEGIES, "snr_db=[15]",
                                "strategies=[local,split_digital,edge_ensemble]",
                                "budgets=[4,16,64]", "ota_repetitions=[1,3,12]"))  # fmt: skip


def test_link_ber_ota_snr_adaptive_mcs_and_budget_run_without_tensorflow(tmp_path):
    # one child for the four: each interpreter start imports JAX anew, and the two
    # strategy experiments share the tiny models the first one trains (one cache)
    _run(tmp_path, (LINK_BER, OTA_SNR, ADAPTIVE_MCS, BUDGET))
