"""The dataset registry: what files a named dataset has and how its splits are obtained."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from netadapt.data.checksums import Checksums
from netadapt.data.idx import read_idx_images, read_idx_labels
from netadapt.data.image_folder import FolderImages, class_folders, read_image_folder
from netadapt.data.pixels import ArrayImages
from netadapt.errors import DataError

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


@dataclass
class RawSplit:
    images: np.ndarray | FolderImages | ArrayImages  # uint8 [N, C, H, W]; indexed by an array of sample indices
    labels: np.ndarray  # int64 [N]


@dataclass
class RawDataset:
    classes: list[str]
    train: RawSplit
    test: RawSplit | None  # None: the dataset ships one split; test is carved from it


def _idx_split(root: Path, prefix: str, checksums: Checksums) -> RawSplit:
    images = read_idx_images(root / f"{prefix}-images-idx3-ubyte.gz", checksums)
    labels_path = root / f"{prefix}-labels-idx1-ubyte.gz"
    labels = read_idx_labels(labels_path, checksums)
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    return RawSplit(images, labels.astype(np.int64))


def _check_labels(split: RawSplit, classes: list[str], where: Path) -> None:
    """Every label names a class, and every class has samples: a split missing classes would train a
    network that never sees them and report an accuracy over fewer classes than its metrics claim."""
    if len(split.labels) and int(split.labels.max()) >= len(classes):
        raise DataError(f"{where}: label {int(split.labels.max())} out of range for {len(classes)} classes")
    present = set(np.unique(split.labels).tolist())
    missing = [f"{i} {name}" for i, name in enumerate(classes) if i not in present]
    if missing:
        raise DataError(f"{where}: labels cover {len(present)} of the dataset's {len(classes)} classes "
                        f"(none of {', '.join(missing)})")


def _fashion_mnist(root: Path, checksums: Checksums) -> RawDataset:
    train, test = _idx_split(root, "train", checksums), _idx_split(root, "t10k", checksums)
    for split, prefix in ((train, "train"), (test, "t10k")):
        _check_labels(split, FASHION_CLASSES, root / f"{prefix}-labels-idx1-ubyte.gz")
    return RawDataset(FASHION_CLASSES, train, test)


def _fashion_mnist_t10k(root: Path, checksums: Checksums) -> RawDataset:
    split = _idx_split(root, "t10k", checksums)
    _check_labels(split, FASHION_CLASSES, root / "t10k-labels-idx1-ubyte.gz")
    return RawDataset(FASHION_CLASSES, split, None)


def _folders(root: Path, checksums: Checksums, expected: list[str] | None) -> RawDataset:
    train_classes = class_folders(root / "train")
    test_classes = class_folders(root / "test")
    if train_classes != test_classes:
        missing = sorted(set(train_classes) - set(test_classes))
        extra = sorted(set(test_classes) - set(train_classes))
        raise DataError(f"{root / 'test'}: class folders differ from {root / 'train'}: "
                        f"missing {missing}, extra {extra}")
    if len(train_classes) < 2:
        raise DataError(f"{root / 'train'}: one class folder ({train_classes[0]}); a classifier needs at least 2")
    if expected is not None and train_classes != expected:
        raise DataError(f"{root / 'train'}: class folders {train_classes} are not the expected {expected}")
    train = RawSplit(*read_image_folder(root / "train", train_classes, checksums))
    test = RawSplit(*read_image_folder(root / "test", train_classes, checksums))
    return RawDataset(train_classes, train, test)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    read: Callable[[Path, Checksums], RawDataset]


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in [
    DatasetSpec("fashion-mnist", "IDX files train-* (60000) and t10k-* (10000), 28x28x1", _fashion_mnist),
    DatasetSpec("fashion-mnist-t10k", "Fashion-MNIST's t10k-* files alone (the embedded default); "
                "test is carved out with data.test_fraction", _fashion_mnist_t10k),
    DatasetSpec("cifar10", "train/<class>/*.jpg and test/<class>/*.jpg, the ten CIFAR-10 classes, 32x32x3",
                lambda root, sums: _folders(root, sums, CIFAR10_CLASSES)),
    DatasetSpec("image-folder", "any train/<class>/ and test/<class>/ image folders (of one image size, or "
                "resized and centre-cropped to data.image_size)",
                lambda root, sums: _folders(root, sums, None)),
]}


def read_dataset(name: str, root: Path, verify_checksums: bool = True, channels: int | None = None,
                 image_size: int | None = None) -> RawDataset:
    """Read a registered dataset from `root`, verifying files against SHA256SUMS when present; its
    images served with `channels` (None: as the train split's first image) at `image_size` (None:
    as stored, one size for all)."""
    if name not in DATASETS:
        raise DataError(f"data.name: unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if root.is_file():
        raise DataError(f"data.root: {root} is a file; give the folder holding the dataset's files "
                        f"(e.g. {root.parent})")
    if not root.is_dir():
        raise DataError(f"data.root: folder not found: {root}")
    raw = DATASETS[name].read(root, Checksums.load(root, verify_checksums))
    return _shaped(raw, root, channels, image_size)


def _shaped(raw: RawDataset, root: Path, channels: int | None, size: int | None) -> RawDataset:
    """Every split of `raw` converted to `channels` (None: the train split's) and, with `size`,
    resized and centre-cropped to it; without, train and test must share one image size."""
    c = channels or int(raw.train.images.shape[1])

    def shape(images: np.ndarray | FolderImages | ArrayImages) -> np.ndarray | FolderImages | ArrayImages:
        if isinstance(images, FolderImages):
            convert = images.convert_colour or channels is not None
            images = dataclasses.replace(images, channels=c, convert_colour=convert)
        elif isinstance(images, np.ndarray) and (images.shape[1] != c or size):
            images = ArrayImages(images, c)
        return images.resized(size) if size else images

    train = RawSplit(shape(raw.train.images), raw.train.labels)
    test = None if raw.test is None else RawSplit(shape(raw.test.images), raw.test.labels)
    if test is not None and train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"{root / 'test'}: images are {list(test.images.shape[1:])}, train's are "
                        f"{list(train.images.shape[1:])}; set data.image_size to prepare both at one size")
    return dataclasses.replace(raw, train=train, test=test)
