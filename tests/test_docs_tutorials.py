"""The tutorials (tutorials/*.py) and their documentation pages (docs/hooks.py).

``make tutorials`` runs the scripts themselves (CI); these tests check, quickly, what
running them would not: how a page is rendered, that every tutorial has a page in the
site's navigation and a figure to show, and that it uses public names only.
"""

import ast
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "tutorials").glob("*.py"))


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percent_cells_become_text_and_code_blocks():
    source = (
        '"""A preamble, not a cell."""\n'
        "# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n"
        "# %%\nimport os\n\nx = 1\n\n"
        "# %%\n\n"  # an empty code cell gives no block
        "# %% [markdown]\n# ## Plot\n\n"
        '# %%\nfigure.savefig(out / "a_plot.png")\nprint("a_plot.png")\n'
    )
    assert _hooks().tutorial_page(source) == (
        "# Title\n\nSome *text*.\n\n"
        "```python\nimport os\n\nx = 1\n```\n\n"
        "## Plot\n\n"
        '```python\nfigure.savefig(out / "a_plot.png")\nprint("a_plot.png")\n```\n\n'
        "The figures as `make tutorials` drew them:\n\n"
        "![a_plot.png](a_plot.png)\n"  # named twice, shown once
    )


def test_there_are_at_least_three_tutorials():
    assert len(SCRIPTS) >= 3, [script.name for script in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_each_tutorial_has_a_titled_page_in_the_nav_and_its_figures(script):
    page = _hooks().tutorial_page(script.read_text(encoding="utf-8"))
    assert page.startswith("# "), "the first cell must be markdown with the page's title"
    figures = [line[2:].split("](")[1][:-1] for line in page.splitlines() if line[:2] == "!["]
    assert figures, f'{script.name} names no figure ("NAME.png")'
    for name in figures:
        assert (ROOT / "docs" / "tutorials" / name).is_file(), f"run make tutorials: {name}"
    # a page left out of the nav is only an INFO line for `mkdocs build --strict`
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert f"- tutorials/{script.stem}.md" in nav


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_tutorials_use_public_names_only(script):
    private = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airinfer"):
            names = [*node.module.split("."), *(alias.name for alias in node.names)]
            private += [name for name in names if name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            private.append(node.attr)
    assert not private, f"{script.name} uses private names: {private}"
