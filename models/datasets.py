"""Image classification data sets, their splits, and per-device index sets.

Three data sets, all as ``[N, H, W, C]`` float32 images normalised per channel
with the training split's mean and standard deviation, and int32 labels:

* ``digits``: scikit-learn's 8×8 handwritten digits (1797 images, 10 classes),
  shipped with scikit-learn: the embedded default, no files needed.
* ``fashion_mnist``: the canonical IDX files (28×28×1, 60 000 + 10 000).
* ``cifar10``: the canonical python-pickle batches (32×32×3, 50 000 + 10 000).

Where the files are found, how they are downloaded and verified and how their
formats are read: :mod:`airinfer.models.dataset_files` (its public names are
re-exported here).

Index sets (bagging, shards, batches) are int32 arrays of row numbers into the
training split: members and epochs draw indices, never copies of the data.
"""

import dataclasses

import jax
import numpy as np

from airinfer.models.dataset_files import (
    DatasetError,
    data_search_dirs,
    download_file,
    load_raw,
    read_cifar10_batch,
    read_idx,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "load_dataset",
    "read_idx",
    "read_cifar10_batch",
    "data_search_dirs",
    "download_file",
    "split_indices",
    "bootstrap_indices",
    "disjoint_shards",
    "epoch_batches",
    "iterate_batches",
]

DATASETS = ("digits", "fashion_mnist", "cifar10")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A data set split into train, validation and test parts.

    Attributes:
        name: one of :data:`DATASETS`.
        train_images, val_images, test_images: ``[N, H, W, C]`` float32,
            normalised with the training split's per-channel ``mean``/``std``.
        train_labels, val_labels, test_labels: ``[N]`` int32 in ``[0, num_classes)``.
        num_classes: number of classes.
        mean, std: ``[C]`` float32, the normalisation that was applied.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.train_images.shape[1:])


# ---------------------------------------------------------------------------
# Splits and normalisation
# ---------------------------------------------------------------------------


def split_indices(key, n: int, fractions: tuple[float, ...]) -> list[np.ndarray]:
    """Partition ``range(n)`` at random into parts of the given fractions.

    Args:
        key: a ``jax.random`` key; the same key gives the same partition.
        n: number of rows.
        fractions: one fraction per part except the last, which gets the rest.

    Returns:
        ``len(fractions) + 1`` sorted int32 arrays, disjoint, covering ``range(n)``.
    """
    order = np.asarray(jax.random.permutation(key, n), np.int32)
    bounds = np.cumsum([int(round(f * n)) for f in fractions])
    return [np.sort(part) for part in np.split(order, bounds)]


def load_dataset(
    name: str = "digits",
    *,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    download: bool = True,
    verify: bool = True,
) -> Dataset:
    """Load, split and normalise a data set.

    Args:
        name: one of :data:`DATASETS`.
        seed: seeds the split; the same seed gives the same split.
        validation_fraction: fraction of the training images held out for validation.
        test_fraction: for ``digits`` only (it has no canonical test split).
        download: fetch missing files from the canonical source.
        verify: check the checksums of the files found.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: unknown ``name`` or bad fractions.
        DatasetError: files missing, corrupt or not canonical.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown {name!r}; allowed: {', '.join(DATASETS)}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction: {validation_fraction} is not in [0, 1)")
    key = jax.random.key(seed)
    if name == "digits":
        images, labels, _, _ = load_raw(name, download, verify)
        test_part, val_part, train_part = split_indices(
            key, len(labels), (test_fraction, validation_fraction * (1 - test_fraction))
        )
        train_images, train_labels = images[train_part], labels[train_part]
        test_images, test_labels = images[test_part], labels[test_part]
        val_images, val_labels = images[val_part], labels[val_part]
    else:
        all_train_images, all_train_labels, test_images, test_labels = load_raw(
            name, download, verify
        )
        val_part, train_part = split_indices(key, len(all_train_labels), (validation_fraction,))
        train_images, train_labels = all_train_images[train_part], all_train_labels[train_part]
        val_images, val_labels = all_train_images[val_part], all_train_labels[val_part]

    # statistics of the training split only, so nothing of val/test leaks in
    mean = train_images.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = np.maximum(train_images.std(axis=(0, 1, 2), dtype=np.float64), 1e-6).astype(np.float32)

    def normalise(images):
        return ((images.astype(np.float32) - mean) / std).astype(np.float32)

    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return Dataset(
        name=name,
        train_images=normalise(train_images),
        train_labels=np.asarray(train_labels, np.int32),
        val_images=normalise(val_images),
        val_labels=np.asarray(val_labels, np.int32),
        test_images=normalise(test_images),
        test_labels=np.asarray(test_labels, np.int32),
        num_classes=num_classes,
        mean=mean,
        std=std,
    )


# ---------------------------------------------------------------------------
# Per-member index sets and batches
# ---------------------------------------------------------------------------


def bootstrap_indices(key, n: int, num_members: int) -> np.ndarray:
    """Bagging: each member draws ``n`` rows with replacement.

    Member ``k`` uses ``fold_in(key, k)``, so its sample does not depend on how
    many members there are.

    Returns:
        ``[num_members, n]`` int32 row indices.
    """
    return np.stack(
        [
            np.asarray(jax.random.randint(jax.random.fold_in(key, k), (n,), 0, n), np.int32)
            for k in range(num_members)
        ]
    )


def disjoint_shards(key, n: int, num_members: int) -> np.ndarray:
    """Split the rows into ``num_members`` disjoint shards of equal size.

    The ``n mod num_members`` rows left over are dropped so that all members
    take the same number of steps (and can be trained as one vmapped step).

    Returns:
        ``[num_members, n // num_members]`` int32 row indices, no row twice.
    """
    if not 1 <= num_members <= n:
        raise ValueError(f"num_members: {num_members} is not in [1, {n}]")
    order = np.asarray(jax.random.permutation(key, n), np.int32)
    size = n // num_members
    return order[: size * num_members].reshape(num_members, size)


def epoch_batches(key, index_set: np.ndarray, batch_size: int) -> np.ndarray:
    """Shuffle one member's index set into full batches for one epoch.

    The last incomplete batch is dropped so every step has the same shape (no
    recompilation).

    Args:
        key: ``jax.random`` key of this member and epoch.
        index_set: ``[M]`` row indices the member trains on.
        batch_size: rows per batch; clipped to ``M``.

    Returns:
        ``[M // batch_size, batch_size]`` int32 row indices.
    """
    batch_size = min(batch_size, len(index_set))
    order = np.asarray(jax.random.permutation(key, len(index_set)))
    steps = len(index_set) // batch_size
    return np.asarray(index_set, np.int32)[order[: steps * batch_size]].reshape(steps, batch_size)


def iterate_batches(key, images: np.ndarray, labels: np.ndarray, batch_size: int, index_set=None):
    """Yield shuffled ``(images[B, ...], labels[B])`` batches of one epoch.

    Only the rows of each batch are gathered; the data set itself is never
    copied or permuted.
    """
    index_set = np.arange(len(labels), dtype=np.int32) if index_set is None else index_set
    for batch in epoch_batches(key, index_set, batch_size):
        yield images[batch], labels[batch]
