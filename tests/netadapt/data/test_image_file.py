"""Images on disk read by the batch: what lets a dataset larger than memory train."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from netadapt.config import DataConfig
from netadapt.data import image_folder, load_split, prepare_data
from netadapt.data import prepared as prepared_module
from netadapt.data.image_file import ImageFile, write_images
from netadapt.errors import DataError
from netadapt.training import batches
from tests.conftest import write_folders


@pytest.fixture
def stored(tmp_path: Path) -> tuple[np.ndarray, ImageFile]:
    images = np.random.default_rng(0).integers(0, 256, (37, 3, 5, 4), dtype=np.uint8)
    path = tmp_path / "x.images.npy"
    sha = write_images(path, images.shape, (images[i:i + 10] for i in range(0, 37, 10)))
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    return images, ImageFile(path)


def test_images_read_back_by_any_index_as_written(stored):
    images, file = stored
    assert np.array_equal(np.load(file.path), images), "a standard .npy"
    assert len(file) == 37 and file.shape == images.shape and file.dim() == 4
    idx = torch.tensor([36, 0, 5, 6, 7, 5, 20])  # shuffled, with runs and a repeat
    assert torch.equal(file[idx], torch.from_numpy(images[idx.numpy()]))
    assert torch.equal(file[3], torch.from_numpy(images[3])) and torch.equal(file[-1], torch.from_numpy(images[-1]))
    assert torch.equal(file[:], torch.from_numpy(images)) and file[torch.tensor([], dtype=torch.long)].shape == (0, 3, 5, 4)
    with pytest.raises(IndexError):
        file[torch.tensor([37])]


def test_a_copy_in_another_process_reads_on_its_own(stored):
    """Candidate evaluation maps over workers: a split travels as its path, not its pixels."""
    images, file = stored
    file[torch.tensor([1])]  # opens a descriptor here
    blob = pickle.dumps(file)
    assert len(blob) < 1000
    assert torch.equal(pickle.loads(blob)[torch.tensor([2, 3])], torch.from_numpy(images[2:4]))


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.write_bytes(p.read_bytes()[:-5]), "bytes, expected"),
    (lambda p: np.save(p, np.zeros((4, 3, 5, 4), dtype=np.float32)), "expected uint8"),
    (lambda p: np.save(p, np.zeros((4, 60), dtype=np.uint8)), r"holds uint8 \[4, 60\]"),
    (lambda p: p.write_bytes(b"garbage" * 10), "not a prepared image file"),
    (lambda p: p.unlink(), "not found"),
])
def test_a_damaged_image_file_is_named(stored, damage, says):
    _, file = stored
    damage(file.path)
    with pytest.raises(DataError, match=says) as info:
        ImageFile(file.path)
    assert str(file.path) in str(info.value) and "\n" not in str(info.value)


def test_a_split_is_read_a_batch_at_a_time(tmp_path: Path, idx_root: Path, monkeypatch):
    """Loading a split reads no pixels; a pass over it reads at most a batch per read, and sees
    every sample once."""
    prepare_data(DataConfig(name="fashion-mnist", root=str(idx_root)), seed=0, out_dir=tmp_path / "p")
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd, size, offset):
        reads.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    split = load_split(tmp_path / "p", "train")
    assert not reads and not isinstance(split.images, torch.Tensor)
    seen = [labels for _, labels in batches(split, 16, torch.Generator().manual_seed(0))]
    per_image = 28 * 28
    assert reads and max(reads) <= 16 * per_image
    assert sum(reads) == len(split) * per_image
    assert torch.equal(torch.cat(seen).sort().values, split.labels.sort().values)


def test_batches_read_ahead_give_the_same_batches_and_stop_cleanly(stored):
    images, file = stored
    split = prepared_module.Split(file, torch.arange(37) % 3)
    in_memory = prepared_module.Split(torch.from_numpy(images), torch.arange(37) % 3)
    for a, b in zip(batches(split, 8, torch.Generator().manual_seed(1)),
                    batches(in_memory, 8, torch.Generator().manual_seed(1)), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    first = next(iter(batches(split, 4)))  # abandoned after one batch: the reader thread ends
    assert first[0].shape == (4, 3, 5, 4)


def test_prepare_decodes_an_image_folder_a_chunk_at_a_time(tmp_path: Path, monkeypatch):
    write_folders(tmp_path / "f", ["a", "b", "c"], {"train": 10, "test": 4})
    decoded_at_once: list[int] = []
    real_getitem = image_folder.FolderImages.__getitem__

    def counting(self, index):
        decoded_at_once.append(len(np.asarray(index).reshape(-1)))
        return real_getitem(self, index)

    monkeypatch.setattr(image_folder.FolderImages, "__getitem__", counting)
    monkeypatch.setattr(prepared_module, "WRITE_CHUNK", 4)
    info = prepare_data(DataConfig(name="image-folder", root=str(tmp_path / "f"), holdout_fraction=0.2), 0,
                        tmp_path / "p")
    assert sum(decoded_at_once) == sum(info.counts.values()) == 42 and max(decoded_at_once) <= 4
    assert load_split(tmp_path / "p", "train").images[:].shape == (24, 3, 8, 8)


def test_an_image_of_another_size_is_named_when_prepare_reaches_it(tmp_path: Path):
    write_folders(tmp_path / "f", ["a", "b"], {"train": 6, "test": 2})
    odd = sorted((tmp_path / "f" / "train" / "b").iterdir())[-1]
    from PIL import Image

    Image.new("RGB", (9, 8)).save(odd)
    with pytest.raises(DataError, match="differs from") as info:
        prepare_data(DataConfig(name="image-folder", root=str(tmp_path / "f"), holdout_fraction=0.25), 0,
                     tmp_path / "p")
    assert str(odd) in str(info.value)
    assert not (tmp_path / "p").exists(), "nothing published"


def test_an_edited_image_file_is_refused_by_its_digest(tmp_path: Path, idx_root: Path):
    prepare_data(DataConfig(name="fashion-mnist", root=str(idx_root)), seed=0, out_dir=tmp_path / "p")
    path = tmp_path / "p" / "holdout.images.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: one pixel changed
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="differs from the digest holdout.pt records") as info:
        load_split(tmp_path / "p", "holdout")
    assert str(path) in str(info.value)
