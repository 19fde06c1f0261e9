"""The built wheel: one top-level name, every module of the repository's folders in it."""

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("phy", "ota", "models", "strategies", "experiments", "benchmarks")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools leaves a build/ folder beside the sources
    source = out / "source"
    skipped = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "results", "docs")
    shutil.copytree(REPO, source, ignore=skipped)
    # no build isolation: the test environment's setuptools, no network
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out)],
        check=True, cwd=out,
    )  # fmt: skip
    (wheel,) = out.glob("airinfer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_has_airinfer_as_its_only_top_level_name(wheel_names):
    top = {name.split("/")[0] for name in wheel_names}
    packages = {name for name in top if not name.endswith(".dist-info")}
    assert packages == {"airinfer"}
    assert len(top - packages) == 1


def test_wheel_holds_every_module_and_data_file_under_the_namespace(wheel_names):
    modules = {
        f"airinfer/{path.relative_to(REPO).as_posix()}"
        for folder in FOLDERS
        for pattern in ("*.py", "*.json")  # the package data: BLER curves, LDPC base graphs
        for path in (REPO / folder).rglob(pattern)
    }
    assert modules and modules <= wheel_names, sorted(modules - wheel_names)
