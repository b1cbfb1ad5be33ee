"""Reading the original formats (the clear errors on bad data, through the CLI as users meet them:
tests/e2e/test_datasets.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netadapt.data import read_dataset
from netadapt.errors import DataError


def test_idx_round_trip_reads_pixels_and_labels(idx_root: Path):
    raw = read_dataset("fashion-mnist", idx_root)
    assert raw.train.images.shape == (200, 1, 28, 28) and raw.train.images.dtype == np.uint8
    assert raw.test.images.shape == (50, 1, 28, 28)
    assert list(raw.train.labels[:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    expected = np.random.default_rng(1).integers(0, 256, size=(200, 28, 28), dtype=np.uint8)
    assert np.array_equal(raw.train.images[:, 0], expected)


def test_image_folder_reads_classes_in_sorted_order(folder_root: Path):
    raw = read_dataset("image-folder", folder_root)
    assert raw.classes == ["cat", "dog", "owl"]
    assert raw.train.images.shape == (30, 3, 8, 8)
    assert raw.test.images.shape == (12, 3, 8, 8)
    assert np.bincount(raw.train.labels).tolist() == [10, 10, 10]


def test_cifar10_rejects_other_class_folders(folder_root: Path):
    with pytest.raises(DataError, match="class folders .* are not the expected"):
        read_dataset("cifar10", folder_root)


def test_checksums_are_optional_and_can_be_disabled(idx_root: Path):
    (idx_root / "SHA256SUMS").write_text("0" * 64 + "  train-images-idx3-ubyte.gz\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        read_dataset("fashion-mnist", idx_root)
    read_dataset("fashion-mnist", idx_root, verify_checksums=False)
    (idx_root / "SHA256SUMS").unlink()
    read_dataset("fashion-mnist", idx_root)
