"""Every command and Python example shown in the README and the documentation runs.

A command is a line of a ``bash`` block (backslash continuations joined, comments
dropped) or an inline code span starting with ``airinfer `` in README.md or any
page under docs/ (the generated experiment pages and the commentary included).
Each kind is handled as follows:

- ``airinfer ...``: parsed, and for ``run`` its experiment and ``--set`` keys
  resolved in ``--quick`` form (default suite, seconds); executed in ``--quick``
  form in a scratch folder (slow: quick runs take minutes);
- ``python -m airinfer...``: executed (slow);
- ``make TARGET``: the target is checked with ``make -n`` (it runs the commands
  above, or the test suite itself);
- commands that set up a machine (``pip install``, ``apt-get``, ``export``) or need a
  cluster's scheduler (``srun``) are listed in :data:`NOT_RUN` with the reason;
  the ``airinfer`` command inside ``srun`` is still resolved.

A command of any other kind fails :func:`test_every_command_has_a_kind`: a new
command in the docs gets a test here before it is merged. The Python blocks of
the README and of the pages outside docs/guides/ run here too (the guides have
their own tests, tests/test_docs_guides.py).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airinfer.experiments import cli, registry

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")], key=lambda p: p.as_posix())
# Kinds of command that are not executed here, with the reason.
NOT_RUN = {
    "pip": "installs packages (GPU builds); needs the network",
    "apt-get": "installs system packages; needs root and the network",
    "export": "sets a variable of the reader's shell",
    "srun": "needs a SLURM cluster; its airinfer command is resolved",
}
# Words that stand for a value the reader fills in, not a value of ours.
PLACEHOLDER = re.compile(r"\.\.\.|…|\b(?:NAME|DIR|KEY|VALUE|RESULTS_DIR)\b")
# At most 4 fake CPU devices: the sharding examples ask for 4.
FAKE_DEVICES = "--xla_force_host_platform_device_count=4"


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _bash_blocks(path: Path) -> list[list[str]]:
    """The commands of each bash block of a Markdown file, in order."""
    blocks = []
    for body in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", path.read_text(), re.S):
        joined = re.sub(r"\\\n\s*", " ", body)  # continuation lines
        commands = []
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
        blocks.append(commands)
    return blocks


def _inline_commands(path: Path) -> list[str]:
    """Inline code spans that are whole ``airinfer`` commands (no placeholders)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    spans = [" ".join(span.split()) for span in re.findall(r"(?<!`)`(airinfer [^`]+)`(?!`)", text)]
    return [span for span in spans if not PLACEHOLDER.search(span)]


def _split_env(command: str) -> tuple[dict[str, str], list[str]]:
    """``A=1 B=2 cmd args`` → ({A: 1, B: 2}, [cmd, args])."""
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def _kind(words: list[str]) -> str:
    if words[0] == "airinfer":
        return "airinfer"
    if words[:2] == ["python", "-m"] and words[2].startswith("airinfer."):
        return "python"
    if words[0] == "make":
        return "make"
    return words[0]


def _srun_inner(words: list[str]) -> str:
    """The command ``srun ... bash -c '...'`` runs."""
    return words[words.index("-c") + 1]


def _all_commands() -> list[tuple[str, str]]:
    """(file, command) for every command shown, blocks then inline spans."""
    found = []
    for path in DOC_FILES:
        for block in _bash_blocks(path):
            found += [(_relative(path), command) for command in block]
        found += [(_relative(path), command) for command in _inline_commands(path)]
    return found


def _airinfer_commands() -> list[tuple[str, str]]:
    """(file, command) for every ``airinfer`` command, the one inside ``srun`` included."""
    out = []
    for where, command in _all_commands():
        env, words = _split_env(command)
        if words[0] == "srun":
            env, words = _split_env(_srun_inner(words))
        if words and words[0] == "airinfer" and not PLACEHOLDER.search(command):
            out.append((where, shlex.join(words)))
    return out


