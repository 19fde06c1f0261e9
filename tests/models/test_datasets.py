"""Data sets: loaders on tiny files written here (valid, truncated, corrupt), splits, index sets."""

import gzip
import hashlib
import io
import pickle
import struct
import tarfile

import jax
import numpy as np
import pytest

from airinfer.models import dataset_files
from airinfer.models.datasets import (
    DatasetError,
    bootstrap_indices,
    disjoint_shards,
    download_file,
    epoch_batches,
    iterate_batches,
    load_dataset,
    read_cifar10_batch,
    read_idx,
)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of a uint8 array: magic 0x0000 08 ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def no_real_data(tmp_path, monkeypatch):
    """Search only folders under tmp_path: never the machine's real data sets."""
    monkeypatch.setattr(dataset_files, "SYSTEM_DATA_ROOT", tmp_path / "system")
    monkeypatch.setattr(dataset_files, "CACHE_DATA_ROOT", tmp_path / "cache")
    monkeypatch.delenv("AIRINFER_DATA", raising=False)
    return tmp_path


def write_fashion_mnist(folder, rng, n_train=40, n_test=20, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for stem, array in arrays.items():
        content = idx_bytes(array)
        if compress:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(content))
        else:
            (folder / stem).write_bytes(content)
    return arrays


def cifar_batch_bytes(rng, n):
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    return pickle.dumps({b"data": data, b"labels": list(np.arange(n) % 10)}), data


# ----------------------------------------------------------------------------- IDX


def test_read_idx_round_trips_plain_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain").write_bytes(idx_bytes(array))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.gz"), array)


def test_read_idx_checks_the_content_checksum(tmp_path):
    content = idx_bytes(np.zeros((2, 2), np.uint8))
    (tmp_path / "f").write_bytes(content)
    read_idx(tmp_path / "f", sha256=hashlib.sha256(content).hexdigest())
    with pytest.raises(DatasetError, match="checksum mismatch"):
        read_idx(tmp_path / "f", sha256="0" * 64)


def test_truncated_idx_file_gives_a_clear_error(tmp_path):
    content = idx_bytes(np.ones((5, 28, 28), np.uint8))
    (tmp_path / "short").write_bytes(content[:-100])
    with pytest.raises(DatasetError, match=r"short: .*truncated"):
        read_idx(tmp_path / "short")


def test_corrupt_gzip_and_bad_magic_give_clear_errors(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.ones((5, 8, 8), np.uint8))))
    packed[len(packed) // 2 :] = b"\x00" * (len(packed) - len(packed) // 2)
    (tmp_path / "broken.gz").write_bytes(bytes(packed))
    with pytest.raises(DatasetError, match="corrupt"):
        read_idx(tmp_path / "broken.gz")
    (tmp_path / "text").write_bytes(b"hello, not an idx file")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(tmp_path / "text")


def test_fashion_mnist_found_in_airinfer_data_and_normalised(no_real_data, monkeypatch):
    rng = np.random.default_rng(0)
    folder = no_real_data / "data" / "fashion-mnist"
    arrays = write_fashion_mnist(folder, rng)
    monkeypatch.setenv("AIRINFER_DATA", str(no_real_data / "data"))
    dataset = load_dataset("fashion_mnist", verify=False, download=False, validation_fraction=0.25)
    assert dataset.image_shape == (28, 28, 1)
    assert (
        len(dataset.train_labels) == 30
        and len(dataset.val_labels) == 10
        and len(dataset.test_labels) == 20
    )
    np.testing.assert_array_equal(dataset.test_labels, arrays["t10k-labels-idx1-ubyte"])
    np.testing.assert_allclose(dataset.train_images.mean(), 0.0, atol=1e-4)
    np.testing.assert_allclose(dataset.train_images.std(), 1.0, atol=1e-4)
    # the test images are normalised with the training statistics
    expected = (arrays["t10k-images-idx3-ubyte"][..., None] - dataset.mean) / dataset.std
    np.testing.assert_allclose(dataset.test_images, expected, rtol=1e-5, atol=1e-5)


def test_fashion_mnist_checksums_reject_non_canonical_files(no_real_data, monkeypatch):
    write_fashion_mnist(no_real_data / "data", np.random.default_rng(0), compress=False)
    monkeypatch.setenv("AIRINFER_DATA", str(no_real_data / "data"))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("fashion_mnist", download=False)


def test_missing_fashion_mnist_says_where_it_looked_and_how_to_get_it(no_real_data):
    with pytest.raises(DatasetError) as error:
        load_dataset("fashion_mnist", download=False)
    message = str(error.value)
    assert str(no_real_data / "system" / "fashion-mnist") in message
    assert str(no_real_data / "cache" / "fashion-mnist") in message
    assert "dataset-fashion-mnist" in message and "AIRINFER_DATA" in message


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar10_batches_load_as_nhwc(no_real_data, monkeypatch):
    rng = np.random.default_rng(1)
    folder = no_real_data / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        content, data = cifar_batch_bytes(rng, 6)
        (folder / name).write_bytes(content)
        first = data if name == "test_batch" else first
    monkeypatch.setenv("AIRINFER_DATA", str(no_real_data / "data"))
    dataset = load_dataset("cifar10", download=False, validation_fraction=0.2)
    assert dataset.image_shape == (32, 32, 3)
    assert (
        len(dataset.train_labels) + len(dataset.val_labels) == 30 and len(dataset.test_labels) == 6
    )
    # channel-major rows become [H, W, C]: pixel (0, 1) of channel 2 is entry 2*1024 + 1
    raw = first.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(
        dataset.test_images[0, 0, 1, 2],
        (raw[0, 0, 1, 2] - dataset.mean[2]) / dataset.std[2],
        rtol=1e-5,
    )


def test_corrupt_cifar10_batch_gives_a_clear_error(tmp_path):
    content, _ = cifar_batch_bytes(np.random.default_rng(0), 4)
    (tmp_path / "cut").write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match="corrupt"):
        read_cifar10_batch(tmp_path / "cut")
    (tmp_path / "wrong").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(DatasetError, match="expected uint8"):
        read_cifar10_batch(tmp_path / "wrong")


