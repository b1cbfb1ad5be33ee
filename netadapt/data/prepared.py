"""Prepared data: uint8 image tensors + labels per split, the contract between `prepare` and training.

Layout of a prepared folder: `train.pt`, `holdout.pt`, `test.pt` (each `{"images": uint8 [N,C,H,W],
"labels": int64 [N]}`, loadable with `weights_only=True`) and `meta.json` (dataset, classes, shape).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from netadapt.config import DataConfig
from netadapt.data.datasets import RawSplit, read_dataset
from netadapt.data.split import class_mixed_order, stratified_split
from netadapt.errors import DataError, NetAdaptError
from netadapt.io import atomic_dir, load_tensors, read_json, save_tensors, write_json

SPLITS = ("train", "holdout", "test")


@dataclass(frozen=True)
class DataInfo:
    dataset: str
    classes: list[str]
    input_shape: tuple[int, int, int]  # C, H, W
    counts: dict[str, int]


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


def _take(split: RawSplit, index: np.ndarray, seed: list[int]) -> Split:
    """The samples at `index`, stored in a seeded class-mixed order (folders list class by class) and
    in the standard contiguous layout (a one-channel image stack can carry channels-last strides)."""
    index = index[class_mixed_order(split.labels[index], seed)]
    images = torch.from_numpy(np.ascontiguousarray(split.images[index]))
    return Split(images.clone(memory_format=torch.contiguous_format),
                 torch.from_numpy(split.labels[index].astype(np.int64)))


def prepare_data(cfg: DataConfig, seed: int, out_dir: Path) -> DataInfo:
    """Read the dataset named by `cfg`, carve test (if needed) and holdout, write `out_dir` atomically."""
    raw = read_dataset(cfg.name, Path(cfg.root), cfg.verify_checksums)
    source = raw.train
    if raw.test is None:
        rest, test_idx = stratified_split(source.labels, cfg.test_fraction, [seed, 1], "data.test_fraction")
        test = _take(source, test_idx, [seed, 3])
        source = RawSplit(source.images[rest], source.labels[rest])
    else:
        test = _take(raw.test, np.arange(len(raw.test.labels)), [seed, 3])
    train_idx, holdout_idx = stratified_split(source.labels, cfg.holdout_fraction, [seed, 2],
                                              "data.holdout_fraction")
    splits = {"train": _take(source, train_idx, [seed, 4]), "holdout": _take(source, holdout_idx, [seed, 5]),
              "test": test}
    c, h, w = splits["train"].images.shape[1:]
    info = DataInfo(cfg.name, list(raw.classes), (int(c), int(h), int(w)),
                    {name: len(split) for name, split in splits.items()})
    with atomic_dir(out_dir) as tmp:
        for name, split in splits.items():
            save_tensors(tmp / f"{name}.pt", {"images": split.images, "labels": split.labels})
        write_json(tmp / "meta.json", asdict(info))
    return info


def load_info(prepared: Path) -> DataInfo:
    meta = Path(prepared) / "meta.json"
    if not meta.is_file():
        raise DataError(f"{meta}: not found; run `netadapt prepare` first")
    try:
        raw = read_json(meta)
        info = DataInfo(raw["dataset"], list(raw["classes"]), tuple(int(n) for n in raw["input_shape"]),
                        dict(raw["counts"]))
    except (ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise DataError(f"{meta}: not a prepared-data description ({type(exc).__name__}: {first}); run "
                        f"`netadapt prepare` again") from None
    if len(info.input_shape) != 3 or min(info.input_shape) < 1 or len(info.classes) < 2:
        raise DataError(f"{meta}: input shape {list(info.input_shape)} with {len(info.classes)} classes is not "
                        f"a prepared dataset; run `netadapt prepare` again")
    return info


def load_split(prepared: Path, name: str) -> Split:
    path = Path(prepared) / f"{name}.pt"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `netadapt prepare` first")
    try:
        blob = load_tensors(path)
        split = Split(blob["images"], blob["labels"])
    except NetAdaptError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load's errors on a damaged file have no common base
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:120]
        detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise DataError(f"{path}: not a prepared split ({detail}); run `netadapt prepare` again") from None
    if not (isinstance(split.images, torch.Tensor) and isinstance(split.labels, torch.Tensor)
            and split.images.dim() == 4 and len(split.images) == len(split.labels)):
        raise DataError(f"{path}: not a prepared split (images [N, C, H, W] and N labels); run `netadapt "
                        f"prepare` again")
    return split
