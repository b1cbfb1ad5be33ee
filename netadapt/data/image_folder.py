"""Image folders in the ImageNet layout, `<root>/<split>/<class>/*.jpg|png`, decoded with Pillow."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

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


def read_image_folder(split_dir: Path, classes: list[str], checksums: Checksums,
                      threads: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image of `classes` under `split_dir`: uint8 [N, C, H, W] and labels [N].

    All images must share the first image's size and colour mode (no silent resizing).
    """
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{folder}: class folder has no images (*.jpg, *.jpeg, *.png)")
        files += [(p, label) for p in images]

    arrays: list[np.ndarray] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    with ThreadPoolExecutor(threads) as pool:
        decoded = pool.map(lambda item: _decode(item[0], checksums), files)
        for path, array in tqdm(decoded, total=len(files), desc=f"decode {split_dir.name}",
                                unit="img", mininterval=1.0, leave=False, disable=None):
            if first is None:
                first = (path, array.shape)
            elif array.shape != first[1]:
                raise DataError(f"{path}: image shape {array.shape} differs from {first[1]} of {first[0]}")
            arrays.append(array)
    stacked = np.stack(arrays)
    images = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.ascontiguousarray(images), labels
