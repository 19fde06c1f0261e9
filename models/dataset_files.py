"""Data set files: where they are looked for, their download and checksums, their formats.

Files are looked for in ``$AIRINFER_DATA``, then in Debian's dataset folder
(``/usr/share/datasets/<name>``), then in ``~/.cache/airinfer/<name>``; when
none has them and ``download=True`` they are fetched from the canonical source
into the cache and verified against the published MD5 sums. Files found on disk
are verified too: Fashion-MNIST by the SHA-256 of the decompressed content (so
that a re-compressed copy, such as Debian's, passes), the CIFAR-10 tarball by
its MD5. Already extracted CIFAR-10 batches have no published checksum; they
are checked for structure (keys, dtype, shapes) only.

:func:`load_raw` gives a data set's raw train and test arrays;
:func:`airinfer.models.datasets.load_dataset` splits and normalises them.
"""

import gzip
import hashlib
import io
import logging
import os
import pathlib
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request

import numpy as np

__all__ = [
    "DatasetError",
    "SYSTEM_DATA_ROOT",
    "CACHE_DATA_ROOT",
    "data_search_dirs",
    "download_file",
    "read_idx",
    "read_cifar10_batch",
    "load_raw",
]


_log = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """A data set could not be found, downloaded, verified or parsed."""


# ---------------------------------------------------------------------------
# Canonical files and their checksums
# ---------------------------------------------------------------------------

_FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# name -> (MD5 of the published .gz, as in the Fashion-MNIST README;
#          SHA-256 of the decompressed IDX content, which survives re-compression)
_FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte": (
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR10_TARBALL = "cifar-10-python.tar.gz"
_CIFAR10_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST_BATCH = "test_batch"

# Debian's data set packages install here; downloads are cached under the second
SYSTEM_DATA_ROOT = pathlib.Path("/usr/share/datasets")
CACHE_DATA_ROOT = pathlib.Path("~/.cache/airinfer")

# folder names under each search root (Debian's package name first)
_FOLDER_NAMES = {
    "fashion_mnist": ("fashion-mnist", "fashion_mnist"),
    "cifar10": ("cifar-10", "cifar10"),
}


def data_search_dirs(name: str) -> list[pathlib.Path]:
    """The folders searched for data set ``name``, in order.

    ``$AIRINFER_DATA`` (itself and its ``<name>`` subfolder), Debian's
    ``/usr/share/datasets/<name>``, then ``~/.cache/airinfer/<name>`` (also where
    downloads go: the last entry).
    """
    folders = _FOLDER_NAMES[name]
    dirs = []
    if os.environ.get("AIRINFER_DATA"):
        root = pathlib.Path(os.environ["AIRINFER_DATA"]).expanduser()
        dirs += [root] + [root / f for f in folders]
    dirs += [SYSTEM_DATA_ROOT / f for f in folders]
    dirs.append(CACHE_DATA_ROOT.expanduser() / folders[0])
    return dirs


def _md5(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def download_file(url: str, destination: pathlib.Path, md5: str) -> pathlib.Path:
    """Download ``url`` to ``destination`` and check its MD5.

    The file is written under a temporary name and renamed only once verified,
    so an interrupted or corrupt download never leaves a file that looks valid.

    Raises:
        DatasetError: the download failed or the checksum did not match.
    """
    destination = pathlib.Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=destination.name + ".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        actual = _md5(pathlib.Path(tmp_name))
        if actual != md5:
            raise DatasetError(
                f"checksum mismatch for {url}: MD5 {actual}, expected {md5}; "
                "the download is corrupt or not the canonical file"
            )
        os.replace(tmp_name, destination)
    except OSError as error:
        raise DatasetError(f"could not download {url}: {error}") from error
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return destination


# ---------------------------------------------------------------------------
# File formats
# ---------------------------------------------------------------------------

# IDX type codes -> numpy dtypes (big-endian on disk)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: pathlib.Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetError(
            f"{path}: cannot read or decompress ({error}); the file is corrupt"
        ) from error


