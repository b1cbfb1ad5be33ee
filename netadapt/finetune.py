"""The discovered network: extracted physically, trained further (`train_network`), exported to ONNX.

Its checkpoint (state dict + architecture) is `checkpoints.save_network` / `load_network`. The
deliverables (`model.pt`, `model.onnx`) are published with a record of their digests
(`digests.json`, `record_deliverables`); evaluate checks them against it (`check_deliverables`)
before it reports on them, so a replaced, damaged or deleted file is refused, never vouched for.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.config import FinetuneConfig
from netadapt.data import Split
from netadapt.distributed import SINGLE, World, barrier, wrap
from netadapt.evaluation import recalibrate_bn
from netadapt.io import DamagedArtifact, atomic_path, file_blocks, read_json, write_json
from netadapt.models import extract
from netadapt.resources.backends import onnx_bytes
from netadapt.resume import Progress
from netadapt.training import Loop, accuracy, cosine_schedule, cross_entropy, epoch_steps, make_optimizer, train_epoch

log = logging.getLogger("netadapt")

DELIVERABLES = ("model.pt", "model.onnx")
DIGESTS = "digests.json"


def initial_network(supernet: nn.Module, arch: Architecture, init: str, calibration: Split | None = None,
                    batches: int = 0, batch_size: int = 256) -> nn.Module:
    """The slim network of `arch`, with the super-network's weights (its BN statistics re-estimated on
    `batches` of `calibration`, as the search scored it: the super-network's running statistics are
    the full network's, far off for a smaller kernel or width) or freshly initialized."""
    model = extract(supernet, arch)
    if init != "scratch" and calibration is not None:
        recalibrate_bn(model, calibration, batches, batch_size, torch.device("cpu"))
    if init == "scratch":
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
    return model


@dataclass(frozen=True)
class NetworkEpoch:
    epoch: int
    loss: float
    holdout_acc: float
    seconds: float


def train_network(model: nn.Module, train: Split, holdout: Split, cfg: FinetuneConfig, seed: int,
                  device: torch.device, progress: Progress | None = None,
                  world: World = SINGLE) -> list[NetworkEpoch]:
    """Train the slim network `model` in place for `cfg.epochs` (plain cross-entropy, one cosine
    schedule); per epoch, its loss and holdout accuracy. With `progress`, every finished epoch is
    saved and an interrupted run continues after its last one. Across `world` ranks
    (`distributed`), each trains its part of every batch and rank 0 alone scores holdout and saves
    progress (the other ranks' accuracies are 0)."""
    model.to(device)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.epochs * epoch_steps(len(train), cfg.batch_size, world.size > 1))
    curve = [NetworkEpoch(**row) for row in (progress.restore(model, optimizer, scheduler) if progress else [])]
    trained = wrap(model, world, device)
    for epoch in range(len(curve), cfg.epochs):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        loop = Loop(cfg.batch_size, amp=cfg.amp, augment=cfg.augment, desc=f"finetune epoch {epoch + 1}/{cfg.epochs}")
        loss = train_epoch(trained, train, optimizer, scheduler, loop, generator, device,
                           cross_entropy(cfg.label_smoothing), world)
        holdout_acc = accuracy(model, holdout, cfg.batch_size, device)[1] if world.writer else 0.0
        curve.append(NetworkEpoch(epoch + 1, loss, holdout_acc, time.perf_counter() - start))
        log.info("finetune epoch %d/%d  loss %.4f  holdout acc %.4f", epoch + 1, cfg.epochs, loss, holdout_acc)
        if progress and world.writer:
            progress.save(model, optimizer, scheduler, [asdict(e) for e in curve])
        barrier(world)
    return curve


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> None:
    """ONNX export of the slim network with a symbolic batch axis (`input0` -> `output0`), written atomically.

    Traced on a batch of 2, so that no size-1 batch can be baked into a reshape along the way.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(onnx_bytes(model.eval(), (torch.zeros(2, *input_shape),), dynamic_batch=True))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    for block in file_blocks(path):
        h.update(block)
    return h.hexdigest()


def record_deliverables(folder: Path) -> None:
    """Write `folder/digests.json`: the SHA-256 of each deliverable in `folder` (finetune's staging folder)."""
    write_json(folder / DIGESTS, {name: _sha256(folder / name) for name in DELIVERABLES})


def check_deliverables(folder: Path) -> None:
    """Each deliverable in `folder` as finetune recorded it; DamagedArtifact naming the first that is
    missing or differs (or the record itself, when it is missing or malformed)."""
    record_path = folder / DIGESTS
    if not record_path.is_file():
        raise DamagedArtifact(f"{record_path}: not found (finetune's record of its deliverables' digests); "
                              f"run finetune again")
    record = read_json(record_path)
    if not isinstance(record, dict) or not all(isinstance(record.get(n), str) for n in DELIVERABLES):
        raise DamagedArtifact(f"{record_path}: not a record of {', '.join(DELIVERABLES)} digests; run finetune again")
    for name in DELIVERABLES:
        path = folder / name
        if not path.is_file():
            raise DamagedArtifact(f"{path}: not found (finetune wrote it); run finetune again")
        if _sha256(path) != record[name]:
            raise DamagedArtifact(f"{path}: not the file finetune wrote (its SHA-256 differs from {record_path}); "
                                  f"run finetune again")
