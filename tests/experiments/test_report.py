"""The documentation pages made from results folders (airinfer.experiments.report)."""

import json

import pytest

from airinfer.experiments import cli, report

META = {
    "versions": {"python": "3.12.1", "jax": "0.12.0.1", "sionna-no-rt": "1.2.2"},
    "jax_backend": "cpu",
    "jax_devices": ["cpu:0"],
    "seed": 3,
    "git": {"commit": "0123456789abcdef0123", "dirty": False},
    "finished_utc": "2026-12-01T08:55:01+00:00",
    "wall_time_s": 125.4,
    "first_point_s": 22.0,
    "points_computed": 3,
    "points_resumed": 0,
    "platform": {"cpu_count": 2},
}
CSV = "channel,snr_db,ber,note\nawgn,0.0,0.07865023,a|b\nawgn,5.0,0.0059,x\nawgn,10.0,3.87e-06,x\n"


def _folder(tmp_path, meta=META, csv=CSV, figure=True):
    """A results folder as `airinfer run link_ber --quick` leaves it (values hand-written)."""
    folder = tmp_path / "link_ber_quick"
    folder.mkdir()
    config = {"seed": 3, "snr_db": [0.0, 5.0, 10.0]}
    stored = {"experiment": "link_ber", "config": config, "overrides": ["seed=3"], "quick": True}
    (folder / "config.json").write_text(json.dumps(stored))
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "results.csv").write_text(csv)
    if figure:
        (folder / "link_ber.png").write_bytes(b"\x89PNG\r\n\x1a\n not a real image")
    return folder


def test_page_names_the_experiment_and_holds_the_table(tmp_path):
    folder = _folder(tmp_path)
    path = report.write_page(folder, tmp_path / "docs")

    assert path == tmp_path / "docs" / "experiments" / "link_ber.md"
    text = path.read_text()
    assert text.startswith("# `link_ber`\n")
    # the summary and the module docstring, read from the source of experiments/link_ber.py
    assert "BER" in text.split("## What it measures")[1]
    assert "2 min 05 s" in text  # 125.4 s
    assert "points computed: 3, resumed: 0\n" in text
    assert "`0123456789ab`" in text
    assert "airinfer run link_ber --quick --set seed=3" in text
    # the figure is linked and copied beside the page, byte for byte
    assert "![link_ber](link_ber.png)" in text
    assert (path.parent / "link_ber.png").read_bytes() == (folder / "link_ber.png").read_bytes()
    # the constant column leaves the table; the others hold the CSV's values, 4 digits
    table = text.split("## Results")[1].split("## Config")[0]
    assert "In every row: `channel` = awgn." in table
    assert "| snr_db | ber | note |" in table
    assert "| 0 | 0.07865 | a\\|b |" in table
    assert "| 10 | 3.87e-06 | x |" in table
    assert '"snr_db": [' in text.split("## Config")[1]


def test_resumed_run_says_whose_wall_time(tmp_path):
    text = report.page(_folder(tmp_path, meta={**META, "points_resumed": 2}))
    assert "resumed: 2 (the wall time is the last session's" in text


def test_run_with_every_point_resumed_has_no_first_point(tmp_path):
    # running a finished sweep again computes nothing: the runner records no first point
    meta = {**META, "first_point_s": None, "points_computed": 0, "points_resumed": 3}
    text = report.page(_folder(tmp_path, meta=meta))
    assert "- wall time: 2 min 05 s\n" in text
    assert "first point" not in text


def test_unfinished_run_and_no_figure(tmp_path):
    text = report.page(_folder(tmp_path, meta=None, figure=False))
    assert "the run had not finished" in text
    assert "![" not in text


def test_long_tables_are_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "MAX_ROWS", 2)
    text = report.page(_folder(tmp_path))
    assert "| 5 | 0.0059 | x |" in text
    assert "| 10 |" not in text
    assert "(1 more rows in `results.csv`.)" in text


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda f: (f / "results.csv").unlink(), "results.csv: missing"),
        (lambda f: (f / "results.csv").write_text("channel,snr_db\n"), "results.csv: no rows"),
        (lambda f: (f / "results.csv").write_text("a,b\n1,2,3\n"), "line 2 has 3 cells"),
        (lambda f: (f / "config.json").write_text("{"), "config.json: not a readable JSON"),
        (lambda f: (f / "config.json").write_text("{}"), "config.json: no 'experiment'"),
        (lambda f: (f / "meta.json").write_text('{"x": 1}'), "meta.json: no number"),
    ],
)
def test_bad_folder_is_one_line(tmp_path, damage, named):
    folder = _folder(tmp_path)
    damage(folder)
    with pytest.raises(ValueError, match=named) as raised:
        report.write_page(folder, tmp_path / "docs")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "docs").exists()


def test_cli_writes_the_page_and_refuses_a_bad_folder(tmp_path, capsys):
    folder = _folder(tmp_path)
    assert cli.main(["docs-page", str(folder), "--docs", str(tmp_path / "docs")]) == 0
    assert (tmp_path / "docs" / "experiments" / "link_ber.md").is_file()
    assert cli.main(["docs-page", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("airinfer: error: results_dir") and "\n" not in err


def test_docstring_rst_becomes_markdown():
    text = "Uses :func:`~airinfer.phy.theory.ber` and :class:`Link`, like this::\n\n    x = 1\n"
    assert report._rst_to_markdown(text) == (
        "Uses `airinfer.phy.theory.ber` and `Link`, like this:\n\n    x = 1\n"
    )
    # a "::" paragraph alone announces the block and is dropped, as RST does
    text = "Train it.\n\n::\n\n    airinfer run train\n\ntrains K members::\n"
    assert report._rst_to_markdown(text) == (
        "Train it.\n\n    airinfer run train\n\ntrains K members:\n"
    )


def test_commentary_is_included_not_copied(tmp_path):
    folder = _folder(tmp_path)
    docs = tmp_path / "docs"
    # no commentary file: no Discussion section
    assert "## Discussion" not in report.write_page(folder, docs).read_text()

    notes = report.commentary_file(docs, "link_ber")
    assert notes == docs / "experiments" / "commentary" / "link_ber.md"
    notes.parent.mkdir(parents=True)
    notes.write_text("Hand-written: zebra 17.\n")
    text = report.write_page(folder, docs).read_text()
    # one include line, between the figure and the results table; the text itself stays out
    section = text.split("## Discussion\n")[1].split("## Results")[0]
    assert section.strip() == '--8<-- "experiments/commentary/link_ber.md"'
    assert text.index("## Figure") < text.index("## Discussion") < text.index("## Results")
    assert "zebra" not in text