def read_idx(path, sha256: str | None = None) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or not) into a numpy array.

    Args:
        path: the file.
        sha256: if given, the expected SHA-256 of the decompressed content.

    Returns:
        The array, shape as in the header, native byte order.

    Raises:
        DatasetError: bad magic number, truncated or oversized payload, corrupt
            gzip stream, or checksum mismatch. The message names the file.
    """
    path = pathlib.Path(path)
    content = _read_maybe_gzip(path)
    if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
        raise DatasetError(
            f"{path}: checksum mismatch (SHA-256 of the content is "
            f"{hashlib.sha256(content).hexdigest()}, expected {sha256}); "
            "the file is corrupt or not the canonical one"
        )
    if len(content) < 4 or content[0:2] != b"\x00\x00" or content[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {content[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[content[2]])
    ndim = content[3]
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise DatasetError(
            f"{path}: IDX payload has {len(content)} bytes, header {shape} needs {expected}; "
            "the file is truncated or corrupt"
        )
    return (
        np.frombuffer(content, dtype, offset=header_size)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_cifar10_batch(source) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 python-pickle batch.

    Args:
        source: a path or a binary file object holding the pickled dict with
            ``b"data"`` (``[N, 3072]`` uint8, channel-major 3×32×32) and
            ``b"labels"`` (N ints).

    Returns:
        ``images [N, 32, 32, 3]`` uint8 and ``labels [N]`` int32.

    Raises:
        DatasetError: unreadable pickle or unexpected content.
    """
    name = getattr(source, "name", source)
    try:
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
        else:
            batch = pickle.load(source, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise DatasetError(
            f"{name}: not a readable CIFAR-10 batch ({error}); the file is corrupt"
        ) from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"{name}: a CIFAR-10 batch needs the keys b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], np.int32)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{name}: b'data' is {data.dtype}{list(data.shape)}, expected uint8[N, 3072]"
        )
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{name}: {labels.shape[0]} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


# ---------------------------------------------------------------------------
# Loaders of raw (uint8) train/test arrays
# ---------------------------------------------------------------------------


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    # values are counts 0..16 of the original 32×32 bitmaps; keep them as floats
    images = digits.images.astype(np.float32)[..., None]
    return images, digits.target.astype(np.int32), None, None


def _find_files(dirs, stem):
    """Every ``stem`` or ``stem.gz`` in ``dirs``, in the search order."""
    return [
        candidate
        for folder in dirs
        for candidate in (folder / stem, folder / (stem + ".gz"))
        if candidate.is_file()
    ]


def _skip_bad_file(error: DatasetError) -> None:
    """Name a bad data file in one warning line; the next location is tried."""
    _log.warning("%s; trying the next location", error)


def _read_first_good_idx(dirs, stem: str, sha256: str | None):
    """The array of the first good copy of ``stem`` in ``dirs``, or None if none is good.

    Returns ``(array or None, the bad files' errors)``.
    """
    bad = []
    for path in _find_files(dirs, stem):
        try:
            return read_idx(path, sha256), bad
        except DatasetError as error:
            _skip_bad_file(error)
            bad.append(error)
    return None, bad


def _load_fashion_mnist(download: bool, verify: bool):
    dirs = data_search_dirs("fashion_mnist")
    arrays = {}
    for stem, (gz_md5, content_sha256) in _FASHION_MNIST_FILES.items():
        sha256 = content_sha256 if verify else None
        array, bad = _read_first_good_idx(dirs, stem, sha256)
        if array is None and download:
            path = download_file(
                _FASHION_MNIST_URL + stem + ".gz", dirs[-1] / (stem + ".gz"), gz_md5
            )
            array = read_idx(path, sha256)
        if array is None:
            found = f" (only bad copies, e.g. {bad[0]})" if bad else ""
            raise DatasetError(
                f"Fashion-MNIST file {stem}[.gz] not found{found}; looked in "
                + ", ".join(str(d) for d in dirs)
                + ". Install Debian's package dataset-fashion-mnist, put the four canonical IDX "
                "files in a folder named by $AIRINFER_DATA, or allow the download."
            )
        arrays[stem] = array
    train_images, train_labels = (
        arrays["train-images-idx3-ubyte"],
        arrays["train-labels-idx1-ubyte"],
    )
    test_images, test_labels = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    for images, labels in ((train_images, train_labels), (test_images, test_labels)):
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise DatasetError(
                f"Fashion-MNIST: images {list(images.shape)} "
                f"do not match labels {list(labels.shape)}"
            )
    return (
        train_images[..., None],
        train_labels.astype(np.int32),
        test_images[..., None],
        test_labels.astype(np.int32),
    )


