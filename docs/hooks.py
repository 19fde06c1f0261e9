"""MkDocs hooks: the API reference, one page per public module, generated at build time.

The packages install as ``airinfer.phy``, ``airinfer.ota``, ... from top-level folders
(setuptools ``package-dir``), a layout griffe cannot find by itself: it looks for
``airinfer/phy`` on its search paths. So the build links the folders under
``build/docs-tree/airinfer/`` (the path mkdocstrings searches, see mkdocs.yml) and
lists the modules by walking them, so that a new module gets its page without an edit;
the experiments' section lists the pages found in docs/experiments/. The tutorials' pages
are rendered from their scripts (tutorials/NAME.py, jupytext percent format).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "docs" / "experiments"
TREE = ROOT / "build" / "docs-tree" / "airinfer"
TUTORIALS = ROOT / "tutorials"
# the layers, bottom up, as the architecture page draws them
PACKAGES = ("phy", "ota", "models", "strategies", "experiments")


def public_modules(package: str) -> list[str]:
    """The dotted names of ``airinfer.<package>`` and its public modules, sorted."""
    names = []
    folder = ROOT / package
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(("airinfer", package, *parts)))
    return sorted(names)


def _link_tree() -> None:
    TREE.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        link = TREE / package
        if not link.is_symlink():  # relative, so that a moved checkout still builds
            os.symlink(Path("..", "..", "..", package), link, target_is_directory=True)


# at import, before mkdocstrings reads its search paths (it drops missing ones)
_link_tree()


def _page(module: str) -> str:
    return f"api/{module.removeprefix('airinfer.')}.md"


def on_config(config):
    api = [{package: [_page(m) for m in public_modules(package)]} for package in PACKAGES]
    # the pages `make docs-pages` wrote, one per experiment
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in EXPERIMENTS.glob("*.md"))
    experiments = ["experiments/index.md", *(p for p in pages if p != "experiments/index.md")]
    for index, entry in enumerate(config.nav):
        if isinstance(entry, dict) and "API reference" in entry:
            config.nav[index] = {"API reference": api}
        if isinstance(entry, dict) and "Experiments" in entry:
            config.nav[index] = {"Experiments": experiments}
    return config


_CELL = re.compile(r"^# %%(.*)$", re.MULTILINE)
_FIGURE = re.compile(r'"(\w+\.png)"')


def tutorial_page(source: str) -> str:
    """The page of a tutorial from its percent-format script: ``# %% [markdown]`` cells as
    text, code cells as Python blocks, then the figures it names (``"NAME.png"``), which
    ``make tutorials`` copies into docs/tutorials/."""
    pieces = _CELL.split(source)
    blocks = []
    for header, body in zip(pieces[1::2], pieces[2::2], strict=True):
        body = body.strip("\n")
        if "[markdown]" in header:
            blocks.append("\n".join(line[2:] for line in body.splitlines()))
        elif body:
            blocks.append(f"```python\n{body}\n```")
    figures = [f"![{name}]({name})" for name in dict.fromkeys(_FIGURE.findall(source))]
    if figures:
        blocks.append("The figures as `make tutorials` drew them:")
    return "\n\n".join(blocks + figures) + "\n"


def on_files(files, config):
    for script in sorted(TUTORIALS.glob("*.py")):
        page = tutorial_page(script.read_text(encoding="utf-8"))
        files.append(File.generated(config, f"tutorials/{script.stem}.md", content=page))
    for package in PACKAGES:
        for module in public_modules(package):
            content = f"# `{module}`\n\n::: {module}\n"
            files.append(File.generated(config, _page(module), content=content))
    return files
