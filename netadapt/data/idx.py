"""IDX files (the MNIST family, `*-idx3-ubyte.gz` / `*-idx1-ubyte.gz`), read without torchvision.

Header integers are 32-bit big-endian: magic (2051 images, 2049 labels), count, then rows and
columns for images; one unsigned byte per pixel or label follows.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from netadapt.data.checksums import Checksums
from netadapt.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def _read(path: Path, checksums: Checksums) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    checksums.verify(path, raw)
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream (the file is cut short)") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid gzip file: {exc}") from None


def _header(path: Path, data: bytes, magic: int, fields: int) -> tuple[int, ...]:
    size = 4 * (1 + fields)
    if len(data) < size:
        raise DataError(f"{path}: truncated: {len(data)} bytes, shorter than the {size}-byte IDX header")
    values = struct.unpack(f">{1 + fields}I", data[:size])
    if values[0] != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise DataError(f"{path}: wrong magic number {values[0]}, expected {magic} (IDX {kind})")
    return values[1:]


def _body(path: Path, data: bytes, offset: int, expected: int, what: str) -> np.ndarray:
    found = len(data) - offset
    if found < expected:
        raise DataError(f"{path}: truncated: header promises {what} ({expected} bytes), found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} unexpected bytes after {what}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset)


def read_idx_images(path: Path, checksums: Checksums) -> np.ndarray:
    """uint8 array [N, 1, rows, cols]."""
    data = _read(path, checksums)
    count, rows, cols = _header(path, data, IMAGES_MAGIC, 3)
    if count == 0:
        raise DataError(f"{path}: holds no images (its header's count is 0)")
    if rows == 0 or cols == 0:
        raise DataError(f"{path}: its images are {rows}x{cols} pixels (the header gives no area)")
    pixels = _body(path, data, 16, count * rows * cols, f"{count} images of {rows}x{cols}")
    return pixels.reshape(count, 1, rows, cols)


def read_idx_labels(path: Path, checksums: Checksums) -> np.ndarray:
    """uint8 array [N]."""
    data = _read(path, checksums)
    (count,) = _header(path, data, LABELS_MAGIC, 1)
    if count == 0:
        raise DataError(f"{path}: holds no labels (its header's count is 0)")
    return _body(path, data, 8, count, f"{count} labels")
