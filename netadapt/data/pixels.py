"""One image file to uint8 pixels with Pillow: decoded strictly, converted to the dataset's channels,
resized and centre-cropped as torchvision's `Resize(int)` + `CenterCrop` do (no torchvision here).

Modes: grayscale (`1`, `L`, 16-bit `I;16`/`I`, scaled by 1/257 rather than clipped at 255), RGB,
CMYK and YCbCr, palette `P`, and anything with alpha (`RGBA`, `LA`, `PA`, a palette or image with a
`transparency` entry): alpha is composited on black (pixel x alpha / 255), so a transparent pixel
is black whatever colour the file stored under it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from netadapt.data.checksums import Checksums
from netadapt.data.jpeg import decode_problem, read_layout
from netadapt.errors import DataError

GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def channels_of(mode: str) -> int:
    """1 for a grayscale mode, 3 for a colour one: the channels a folder gets from its first image."""
    return 1 if mode in GRAY_MODES else 3


def open_image(path: Path, checksums: Checksums) -> Image.Image:
    """The decoded image of `path`, or a one-line `DataError` naming it: an empty file, a format
    Pillow cannot identify, a damaged JPEG (`jpeg`: its structure, libjpeg's warnings), a
    truncated or damaged file, and a warning Pillow raises while decoding (under `strict_decoding`)."""
    raw = path.read_bytes()
    checksums.verify(path, raw)
    if not raw:
        raise DataError(f"{path}: empty file (0 bytes), not an image")
    layout = read_layout(raw)
    if layout.problem:
        raise DataError(f"{path}: damaged JPEG: {layout.problem}")
    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
    except UnidentifiedImageError:
        raise DataError(f"{path}: cannot decode image: not a format Pillow recognises") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise DataError(f"{path}: cannot decode image: {exc}") from None
    if img.format == "JPEG" and (problem := decode_problem(raw)):
        raise DataError(f"{path}: damaged JPEG: {problem} (garbled or missing bytes; Pillow would fill in "
                        f"the rest without a word)")
    return img


@contextlib.contextmanager
def strict_decoding() -> Iterator[None]:
    """Pillow's warnings (a decompression-bomb size, a damaged chunk) raised as errors, which
    `open_image` reports naming the file. Warning filters are process-wide, so this holds for the
    decoding threads too: enter it around a whole read, from one thread."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", module=r"PIL(\..*)?$")
        yield


def to_channels(img: Image.Image, channels: int, path: Path, convert_colour: bool) -> Image.Image:
    """`img` as `L` (channels 1) or `RGB` (3). A colour image becomes grayscale only when
    `convert_colour` (data.channels was set): else it is an error, never a silent loss of colour."""
    mode = img.mode
    if channels == 1 and channels_of(mode) == 3 and not convert_colour:
        raise DataError(f"{path}: a colour image ({mode}) in a folder prepared as grayscale (its first image "
                        f"is); set data.channels: 3 to keep colour, or 1 to convert every image to grayscale")
    if mode in SIXTEEN_BIT:
        values = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
    elif mode in ALPHA_MODES or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        premultiplied = np.rint(rgba[..., :3] * rgba[..., 3:] / 255.0).astype(np.uint8)
        img = Image.fromarray(premultiplied, "RGB")
    return img.convert("L" if channels == 1 else "RGB")


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """The shorter side resized to `size`, the longer `int(size * long / short)` (torchvision's
    `Resize(int)`), bilinear with Pillow's antialiasing when shrinking."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    return img.resize(new, Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The central `size` x `size` pixels (offsets rounded as torchvision's `CenterCrop`)."""
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def fit(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size`, then the central square: how every image of a sized dataset is stored."""
    return center_crop(resize_shorter(img, size), size)


def chw(img: Image.Image) -> np.ndarray:
    """An `L` or `RGB` image as uint8 [C, H, W]."""
    array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


@dataclasses.dataclass(frozen=True)
class ArrayImages:
    """uint8 [N, C, H, W] images in memory (an IDX file's) served like `FolderImages`: converted to
    `channels` and, with `size` > 0, shorter side resized and centre-cropped to `size`, when indexed."""

    images: np.ndarray
    channels: int
    size: int = 0

    def resized(self, size: int) -> "ArrayImages":
        return dataclasses.replace(self, size=size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n, _, h, w = self.images.shape
        return (n, self.channels, self.size or h, self.size or w)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        out = []
        for sample in self.images[np.asarray(index).reshape(-1)]:
            img = Image.fromarray(sample[0] if sample.shape[0] == 1 else sample.transpose(1, 2, 0))
            img = img.convert("L" if self.channels == 1 else "RGB")
            out.append(chw(fit(img, self.size) if self.size else img))
        return np.stack(out) if out else np.empty((0, *self.shape[1:]), dtype=np.uint8)