# Names the docs' own code registers (the guides', docs/strategies.md's): the commands
# naming them run once that code has run, in this process.
READER_DEFINED = ("my_sweep", "analog_logits", "last_member")


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@pytest.fixture
def reader_defined():
    """Register what the docs register: the guides' experiment and strategy, ``last_member``."""
    from airinfer.strategies import registry as strategies_registry

    experiment, strategy = (
        ROOT / "docs" / "guides" / "experiment.md",
        ROOT / "docs" / "guides" / "strategy.md",
    )
    pages = ROOT / "docs" / "strategies.md"
    blocks = [
        (experiment, _python_blocks(experiment)[0]),
        *(
            (strategy, block) for block in _python_blocks(strategy)[:2]
        ),  # the class, its registration
        (pages, _python_blocks(pages)[1]),  # last_member
    ]
    namespaces = {}  # a page's blocks share one namespace, as in a reader's session
    try:
        for path, block in blocks:
            code = compile(block, str(path), "exec", dont_inherit=True)
            exec(code, namespaces.setdefault(path, {"__name__": f"docs_{path.stem}"}))
        yield
    finally:
        registry.REGISTERED.pop("my_sweep", None)
        for name in ("analog_logits", "last_member"):
            if name in strategies_registry.names():
                strategies_registry.unregister(name)


def test_the_docs_show_commands_of_every_kind():
    kinds = {_kind(_split_env(command)[1]) for _, command in _all_commands()}
    # the extraction finds what the README and the pages show
    assert {"airinfer", "python", "make"} <= kinds
    readme = [command for where, command in _all_commands() if where == "README.md"]
    assert "make demo" in readme and "make test" in readme
    assert any(command.startswith("airinfer run ") for command in readme)


def test_every_command_has_a_kind():
    unknown = [
        f"{where}: {command}"
        for where, command in _all_commands()
        if _kind(_split_env(command)[1]) not in {"airinfer", "python", "make", *NOT_RUN}
    ]
    assert not unknown, "commands no test runs (add their kind here):\n" + "\n".join(unknown)


def test_every_airinfer_command_parses_and_resolves(reader_defined):
    from airinfer.experiments import runner  # imports JAX

    parser = cli.build_parser()
    for where, command in _airinfer_commands():
        words = shlex.split(command)[1:]
        name = cli.ALIASES.get(words[0])
        if name is not None:  # `airinfer train ...` is `airinfer run train ...`
            words = ["run", name, *words[1:]]
        try:
            args = parser.parse_args(words)
        except cli.UsageError as error:
            pytest.fail(f"{where}: {command}: {error}")
        if args.command in ("run", "show"):
            assert args.name in registry.available(), f"{where}: {command}: no such experiment"
        if args.command == "run":
            experiment = registry.load(args.name)
            try:
                runner.resolve_config(experiment, overrides=args.set, quick=True)
            except ValueError as error:  # ConfigError is one
                pytest.fail(f"{where}: {command}: {error}")


def test_every_make_target_exists():
    targets = {
        shlex.split(command)[1] for _, command in _all_commands() if command.startswith("make ")
    }
    assert {"demo", "test"} <= targets
    for target in sorted(targets):
        done = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"make {target}: {done.stderr.strip()}"


# ------------------------------------------------------------------- executed (slow)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quick(words: list[str]) -> list[str]:
    """An ``airinfer run`` command in its --quick form (other commands as they are)."""
    if words[:2] == ["airinfer", "run"] and "--quick" not in words:
        return [*words[:3], "--quick", *words[3:]]
    return words


