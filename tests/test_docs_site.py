"""The documentation site's build helpers (docs/hooks.py, docs/griffe_sionna.py).

They need the ``docs`` extra (MkDocs, griffe); without it these tests are skipped.
"""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("griffe")

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_input_output_entries_become_list_items():
    sionna = _load("griffe_sionna")
    text = (
        "Sum.\n\nInput (``__call__``):\n    key: JAX key.\n    x, y: ``[B, n]`` values,\n"
        "        both.\n\nOutput:\n    float32 values, the sum\n    of all.\n\nAfter.\n"
    )
    assert sionna._sections_as_lists(text).splitlines() == [
        "Sum.",
        "",
        "Input: Input (``__call__``)",
        "    - key: JAX key.",
        "    - x, y: ``[B, n]`` values,",
        "          both.",
        "",
        "Output:",
        "    float32 values, the sum",  # free text is no entry
        "    of all.",
        "",
        "After.",
    ]


def test_roles_become_optional_cross_references():
    sionna = _load("griffe_sionna")
    role = sionna._ROLE.search(":func:`~airinfer.phy.bridge.bridge`")
    assert sionna._role(role, "airinfer.ota.aircomp") == (
        '<autoref identifier="airinfer.phy.bridge.bridge" optional><code>bridge</code></autoref>'
    )
    role = sionna._ROLE.search(":class:`AirCompConfig`")
    assert sionna._role(role, "airinfer.ota.aircomp") == (
        '<autoref identifier="airinfer.ota.aircomp.AirCompConfig" optional>'
        "<code>AirCompConfig</code></autoref>"
    )


def test_every_public_module_gets_a_page():
    hooks = _load("hooks")
    ota = hooks.public_modules("ota")
    assert "airinfer.ota" in ota and "airinfer.ota.aircomp" in ota
    assert not any("._" in name for name in ota)  # ota/_checks.py is private
    phy = hooks.public_modules("phy")
    assert {"airinfer.phy.channels", "airinfer.phy.channels.flat"} <= set(phy)
    expected = {p.stem for p in (DOCS.parent / "ota").glob("[!_]*.py")}
    assert {name.rsplit(".", 1)[-1] for name in ota[1:]} == expected
    assert (hooks.TREE / "ota" / "aircomp.py").is_file()  # griffe's view of the namespace


def test_every_commentary_is_included_by_its_page():
    # a commentary file is shown only through its experiment page's include line
    # (airinfer.experiments.report); one without a page, or a page that lost the
    # line, would leave it out of the site without a warning
    commentary = DOCS / "experiments" / "commentary"
    names = sorted(path.stem for path in commentary.glob("*.md"))
    assert names, "no commentary found"
    for name in names:
        page = DOCS / "experiments" / f"{name}.md"
        assert page.is_file(), f"commentary/{name}.md has no page"
        include = f'--8<-- "experiments/commentary/{name}.md"'
        assert include in page.read_text(), f"{page.name} does not include its commentary"


def test_the_commentary_folder_is_not_a_page_of_its_own():
    import yaml

    # mkdocs.yml holds !!python/name tags for the theme's extensions: read it leniently
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    config = yaml.load((DOCS.parent / "mkdocs.yml").read_text(), Loader=Loader)
    assert "/experiments/commentary/" in config["exclude_docs"].split()
    snippets = next(
        entry["pymdownx.snippets"]
        for entry in config["markdown_extensions"]
        if isinstance(entry, dict) and "pymdownx.snippets" in entry
    )
    # a missing commentary file fails the strict build instead of vanishing
    assert snippets["check_paths"] is True and snippets["base_path"] == ["docs"]
