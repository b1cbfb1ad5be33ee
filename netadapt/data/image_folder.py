"""Image folders in the ImageNet layout, `<root>/<split>/<class>/*.jpg|png`, decoded with Pillow.

A class folder holds its images directly: a sub-folder in it (even one named `album.jpg`) is an
error naming it, not a silent skip of its images; entries whose names start with `.` are ignored,
and so are files of other suffixes, with a warning that counts them. Images may differ in size and
mode when the dataset is prepared at `data.image_size` (`pixels.fit`); without it they must share
the first image's size.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from netadapt.data.checksums import Checksums
from netadapt.data.pixels import channels_of, chw, fit, open_image, to_channels
from netadapt.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}

log = logging.getLogger("netadapt")


def class_folders(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found (expected <root>/<split>/<class>/*.jpg|png)")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir}: no class folders")
    return classes


@dataclasses.dataclass(frozen=True)
class FolderImages:
    """The images of an image folder as uint8 [N, C, H, W], decoded when indexed: `prepare` writes a
    folder far larger than memory a chunk at a time. `channels`: 1 or 3 (every image converted,
    `pixels.to_channels`; a colour image in a folder inferred grayscale is an error unless
    `convert_colour`); `size`: each image's shorter side resized to it and centre-cropped (0: every
    image must have the first's size, which the split then has)."""

    files: list[Path]
    checksums: Checksums
    channels: int
    convert_colour: bool
    size: int = 0
    threads: int = 4
    first_size: tuple[int, int] = (0, 0)  # W, H of files[0] (the common size when `size` is 0)

    @classmethod
    def open(cls, files: list[Path], checksums: Checksums, threads: int = 4) -> "FolderImages":
        """The images of `files` with the first one's channels (`pixels.channels_of`) and size."""
        with open_image(files[0], checksums) as first:
            return cls(files, checksums, channels_of(first.mode), False, 0, threads, first.size)

    def resized(self, size: int) -> "FolderImages":
        """The same images served at `size` x `size`."""
        return dataclasses.replace(self, size=size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        w, h = self.first_size
        return (len(self.files), self.channels, self.size or h, self.size or w)

    def __len__(self) -> int:
        return len(self.files)

    def _pixels(self, path: Path) -> np.ndarray:
        with open_image(path, self.checksums) as img:
            if not self.size and img.size != self.first_size:
                w, h = self.first_size
                raise DataError(f"{path}: image size {img.size[0]}x{img.size[1]} differs from {w}x{h} of "
                                f"{self.files[0]}; set data.image_size to prepare images of different sizes")
            img = to_channels(img, self.channels, path, self.convert_colour)
            return chw(fit(img, self.size) if self.size else img)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        paths = [self.files[int(i)] for i in np.asarray(index).reshape(-1)]
        with ThreadPoolExecutor(self.threads) as pool:
            decoded = list(pool.map(self._pixels, paths))
        return np.stack(decoded) if decoded else np.empty((0, *self.shape[1:]), dtype=np.uint8)


def class_images(folder: Path) -> list[Path]:
    """The images of one class folder, sorted; a sub-folder in it is an error naming it, other files
    are left out with a warning."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    nested = [p for p in entries if p.is_dir()]
    if nested:
        more = f" (and {len(nested) - 1} more)" if len(nested) > 1 else ""
        raise DataError(f"{nested[0]}: a folder inside class folder {folder.name}{more}; images must sit "
                        f"directly in <root>/<split>/<class>/: move them up, or the folder out")
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p for p in entries if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        log.warning("%s: %d file(s) not *.jpg, *.jpeg or *.png left out (e.g. %s)", folder, len(others),
                    others[0].name)
    if not images:
        raise DataError(f"{folder}: class folder has no images (*.jpg, *.jpeg, *.png)")
    return images


def read_image_folder(split_dir: Path, classes: list[str], checksums: Checksums,
                      threads: int = 4) -> tuple[FolderImages, np.ndarray]:
    """The images of `classes` under `split_dir` (decoded when indexed, as `FolderImages.open`) and
    their labels [N]."""
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files += [(p, label) for p in class_images(split_dir / name)]
    labels = np.array([label for _, label in files], dtype=np.int64)
    return FolderImages.open([path for path, _ in files], checksums, threads), labels
