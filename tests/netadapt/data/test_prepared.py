from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from netadapt.config import DataConfig
from netadapt.data import load_info, load_split, prepare_data
from netadapt.data.split import class_mixed_order, stratified_split
from tests.conftest import write_folders


def test_stratified_split_keeps_class_shares_and_is_seeded():
    labels = np.repeat(np.arange(4), [100, 50, 20, 10])
    kept, carved = stratified_split(labels, 0.1, [0, 2], "k")
    assert np.bincount(labels[carved]).tolist() == [10, 5, 2, 1]
    assert len(np.intersect1d(kept, carved)) == 0 and len(kept) + len(carved) == len(labels)
    again, _ = stratified_split(labels, 0.1, [0, 2], "k")
    other, _ = stratified_split(labels, 0.1, [1, 2], "k")
    assert np.array_equal(kept, again) and not np.array_equal(kept, other)


def test_single_split_dataset_carves_test_then_holdout(tmp_path: Path, idx_root: Path):
    cfg = DataConfig(name="fashion-mnist-t10k", root=str(idx_root), holdout_fraction=0.2, test_fraction=0.2)
    info = prepare_data(cfg, seed=0, out_dir=tmp_path / "p")
    assert info.counts == {"train": 30, "holdout": 10, "test": 10}
    assert info.input_shape == (1, 28, 28) and len(info.classes) == 10
    assert load_info(tmp_path / "p") == info
    splits = {name: load_split(tmp_path / "p", name) for name in ("train", "holdout", "test")}
    rows = [tuple(s.images[:].reshape(len(s), -1)[i].tolist()) for s in splits.values() for i in range(len(s))]
    assert len(set(rows)) == 50, "the three splits are disjoint and cover all 50 samples"
    for split in splits.values():
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64


def test_prepared_files_load_with_weights_only(tmp_path: Path, idx_root: Path):
    prepare_data(DataConfig(name="fashion-mnist", root=str(idx_root)), seed=0, out_dir=tmp_path / "p")
    blob = torch.load(tmp_path / "p" / "train.pt", weights_only=True)
    assert set(blob) == {"images", "images_shape", "images_sha256", "labels"} and blob["labels"].shape == (180,)
    images = np.load(tmp_path / "p" / blob["images"])  # a standard .npy: any tool reads it
    assert images.shape == (180, 1, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images, load_split(tmp_path / "p", "train").images[:].numpy())


def test_prepare_is_deterministic_in_the_seed(tmp_path: Path, idx_root: Path):
    cfg = DataConfig(name="fashion-mnist", root=str(idx_root))
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        prepare_data(cfg, seed=seed, out_dir=tmp_path / name)
    holdout = {n: load_split(tmp_path / n, "holdout").images[:] for n in "abc"}
    assert torch.equal(holdout["a"], holdout["b"]) and not torch.equal(holdout["a"], holdout["c"])


def test_class_mixed_order_gives_every_prefix_each_class_share():
    labels = np.repeat(np.arange(3), [30, 20, 10])  # class-sorted, as folders are listed
    order = class_mixed_order(labels, [0, 5])
    assert sorted(order.tolist()) == list(range(60))
    shares = np.bincount(labels) / len(labels)
    for k in range(1, 61):
        counts = np.bincount(labels[order[:k]], minlength=3)
        assert np.all(np.abs(counts - k * shares) < 1 + 1e-9), (k, counts)
    assert np.array_equal(order, class_mixed_order(labels, [0, 5]))
    assert not np.array_equal(order, class_mixed_order(labels, [1, 5]))


def test_image_folder_splits_are_stored_class_mixed(tmp_path: Path, folder_root: Path):
    """Folders list their files class by class; no prepared split may keep that order, or every
    "first N batches" (BN recalibration, scoring subsets) sees only the first classes."""
    prepare_data(DataConfig(name="image-folder", root=str(folder_root), holdout_fraction=0.2), 0, tmp_path / "p")
    for name, size in [("train", 24), ("holdout", 6), ("test", 12)]:
        labels = load_split(tmp_path / "p", name).labels
        assert len(labels) == size
        assert sorted(labels[:3].tolist()) == [0, 1, 2], f"{name} starts {labels[:6].tolist()}"


def test_grayscale_folders_are_stored_in_the_standard_layout(tmp_path: Path):
    write_folders(tmp_path / "gray", ["a", "b"], {"train": 6, "test": 2}, mode="L")
    prepare_data(DataConfig(name="image-folder", root=str(tmp_path / "gray"), holdout_fraction=0.25), 0,
                 tmp_path / "p")
    images = load_split(tmp_path / "p", "train").images[:]
    assert images.shape == (8, 1, 8, 8) and images.stride() == (64, 64, 8, 1)
