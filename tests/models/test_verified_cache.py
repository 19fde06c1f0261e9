"""The verified cache: manifests, corrupt entries moved aside and rebuilt, data fallbacks.

Every test works in its own temporary cache folder, never in the user's.
"""

import gzip
import json
import logging
import struct

import numpy as np
import pytest

from airinfer.models import dataset_files
from airinfer.models.cache import BadCacheEntryError, keep_bad_entries, load_or_build
from airinfer.models.checkpoint import (
    MANIFEST_FILE,
    CorruptCheckpointError,
    read_description,
    restore_state,
    save_checkpoint,
    verify_manifest,
)

# large enough that 64 flipped bytes land inside the array data, not only in headers
STATE = {"w": np.arange(4096, dtype=np.float32), "b": np.ones(3, np.float32)}


class Artefacts:
    """``load``/``build``/``save`` of one small checkpoint; counts the builds."""

    def __init__(self):
        self.builds = 0

    def load(self, path):
        assert read_description(path) == {"format": 1}
        return restore_state(path, STATE)

    def build(self, partial):
        self.builds += 1
        return {name: value.copy() for name, value in STATE.items()}

    def save(self, path, state):
        save_checkpoint(path, {"format": 1}, state)

    def __call__(self, path):
        return load_or_build(path, self.load, self.build, self.save)


def _largest_file(entry):
    files = [f for f in entry.rglob("*") if f.is_file() and f.name != MANIFEST_FILE]
    return max(files, key=lambda f: f.stat().st_size)


def _flip_bytes(path, count=64):
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - count // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _aside(entry):
    return sorted(entry.parent.glob(entry.name + ".bad-*"))


def test_a_stored_entry_carries_the_sha256_of_every_file(tmp_path):
    entry = tmp_path / "entry"
    artefacts = Artefacts()
    artefacts(entry)
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    stored = {f.relative_to(entry).as_posix() for f in entry.rglob("*") if f.is_file()}
    assert set(manifest["sha256"]) == stored - {MANIFEST_FILE}
    assert verify_manifest(entry) is True


def test_flipped_bytes_of_the_same_size_are_found_named_moved_aside_and_retrained(tmp_path, caplog):
    entry = tmp_path / "entry"
    artefacts = Artefacts()
    artefacts(entry)
    victim = _largest_file(entry)
    size = victim.stat().st_size
    _flip_bytes(victim)
    assert victim.stat().st_size == size
    with pytest.raises(CorruptCheckpointError, match=str(victim.name)):
        verify_manifest(entry)

    with caplog.at_level(logging.WARNING, logger="airinfer"):
        state, built = artefacts(entry)
    assert built and artefacts.builds == 2
    np.testing.assert_array_equal(state["w"], STATE["w"])
    [aside] = _aside(entry)
    assert (aside / victim.relative_to(entry)).exists()  # kept for inspection
    [record] = [r for r in caplog.records if r.name.startswith("airinfer")]
    assert str(entry) in record.getMessage() and "\n" not in record.getMessage()
    assert verify_manifest(entry) is True  # the rebuilt entry is whole again


@pytest.mark.parametrize("damage", ["truncate", "garble_description", "remove_file"])
def test_an_unreadable_entry_is_moved_aside_and_retrained(tmp_path, damage):
    entry = tmp_path / "entry"
    artefacts = Artefacts()
    artefacts(entry)
    if damage == "truncate":
        victim = _largest_file(entry)
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    elif damage == "garble_description":
        for file in (entry / "description").rglob("*"):
            if file.is_file():
                file.write_bytes(b"\x00\xff garbage")
    else:
        _largest_file(entry).unlink()
    # without its manifest the entry counts as written by an older version: the
    # damage must still be caught when reading it
    (entry / MANIFEST_FILE).unlink()
    _, built = artefacts(entry)
    assert built and artefacts.builds == 2 and len(_aside(entry)) == 1


def test_with_keep_bad_entries_a_bad_entry_stops_the_run_and_stays_where_it_is(tmp_path):
    entry = tmp_path / "entry"
    artefacts = Artefacts()
    artefacts(entry)
    _flip_bytes(_largest_file(entry))
    with keep_bad_entries(), pytest.raises(BadCacheEntryError) as raised:
        artefacts(entry)
    assert str(entry) in str(raised.value) and "\n" not in str(raised.value)
    assert artefacts.builds == 1 and entry.is_dir() and not _aside(entry)


def test_an_entry_from_before_manifests_loads_unverified_and_gets_its_manifest(tmp_path):
    entry = tmp_path / "entry"
    artefacts = Artefacts()
    artefacts(entry)
    (entry / MANIFEST_FILE).unlink()
    assert verify_manifest(entry) is False
    _, built = artefacts(entry)
    assert not built and artefacts.builds == 1
    assert verify_manifest(entry) is True


# ----------------------------------------------------------------------------- data


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _write_fashion_mnist(folder, images_value):
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 6), ("t10k", 4)):
        images = np.full((n, 28, 28), images_value, np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))


def test_a_bad_data_file_is_named_and_the_next_location_is_tried(tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    _write_fashion_mnist(root, images_value=7)  # $AIRINFER_DATA itself: searched first
    bad = root / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])  # truncated gzip stream
    _write_fashion_mnist(root / "fashion-mnist", images_value=9)  # the next location
    monkeypatch.setenv("AIRINFER_DATA", str(root))
    with caplog.at_level(logging.WARNING, logger="airinfer"):
        train_images, _, test_images, _ = dataset_files.load_raw(
            "fashion_mnist", download=False, verify=False
        )
    assert np.all(train_images == 9) and np.all(test_images == 7)
    [record] = caplog.records
    assert str(bad) in record.getMessage()


def test_missing_data_without_network_is_one_error_naming_the_places(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_files, "SYSTEM_DATA_ROOT", tmp_path / "system")
    monkeypatch.setattr(dataset_files, "CACHE_DATA_ROOT", tmp_path / "cache")
    monkeypatch.setenv("AIRINFER_DATA", str(tmp_path / "data"))

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dataset_files.urllib.request, "urlopen", offline)
    with pytest.raises(dataset_files.DatasetError, match="could not download"):
        dataset_files.load_raw("fashion_mnist", download=True, verify=True)
    with pytest.raises(dataset_files.DatasetError, match=str(tmp_path / "data")):
        dataset_files.load_raw("fashion_mnist", download=False, verify=True)