def _read_cifar10_folder(folder: pathlib.Path):
    train = [read_cifar10_batch(folder / name) for name in _CIFAR10_TRAIN_BATCHES]
    test_images, test_labels = read_cifar10_batch(folder / _CIFAR10_TEST_BATCH)
    return (
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        test_images,
        test_labels,
    )


def _read_cifar10_tarball(path: pathlib.Path, verify: bool):
    if verify and _md5(path) != _CIFAR10_TARBALL_MD5:
        raise DatasetError(
            f"{path}: checksum mismatch (MD5 {_md5(path)}, expected {_CIFAR10_TARBALL_MD5}); "
            "the file is corrupt or not the canonical CIFAR-10 tarball"
        )
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in (*_CIFAR10_TRAIN_BATCHES, _CIFAR10_TEST_BATCH):
                member = tar.extractfile(f"{_CIFAR10_FOLDER}/{name}")
                batches[name] = read_cifar10_batch(io.BytesIO(member.read()))
    except (tarfile.TarError, KeyError, OSError, EOFError, AttributeError) as error:
        raise DatasetError(f"{path}: not a readable CIFAR-10 tarball ({error})") from error
    train = [batches[name] for name in _CIFAR10_TRAIN_BATCHES]
    return (
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        *batches[_CIFAR10_TEST_BATCH],
    )


def _load_cifar10(download: bool, verify: bool):
    dirs = data_search_dirs("cifar10")
    bad = []
    for folder in dirs:
        try:
            for candidate in (folder / _CIFAR10_FOLDER, folder):
                if (candidate / _CIFAR10_TEST_BATCH).is_file():
                    return _read_cifar10_folder(candidate)
            if (folder / _CIFAR10_TARBALL).is_file():
                return _read_cifar10_tarball(folder / _CIFAR10_TARBALL, verify)
        except DatasetError as error:
            _skip_bad_file(error)
            bad.append(error)
    if download:
        path = download_file(_CIFAR10_URL, dirs[-1] / _CIFAR10_TARBALL, _CIFAR10_TARBALL_MD5)
        return _read_cifar10_tarball(path, verify=False)
    found = f" (only bad copies, e.g. {bad[0]})" if bad else ""
    raise DatasetError(
        f"CIFAR-10 not found{found}; looked for cifar-10-batches-py/ or cifar-10-python.tar.gz in "
        + ", ".join(str(d) for d in dirs)
        + ". Put the canonical python version in a folder named by $AIRINFER_DATA, "
        "or allow the download."
    )


def load_raw(name: str, download: bool, verify: bool):
    """The raw arrays of data set ``name``, as stored, before any split or normalisation.

    Returns ``(train_images, train_labels, test_images, test_labels)``: images
    ``[N, H, W, C]`` (uint8, or float32 for ``digits``), labels ``[N]`` int32;
    ``digits`` has no canonical test split (its test arrays are None).

    Args:
        name: ``digits``, ``fashion_mnist`` or ``cifar10``.
        download: fetch missing files from the canonical source.
        verify: check the checksums of the files found.

    Raises:
        DatasetError: files missing, corrupt or not canonical.
    """
    if name == "digits":
        return _load_digits()
    if name == "fashion_mnist":
        return _load_fashion_mnist(download, verify)
    return _load_cifar10(download, verify)
