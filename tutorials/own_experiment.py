# %% [markdown]
# # Your own experiment, from your own package
#
# An experiment is a sweep the `airinfer` runner knows how to run: a typed config,
# the list of points, a function measuring one point and a plot. The runner
# adds the rest: `--set` overrides checked against the config's types, a
# resumable tidy `results.csv`, `config.json` and `meta.json`, the figure. You
# write one in your own package, without touching this repository, and
# announce it through the entry-point group `airinfer.experiments`.
#
# This tutorial writes such a package into a temporary folder: an experiment
# `k_sweep` measuring the over-the-air ensemble's accuracy against the Rician
# K-factor (from Rayleigh fading, K = 0, towards a strong line of sight). It
# installs the package with pip into a folder of its own (your environment is
# left as it is), then runs the experiment through the `airinfer` command line.
#
# Run it as a script: `python tutorials/own_experiment.py` (results go to
# `$AIRINFER_TUTORIALS_OUT/own_experiment/`, by default under `results/tutorials/`).

# %%
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

out = Path(os.environ.get("AIRINFER_TUTORIALS_OUT", "results/tutorials")) / "own_experiment"
package = Path(tempfile.mkdtemp(prefix="my_study-"))

# %% [markdown]
# ## The experiment
#
# A frozen dataclass `Config` (every field with a default, and a `seed`; the
# nested `EnsembleSpec` names the members, so `--set ensemble.members=4`
# works), `points`, `run_point` and `plot`, registered with literal `name` and
# `summary` strings: `airinfer list` reads them from the source without
# importing anything. `run_point` draws every random number from the key it is
# given (`fold_in(key(seed), point index)`), so a point's result does not
# depend on which points ran before it, and a cut run resumes to the same bytes.
#
# K = 0 is Rayleigh fading: `AirCompConfig` refuses `channel="rician"` with
# `k_factor=0` (and a K-factor on any other channel), so the point picks the
# channel.

# %%
(package / "k_sweep.py").write_text(
    textwrap.dedent('''
    """The over-the-air ensemble's accuracy vs the Rician K-factor, at a few SNRs."""

    import dataclasses
    from typing import Literal

    from airinfer.experiments.aggregation import ota_accuracy_curve, softmax
    from airinfer.experiments.members import EnsembleSpec, member_outputs
    from airinfer.experiments.plotting import new_figure, plot_lines, save_figure
    from airinfer.experiments.registry import Experiment, register
    from airinfer.ota import AirCompConfig


    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        k_factors: tuple[float, ...] = (0.0, 1.0, 4.0, 16.0)
        snr_db: tuple[float, ...] = (-10.0, -5.0, 0.0)
        precoding: Literal["truncated", "full", "phase", "optimal"] = "truncated"
        num_rx_ant: int = 1
        draws: int = 50
        ensemble: EnsembleSpec = EnsembleSpec(dataset="digits", model="cnn", members=8)


    def points(config):
        return [{"k_factor": k, "snr_db": s} for k in config.k_factors for s in config.snr_db]


    def run_point(key, config, point):
        k = point["k_factor"]
        air = AirCompConfig(
            channel="rician" if k > 0 else "rayleigh", k_factor=k,
            precoding=config.precoding, num_rx_ant=config.num_rx_ant, backend="jax",
        )
        members = member_outputs(config.ensemble, progress=False)
        probs = softmax(members.test_logits).transpose(1, 0, 2)  # [N, K, C]
        accuracy = ota_accuracy_curve(
            key, probs, members.test_labels, point["snr_db"], scheme="ota_belief",
            config=air, draws=config.draws,
        )
        return {"accuracy": float(accuracy[0])}


    def plot(rows, config, path):
        figure, axes = new_figure()
        plot_lines(axes, rows, x="k_factor", y="accuracy", by=("snr_db",))
        axes.set_xscale("symlog", linthresh=1.0)
        axes.set_xlabel("Rician K-factor (0: Rayleigh)")
        axes.set_title(f"{config.ensemble.members} devices over the air, {config.precoding} "
                       f"precoding, {config.num_rx_ant} rx antenna(s)", fontsize="medium")
        save_figure(figure, path)


    EXPERIMENT = register(
        Experiment(
            name="k_sweep",
            summary="over-the-air ensemble accuracy vs the Rician K-factor",
            config=Config,
            quick={"draws": 10},
            points=points,
            run_point=run_point,
            plot=plot,
        )
    )
    ''')
)

# %% [markdown]
# ## The package and its entry point
#
# The entry point's name is the experiment's name, its value the module that
# registers it. `pip install` would put the package into your environment; here
# it goes into a folder of its own (`--target`), found through `PYTHONPATH`.
# `--no-build-isolation --no-index` builds it with the setuptools already
# installed, without the network.

# %%
(package / "pyproject.toml").write_text(
    textwrap.dedent("""
    [project]
    name = "my-study"
    version = "0.1"
    dependencies = ["airinfer"]

    [project.entry-points."airinfer.experiments"]
    k_sweep = "k_sweep"

    [tool.setuptools]
    py-modules = ["k_sweep"]
    """)
)
site = package / "site"
pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
pip += ["--no-build-isolation", "--no-index", "--target", str(site), str(package)]
subprocess.run(pip, check=True)
env = dict(
    os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
)


def airinfer(*arguments):
    """The `airinfer` command of this environment, seeing the new package."""
    command = [sys.executable, "-m", "airinfer.experiments.cli", *arguments]
    subprocess.run(command, check=True, env=env)


airinfer("list")

# %% [markdown]
# ## Running it
#
# `--quick` applies the experiment's `quick` overrides (10 draws instead of
# 50); `--set` changes any field, checked against its type (`airinfer run
# k_sweep --show-config` lists them). Here the devices invert their channel
# fully, aligned to the weakest of them (`precoding=full`), which makes the
# deep fades of any one device everybody's problem. The members come from the
# model cache (trained on the first run). Each K-factor is one compiled
# program (the channel is a static part of it); the SNRs of a K-factor share it.

# %%
airinfer("run", "k_sweep", "--quick", "--set", "precoding=full", "--out", str(out), "--overwrite")

with open(out / "results.csv", newline="") as file:
    for row in csv.DictReader(file):
        accuracy = float(row["accuracy"])
        print(f"K = {row['k_factor']:>4}, SNR {row['snr_db']:>5} dB: accuracy {accuracy:.3f}")
print("figure:", out / "k_sweep.png")
shutil.rmtree(package)  # the package and its pip install; the results stay in `out`

# %% [markdown]
# A stronger line of sight (larger K) means fewer deep fades, so the weakest
# device, which sets everybody's amplitude under full inversion, is stronger
# and the sum cleaner. With the default truncated inversion the curve is
# nearly flat: every device that transmits arrives with the same amplitude,
# and fading only decides the few that stay silent (try it without the
# `--set`).
#
# `airinfer plot DIR` redraws the figure from `results.csv` without running
# anything (after you restyle `plot`), and `airinfer docs-page DIR` writes the
# experiment's documentation page. From Python, without any package,
# `airinfer.experiments.runner.run(EXPERIMENT, quick=True)` runs an
# experiment you registered in the same process.