def test_cifar10_tarball_is_checksummed(no_real_data, monkeypatch):
    folder = no_real_data / "data"
    folder.mkdir()
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        content, _ = cifar_batch_bytes(np.random.default_rng(0), 2)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    monkeypatch.setenv("AIRINFER_DATA", str(folder))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("cifar10", download=False)
    # unverified, the missing training batches are named
    with pytest.raises(DatasetError, match="not a readable CIFAR-10 tarball"):
        load_dataset("cifar10", download=False, verify=False)


# ----------------------------------------------------------------------------- download


def test_download_verifies_the_checksum_and_leaves_nothing_when_wrong(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"canonical bytes")
    good = hashlib.md5(b"canonical bytes").hexdigest()
    target = download_file(source.as_uri(), tmp_path / "cache" / "file.bin", good)
    assert target.read_bytes() == b"canonical bytes"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_file(source.as_uri(), tmp_path / "cache" / "other.bin", "0" * 32)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["file.bin"]
    with pytest.raises(DatasetError, match="could not download"):
        download_file((tmp_path / "absent").as_uri(), tmp_path / "cache" / "x", good)


# --------------------------------------------------------------- digits, splits, index sets


def test_digits_splits_are_deterministic_disjoint_and_normalised():
    first = load_dataset("digits", seed=3)
    again = load_dataset("digits", seed=3)
    other = load_dataset("digits", seed=4)
    assert first.image_shape == (8, 8, 1) and first.num_classes == 10
    sizes = (len(first.train_labels), len(first.val_labels), len(first.test_labels))
    assert sum(sizes) == 1797 and sizes[2] == round(0.2 * 1797)
    np.testing.assert_array_equal(first.test_images, again.test_images)
    assert not np.array_equal(first.test_labels, other.test_labels)
    # no image of the test split appears in the training split
    train_rows = {row.tobytes() for row in first.train_images.reshape(len(first.train_labels), -1)}
    test_rows = [row.tobytes() for row in first.test_images.reshape(len(first.test_labels), -1)]
    overlap = sum(row in train_rows for row in test_rows)
    assert overlap < 0.05 * len(test_rows)  # digits holds a few exact duplicate images
    np.testing.assert_allclose(first.train_images.mean(), 0.0, atol=1e-5)


def test_unknown_dataset_names_what_is_allowed():
    with pytest.raises(ValueError, match="unknown 'mnist'.*digits, fashion_mnist, cifar10"):
        load_dataset("mnist")


def test_bagging_is_reproducible_per_seed_and_independent_of_member_count():
    key = jax.random.key(7)
    bags = bootstrap_indices(key, 500, 4)
    np.testing.assert_array_equal(bags, bootstrap_indices(jax.random.key(7), 500, 4))
    np.testing.assert_array_equal(bags[:2], bootstrap_indices(key, 500, 2))
    assert not np.array_equal(bags, bootstrap_indices(jax.random.key(8), 500, 4))
    assert not np.array_equal(bags[0], bags[1])
    assert bags.shape == (4, 500) and bags.min() >= 0 and bags.max() < 500
    # a bootstrap sample holds about 1 - 1/e = 63.2 % distinct rows (sd ~ 1.3 % at n = 500)
    distinct = np.mean([len(np.unique(bag)) / 500 for bag in bags])
    assert 0.58 < distinct < 0.68


def test_shards_are_disjoint_and_equal():
    shards = disjoint_shards(jax.random.key(0), 103, 4)
    assert shards.shape == (4, 25)
    assert len(np.unique(shards)) == 100
    with pytest.raises(ValueError, match="num_members"):
        disjoint_shards(jax.random.key(0), 3, 4)


def test_epoch_batches_cover_the_index_set_without_repeats():
    index_set = np.arange(10, 60, dtype=np.int32)
    batches = epoch_batches(jax.random.key(0), index_set, 16)
    assert batches.shape == (3, 16)
    assert len(np.unique(batches)) == 48 and set(batches.ravel()) <= set(index_set)
    assert not np.array_equal(batches, epoch_batches(jax.random.key(1), index_set, 16))


def test_iterate_batches_gathers_rows_of_the_unchanged_data():
    images = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    labels = np.arange(20, dtype=np.int32)
    before = images.copy()
    seen = []
    for batch_images, batch_labels in iterate_batches(jax.random.key(0), images, labels, 6):
        np.testing.assert_array_equal(batch_images[:, 0, 0, 0], batch_labels)
        seen.extend(batch_labels)
    assert len(seen) == 18 and len(set(seen)) == 18
    np.testing.assert_array_equal(images, before)
