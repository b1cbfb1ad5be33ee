"""Prepared data: uint8 images + labels per split, the contract between `prepare` and training.

Layout of a prepared folder, per split (`train`, `holdout`, `test`): `<split>.images.npy` (uint8
[N, C, H, W], read by the batch: `image_file.ImageFile`) and `<split>.pt` (`{"labels": int64 [N],
"images": "<split>.images.npy", "images_shape": [N, C, H, W], "images_sha256": ...}`, loadable with
`weights_only=True`); and `meta.json` (dataset, classes, input shape, counts, the normalization
`mean` / `std` every stage and export apply, and `train_size`). The `.pt` names its images by
digest, so whatever keys on it (DVC deps, stage stamps, caches) sees an image change; readers check
the image file's header and size, and its digest up to `image_file.VERIFY_BYTES` (hashing hundreds of
gigabytes on every read would not scale; DVC hashes them as a dependency anyway).

Samples are stored in a seeded class-mixed order and written a chunk at a time: `prepare` holds one
chunk of an image folder in memory, not the dataset.

With `data.image_size` S, holdout and test images are stored S x S (shorter side resized to S,
centre crop: `pixels.fit`), and train images `train_size` = round(S * 8/7) square the same way (as
ImageNet's 256 for 224): the margin random-resized crops are drawn from at batch time, a new crop
each epoch (`augment.random_resized_crop_flip`); unaugmented batches of train are resized to S
(`view.InputView`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from netadapt.config import DataConfig
from netadapt.data.datasets import RawSplit, read_dataset
from netadapt.data.image_file import VERIFY_BYTES, ImageFile, file_sha256, write_images
from netadapt.data.pixels import strict_decoding
from netadapt.data.split import class_mixed_order, stratified_split
from netadapt.data.view import DEFAULT_MEAN, DEFAULT_STD, InputView
from netadapt.errors import DataError, NetAdaptError, describe
from netadapt.eta import progress_bar
from netadapt.io import atomic_dir, load_tensors, read_json, save_tensors, write_json

SPLITS = ("train", "holdout", "test")
WRITE_CHUNK = 1024  # samples decoded and written at a time
TRAIN_MARGIN = 8 / 7  # train images are stored this much larger than data.image_size (256 for 224)


def train_size(image_size: int) -> int:
    """The side train images are stored at for random-resized crops of `image_size`."""
    return int(round(image_size * TRAIN_MARGIN))


@dataclass(frozen=True)
class DataInfo:
    dataset: str
    classes: list[str]
    input_shape: tuple[int, int, int]  # C, H, W
    counts: dict[str, int]
    mean: list[float] = field(default_factory=list)  # per channel, of pixel / 255 (empty: 0.5 each)
    std: list[float] = field(default_factory=list)  # per channel (empty: 0.5 each)
    train_size: int = 0  # H = W of the stored train images when larger than input_shape's (0: the same)

    def view(self, split: str) -> InputView:
        """How `split`'s stored images become network input."""
        size = self.input_shape[1] if split == "train" and self.train_size else 0
        return InputView(tuple(self.mean), tuple(self.std), size)


@dataclass
class Split:
    images: torch.Tensor | ImageFile  # uint8 [N, C, H, W]; `images[idx]` gives those samples as a tensor
    labels: torch.Tensor  # int64 [N]
    view: InputView = InputView()  # how the images become network input (normalization, train's margin)

    def __len__(self) -> int:
        return len(self.labels)


