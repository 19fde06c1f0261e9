"""Two runs that ask the model cache for the same entry at once: one builds it, the
other waits for it and loads it (never trains it a second time)."""

import json
import logging
import threading

from airinfer.models import cache


def _load(path):
    return json.loads((path / "value.json").read_text())


def _save(path, value):
    path.mkdir()
    (path / "value.json").write_text(json.dumps(value))


def test_a_second_run_waits_for_the_entry_being_built_and_loads_it(tmp_path, caplog):
    entry = tmp_path / "entry"
    started, release = threading.Event(), threading.Event()
    results = {}

    def first_build(partial):
        started.set()
        assert release.wait(30)
        return {"built_by": "first"}

    def second_build(partial):
        return {"built_by": "second"}  # wrong if reached: the first run built it

    first = threading.Thread(
        target=lambda: results.setdefault("first", cache.load_or_build(
            entry, _load, first_build, _save))
    )  # fmt: skip
    first.start()
    assert started.wait(30)
    second = threading.Thread(
        target=lambda: results.setdefault("second", cache.load_or_build(
            entry, _load, second_build, _save))
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting, not building
        release.set()
        first.join(30)
        second.join(30)
    assert results["first"] == ({"built_by": "first"}, True)
    assert results["second"] == ({"built_by": "first"}, False)
    assert "being built by another run; waiting" in caplog.text


def test_a_cache_where_no_lock_can_be_written_still_loads(tmp_path, monkeypatch):
    entry = tmp_path / "entry"
    cache.load_or_build(entry, _load, lambda partial: {"v": 1}, _save)

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(cache, "open", read_only, raising=False)  # the lock file's open
    loaded = cache.load_or_build(entry, _load, lambda partial: {"v": 2}, _save)
    assert loaded == ({"v": 1}, False)
