"""A split's images on disk, read by the batch.

Prepared images are one standard `.npy` file per split (uint8 [N, C, H, W], C order), written a chunk
at a time and read sample by sample with `os.pread`. Training, BN recalibration and evaluation then
hold one batch in memory, never the split: a dataset larger than memory trains, and the kernel's
page cache (not the process) keeps whatever of the file memory can spare. A memory map would also
read lazily, but every page an epoch touches would stay in the process's resident set.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from netadapt.errors import DataError, describe
from netadapt.io import file_blocks

NPY_VERSION = (1, 0)
VERIFY_BYTES = 4 << 30  # files up to this size are checked against their digest when a split is loaded


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    for block in file_blocks(path):
        h.update(block)
    return h.hexdigest()


def write_images(path: Path, shape: tuple[int, int, int, int], chunks: Iterable[np.ndarray]) -> str:
    """Write uint8 images of `shape` ([N, C, H, W]) to `path` as `.npy`, from consecutive chunks of
    samples; returns the file's sha256. `path` is expected inside a staging folder (`io.atomic_dir`)."""
    n = shape[0]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": tuple(int(s) for s in shape)})
    digest = hashlib.sha256(header.getvalue())
    written = 0
    with open(path, "wb") as out:
        out.write(header.getvalue())
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
            if chunk.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"{path}: chunk of shape {chunk.shape[1:]}, expected {tuple(shape[1:])}")
            data = chunk.tobytes()
            out.write(data)
            digest.update(data)
            written += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    if written != n:
        raise ValueError(f"{path}: wrote {written} of {n} images")
    return digest.hexdigest()


class ImageFile:
    """uint8 [N, C, H, W] images in a `.npy` file, indexed like a tensor (`images[idx]` reads those
    samples); picklable: each process opens the file on first read (workers of a task runner)."""

    dtype = torch.uint8

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version != NPY_VERSION:
                    raise ValueError(f"npy format {version}, expected {NPY_VERSION}")
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                self.offset = f.tell()
        except FileNotFoundError:
            raise DataError(f"{self.path}: not found; run `netadapt prepare` again") from None
        except (ValueError, OSError, SyntaxError) as exc:
            raise DataError(f"{self.path}: not a prepared image file ({describe(exc, 120)}); run `netadapt prepare` "
                            f"again") from None
        if dtype != np.uint8 or fortran or len(shape) != 4:
            raise DataError(f"{self.path}: holds {dtype} {list(shape)} (fortran order: {fortran}), expected "
                            f"uint8 [N, C, H, W] in C order; run `netadapt prepare` again")
        self.shape = tuple(int(s) for s in shape)
        self.sample_bytes = int(np.prod(self.shape[1:]))
        size = self.path.stat().st_size
        if size != self.offset + self.sample_bytes * self.shape[0]:
            raise DataError(f"{self.path}: {size} bytes, expected {self.offset + self.sample_bytes * self.shape[0]} "
                            f"for {self.shape[0]} images; run `netadapt prepare` again")
        self._fd: int | None = None
        self._pid = 0

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return len(self.shape)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": 0}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getitem__(self, index: int | slice | torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        """The images at `index` (an int gives [C, H, W]; anything else [k, C, H, W]), read with one
        `pread` per run of consecutive samples."""
        n = len(self)
        if isinstance(index, slice):
            idx = np.arange(n)[index]
        else:
            idx = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        single = idx.ndim == 0
        idx = idx.reshape(-1)
        idx = np.where(idx < 0, idx + n, idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{self.path}: index out of range for {n} images")
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(idx), self.sample_bytes)
        order = np.argsort(idx, kind="stable")
        fd, start = self._descriptor(), 0
        while start < len(order):  # runs of consecutive sample indices, each one read
            stop = start + 1
            while stop < len(order) and idx[order[stop]] == idx[order[stop - 1]] + 1:
                stop += 1
            first, count = int(idx[order[start]]), stop - start
            data = os.pread(fd, count * self.sample_bytes, self.offset + first * self.sample_bytes)
            if len(data) != count * self.sample_bytes:
                raise DataError(f"{self.path}: truncated while reading (sample {first}); run `netadapt "
                                f"prepare` again")
            flat[order[start:stop]] = np.frombuffer(data, dtype=np.uint8).reshape(count, self.sample_bytes)
            start = stop
        images = torch.from_numpy(out)
        return images[0] if single else images