def write_split(folder: Path, name: str, source: RawSplit, index: np.ndarray, seed: list[int]) -> int:
    """The samples of `source` at `index`, in a seeded class-mixed order (folders list class by class),
    written as `<name>.images.npy` + `<name>.pt`: one split of a prepared folder (`prepare_data`'s, or a
    subset of one that a benchmark cuts); returns how many."""
    index = index[class_mixed_order(source.labels[index], seed)]

    def chunks() -> Iterator[np.ndarray]:
        for start in progress_bar(range(0, len(index), WRITE_CHUNK), total=-(-len(index) // WRITE_CHUNK),
                                  desc=f"prepare {name}", unit="chunks"):
            yield source.images[index[start:start + WRITE_CHUNK]]

    shape = (len(index), *source.images.shape[1:])
    sha256 = write_images(folder / f"{name}.images.npy", shape, chunks())
    save_tensors(folder / f"{name}.pt", {"labels": torch.from_numpy(source.labels[index].astype(np.int64)),
                                         "images": f"{name}.images.npy", "images_shape": list(shape),
                                         "images_sha256": sha256})
    return len(index)


def prepare_data(cfg: DataConfig, seed: int, out_dir: Path) -> DataInfo:
    """Read the dataset named by `cfg`, carve test (if needed) and holdout, write `out_dir` atomically
    (Pillow's warnings while decoding are errors naming the file)."""
    with strict_decoding():
        return _prepare(cfg, seed, out_dir)


def _normalization(cfg: DataConfig, channels: int) -> tuple[list[float], list[float]]:
    """`data.mean` and `data.std`, one value per channel (a single value: every channel's)."""
    out = []
    for key, values, default in (("mean", cfg.mean, DEFAULT_MEAN), ("std", cfg.std, DEFAULT_STD)):
        values = list(values) if values is not None else [default]
        if len(values) == 1:
            values = values * channels
        if len(values) != channels:
            raise DataError(f"data.{key}: {len(values)} values for images of {channels} channel(s); give "
                            f"{channels} (or one for every channel)")
        out.append([float(v) for v in values])
    return out[0], out[1]


def _prepare(cfg: DataConfig, seed: int, out_dir: Path) -> DataInfo:
    raw = read_dataset(cfg.name, Path(cfg.root), cfg.verify_checksums, cfg.channels, cfg.image_size)
    pool = np.arange(len(raw.train.labels))  # the train samples that train and holdout are carved from
    if raw.test is None:
        rest, test_idx = stratified_split(raw.train.labels, cfg.test_fraction, [seed, 1], "data.test_fraction")
        test = (raw.train, test_idx)
        pool = pool[rest]
    else:
        test = (raw.test, np.arange(len(raw.test.labels)))
    train_idx, holdout_idx = stratified_split(raw.train.labels[pool], cfg.holdout_fraction, [seed, 2],
                                              "data.holdout_fraction")
    stored = train_size(cfg.image_size) if cfg.image_size else 0
    train = RawSplit(raw.train.images.resized(stored), raw.train.labels) if stored else raw.train
    splits = {"train": (train, pool[train_idx], [seed, 4]), "holdout": (raw.train, pool[holdout_idx], [seed, 5]),
              "test": (*test, [seed, 3])}
    c, h, w = raw.train.images.shape[1:]
    mean, std = _normalization(cfg, int(c))
    with atomic_dir(out_dir) as tmp:
        counts = {name: write_split(tmp, name, source, index, order_seed)
                  for name, (source, index, order_seed) in splits.items()}
        info = DataInfo(cfg.name, list(raw.classes), (int(c), int(h), int(w)), counts, mean, std, stored)
        write_json(tmp / "meta.json", asdict(info))
    return info


def load_info(prepared: Path) -> DataInfo:
    meta = Path(prepared) / "meta.json"
    if not meta.is_file():
        raise DataError(f"{meta}: not found; run `netadapt prepare` first")
    try:
        raw = read_json(meta)
        info = DataInfo(raw["dataset"], list(raw["classes"]), tuple(int(n) for n in raw["input_shape"]),
                        dict(raw["counts"]), [float(v) for v in raw.get("mean", [])],
                        [float(v) for v in raw.get("std", [])], int(raw.get("train_size", 0)))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{meta}: not a prepared-data description ({describe(exc, 120)}); run "
                        f"`netadapt prepare` again") from None
    if len(info.input_shape) != 3 or min(info.input_shape) < 1 or len(info.classes) < 2:
        raise DataError(f"{meta}: input shape {list(info.input_shape)} with {len(info.classes)} classes is not "
                        f"a prepared dataset; run `netadapt prepare` again")
    if any(len(v) not in (0, info.input_shape[0]) for v in (info.mean, info.std)) or any(s <= 0 for s in info.std) \
            or info.train_size < 0:
        raise DataError(f"{meta}: mean {info.mean} / std {info.std} / train_size {info.train_size} do not fit "
                        f"images of {info.input_shape[0]} channel(s); run `netadapt prepare` again")
    return info


def load_split(prepared: Path, name: str) -> Split:
    """A prepared split: its labels in memory, its images read by the batch from their file."""
    path = Path(prepared) / f"{name}.pt"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `netadapt prepare` first")
    try:
        blob = load_tensors(path)
        labels, images_name, shape = blob["labels"], blob["images"], [int(n) for n in blob["images_shape"]]
        sha256 = str(blob["images_sha256"])
    except NetAdaptError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load's errors on a damaged file have no common base
        raise DataError(f"{path}: not a prepared split ({describe(exc, 120, first_sentence=True)}); run "
                        f"`netadapt prepare` again") from None
    if not (isinstance(labels, torch.Tensor) and labels.dim() == 1 and isinstance(images_name, str)
            and Path(images_name).name == images_name and len(shape) == 4 and shape[0] == len(labels)):
        raise DataError(f"{path}: not a prepared split (N labels and the name of an images file of N "
                        f"images); run `netadapt prepare` again")
    images = ImageFile(path.parent / images_name)
    if list(images.shape) != shape:
        raise DataError(f"{images.path}: holds images {list(images.shape)}, {path.name} says {shape}; run "
                        f"`netadapt prepare` again")
    if images.path.stat().st_size <= VERIFY_BYTES and file_sha256(images.path) != sha256:
        raise DataError(f"{images.path}: content differs from the digest {path.name} records (damaged or "
                        f"edited); run `netadapt prepare` again")
    # against the folder's description: an edited split must not reach training as out-of-range targets
    info = load_info(prepared)
    expected = list(info.input_shape)
    if name == "train" and info.train_size:
        expected = [info.input_shape[0], info.train_size, info.train_size]
    if shape[1:] != expected:
        raise DataError(f"{path}: images {shape[1:]}, where {Path(prepared) / 'meta.json'} says "
                        f"{expected}; run `netadapt prepare` again")
    if labels.dtype != torch.int64 or (len(labels) and not (
            0 <= int(labels.min()) and int(labels.max()) < len(info.classes))):
        raise DataError(f"{path}: labels are not class indices 0..{len(info.classes) - 1} (int64); run "
                        f"`netadapt prepare` again")
    return Split(images, labels, info.view(name))
