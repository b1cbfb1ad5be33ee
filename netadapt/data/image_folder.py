"""Image folders in the ImageNet layout, `<root>/<split>/<class>/*.jpg|png`, decoded with Pillow."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from netadapt.data.checksums import Checksums
from netadapt.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def class_folders(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found (expected <root>/<split>/<class>/*.jpg|png)")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir}: no class folders")
    return classes


def _decode(path: Path, checksums: Checksums) -> tuple[Path, np.ndarray]:
    raw = path.read_bytes()
    checksums.verify(path, raw)
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            mode = "L" if img.mode in ("L", "1", "I;16") else "RGB"
            return path, np.asarray(img.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image: {exc}") from None


class FolderImages:
    """The images of an image folder as uint8 [N, C, H, W], decoded when indexed: `prepare` writes a
    folder far larger than memory a chunk at a time. Every image must share the first image's size
    and colour mode (no silent resizing)."""

    def __init__(self, files: list[Path], checksums: Checksums, threads: int = 4):
        self.files, self.checksums, self.threads = files, checksums, threads
        self.first = files[0]
        first = _decode(self.first, checksums)[1]
        self.first_shape, self.sample_shape = first.shape, _chw(first).shape
        self.shape = (len(files), *self.sample_shape)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        paths = [self.files[int(i)] for i in np.asarray(index).reshape(-1)]
        with ThreadPoolExecutor(self.threads) as pool:
            decoded = list(pool.map(lambda path: _decode(path, self.checksums), paths))
        for path, array in decoded:
            if _chw(array).shape != self.sample_shape:
                raise DataError(f"{path}: image shape {array.shape} differs from {self.first_shape} of {self.first}")
        return np.stack([_chw(array) for _, array in decoded]) if decoded else \
            np.empty((0, *self.sample_shape), dtype=np.uint8)


def _chw(array: np.ndarray) -> np.ndarray:
    """A decoded image (H, W) or (H, W, C) as [C, H, W]."""
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_image_folder(split_dir: Path, classes: list[str], checksums: Checksums,
                      threads: int = 4) -> tuple[FolderImages, np.ndarray]:
    """The images of `classes` under `split_dir` (decoded when indexed) and their labels [N]."""
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{folder}: class folder has no images (*.jpg, *.jpeg, *.png)")
        files += [(p, label) for p in images]
    labels = np.array([label for _, label in files], dtype=np.int64)
    return FolderImages([path for path, _ in files], checksums, threads), labels