def _environment(env: dict[str, str]) -> dict[str, str]:
    merged = {**os.environ, **env}
    merged.setdefault("XLA_FLAGS", FAKE_DEVICES)
    merged["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{merged.get('PATH', '')}"
    return merged


def _with_results(command: str) -> list[str]:
    """``command``, after the quick run it reads when it is ``airinfer plot|docs-page DIR``.

    The docs show these on a folder of an earlier run (``results/NAME``); the
    run is made first, into that folder.
    """
    words = shlex.split(command)
    if words[:2] in (["airinfer", "plot"], ["airinfer", "docs-page"]):
        folder = words[2]
        return [f"airinfer run {Path(folder).name} --quick --out {folder}", command]
    return [command]


def _skip_without_data(command: str) -> None:
    """Skip where a command needs a data set this machine lacks (tests have no network)."""
    from airinfer.models.dataset_files import load_raw

    for name in ("fashion_mnist", "cifar10"):
        if name in command:
            try:
                load_raw(name, download=False, verify=False)
            except Exception as error:  # DatasetError, OSError: not here
                pytest.skip(f"{name} is not on this machine ({type(error).__name__})")


def _fill_cache(words: list[str], folder: Path) -> None:
    """Run a multi-process command once in one process first, as docs/scaling.md advises.

    The processes of one run would each train the members into the shared model
    cache; one fills it first (with an empty cache the ranks fail to write their
    training checkpoints: orbax refuses host-local arrays under several processes).
    """
    out = words.index("--out")
    single = [*words[: out + 1], str(folder / "cache-fill"), *words[out + 2 :]]
    done = subprocess.run(
        single, cwd=folder, env=_environment({}), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{shlex.join(single)}:\n{done.stderr[-4000:]}"


def _execute_block(commands: list[str], folder: Path) -> None:
    """Run a block's commands in ``folder``, in order; a multi-process run's ranks together."""
    for command in commands:
        _skip_without_data(command)
    ranks = []  # the processes of one jax.distributed run, started together
    port = _free_port()
    for command in commands:
        env, words = _split_env(command)
        kind = _kind(words)
        if kind in NOT_RUN or kind == "make":
            continue
        words = _quick(words)
        if words[:2] == ["python", "-m"]:
            words = [sys.executable, *words[1:]]
        if "AIRINFER_COORDINATOR" in env:  # "host a" is this machine
            env["AIRINFER_COORDINATOR"] = f"127.0.0.1:{port}"
            if not ranks:
                _fill_cache(words, folder)
            ranks.append(
                subprocess.Popen(words, cwd=folder, env=_environment(env), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            )  # fmt: skip
            continue
        done = subprocess.run(
            words, cwd=folder, env=_environment(env), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (
            f"{shlex.join(words)}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
        )
    for process in ranks:
        try:
            output, _ = process.communicate(timeout=1200)  # a quick run takes minutes
        except subprocess.TimeoutExpired:
            for rank in ranks:
                rank.kill()
            pytest.fail(f"{process.args}: no result after 20 minutes (the ranks hang)")
        assert process.returncode == 0, f"{process.args}:\n{output[-4000:]}"


def _blocks_to_run() -> list:
    params = []
    for path in DOC_FILES:
        for index, block in enumerate(_bash_blocks(path)):
            runnable = [c for c in block if _kind(_split_env(c)[1]) not in {"make", *NOT_RUN}]
            if runnable:
                params.append(pytest.param(block, id=f"{_relative(path)}#{index}"))
    return params


def _inline_to_run() -> list:
    shown_in_blocks = {c for path in DOC_FILES for b in _bash_blocks(path) for c in b}
    seen, params = set(), []
    for where, command in _all_commands():
        quick = shlex.join(_quick(shlex.split(command)))
        if command in shown_in_blocks or quick in seen or command.split()[:1] != ["airinfer"]:
            continue
        if any(name in command for name in READER_DEFINED):  # run in-process, below
            continue
        seen.add(quick)
        params.append(pytest.param(command, id=f"{where}:{quick}"))
    return params


@pytest.mark.slow
@pytest.mark.parametrize("block", _blocks_to_run())
def test_bash_block_runs_in_quick_form(block, tmp_path):
    _execute_block(block, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", _inline_to_run())
def test_inline_command_runs_in_quick_form(command, tmp_path):
    _execute_block(_with_results(command), tmp_path)


def _reader_defined_commands() -> list:
    commands = {c for _, c in _airinfer_commands() if any(n in c for n in READER_DEFINED)}
    return [pytest.param(c, id=c) for c in sorted(commands)]


@pytest.mark.slow
@pytest.mark.parametrize("command", _reader_defined_commands())
def test_reader_defined_command_runs(command, reader_defined, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for line in _with_results(command):
        words = _quick(shlex.split(line))[1:]
        assert cli.main([*words, "--no-progress"] if words[0] == "run" else words) == 0


# ------------------------------------------------------------------ Python examples


def _run_python(path: Path, folder: Path, monkeypatch) -> dict:
    """Execute a file's Python blocks in order, in one namespace, from ``folder``."""
    monkeypatch.chdir(folder)
    namespace = {"__name__": f"docs_{path.stem}"}
    for block in _python_blocks(path):
        exec(compile(block, str(path), "exec", dont_inherit=True), namespace)
    return namespace


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty model cache: an example trains what it needs, as on a fresh clone."""
    monkeypatch.setenv("AIRINFER_CACHE", str(tmp_path / "cache"))
    from airinfer.experiments import members

    for cached in (members._trained, members.member_outputs):
        cached.cache_clear()
    yield
    for cached in (members._trained, members.member_outputs):
        cached.cache_clear()


def test_python_examples_are_covered():
    # every page with Python code outside the guides is run by a test below
    pages = {
        _relative(path)
        for path in DOC_FILES
        if _python_blocks(path) and "docs/guides/" not in _relative(path)
    }
    assert pages == {"README.md", "docs/architecture.md", "docs/ota.md", "docs/strategies.md"}


@pytest.mark.slow
def test_readme_example_prints_an_accuracy_curve(fresh_cache, tmp_path, monkeypatch, capsys):
    _run_python(ROOT / "README.md", tmp_path, monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    accuracies = [float(line.rsplit(" ", 1)[1]) for line in lines if "accuracy" in line]
    assert len(accuracies) == 4
    # at 10 dB the ensemble decides far above chance (0.1); at -20 dB it does worse
    assert accuracies[-1] > 0.8
    assert accuracies[0] < accuracies[-1]


@pytest.mark.slow  # TensorFlow's import and a bridged compile; the bridge is tested in tests/phy
def test_bridge_example_adds_noise_of_the_given_power(tmp_path, monkeypatch):
    import numpy as np

    namespace = _run_python(ROOT / "docs" / "architecture.md", tmp_path, monkeypatch)
    y = np.asarray(namespace["y"])
    assert y.shape == (4, 8)
    # y = 1 + CN(0, 0.1): 32 draws, a variance within a factor 2.5 of 0.1
    assert 0.04 < np.mean(np.abs(y - 1) ** 2) < 0.25


def test_ota_example_decides_every_sample(tmp_path, monkeypatch):
    import numpy as np

    namespace = _run_python(ROOT / "docs" / "ota.md", tmp_path, monkeypatch)
    decisions = np.asarray(namespace["decisions"])
    assert decisions.shape == (1000,)
    assert decisions.min() >= 0 and decisions.max() < 10


@pytest.mark.slow
def test_strategies_examples_run(fresh_cache, tmp_path, monkeypatch):
    from airinfer.strategies import registry as strategies_registry

    try:
        namespace = _run_python(ROOT / "docs" / "strategies.md", tmp_path, monkeypatch)
    finally:
        strategies_registry.unregister("last_member")
    assert namespace["outcome"].logits.shape[0] == len(namespace["data"].test_labels)
    assert (tmp_path / "results" / "strategies_snr" / "results.csv").is_file()
    shutil.rmtree(tmp_path / "results")
