"""Super-network training with ordered dropout, and its checkpoint.

Every batch draws per-sample widths (`ordered_dropout.sample_widths`), so one forward-backward pass
trains many sub-networks; the full network is always sample 0. `sampling: none` is plain training
of the full network (the baseline OD is compared with).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.config import MIN_GROUPS, SupernetConfig
from netadapt.data import Split
from netadapt.distributed import SINGLE, World, barrier, check_split, wrap
from netadapt.errors import ConfigError, NetAdaptError, describe
from netadapt.evaluation import evaluate_subnet
from netadapt.io import load_checkpoint, save_tensors
from netadapt.models import build_supernet
from netadapt.ordered_dropout import sample_widths
from netadapt.resume import Progress
from netadapt.training import accuracy, cosine_schedule, epoch_steps, make_optimizer, train_epoch

log = logging.getLogger("netadapt")


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    loss: float
    holdout_acc_largest: float
    holdout_acc_smallest: float
    lr: float
    seconds: float


MONITOR_BN_BATCHES = 4  # train batches to re-estimate the smallest sub-network's BN statistics


def training_batch(cfg: SupernetConfig, train_size: int) -> int:
    """The batch the super-network trains on: `supernet.batch_size`, cut to the whole groups of
    `supernet.group_size` that the train split holds when it is smaller. Refused before any work,
    naming the keys, when too few groups fit for ordered dropout to train any sub-network."""
    if cfg.sampling == "none":
        return cfg.batch_size
    batch = min(cfg.batch_size, train_size // cfg.group_size * cfg.group_size)
    if batch // cfg.group_size < MIN_GROUPS[cfg.sampling]:
        raise ConfigError(f"supernet.group_size: the train split has {train_size} samples, "
                          f"{batch // cfg.group_size} group(s) of {cfg.group_size}; {cfg.sampling} sampling needs "
                          f"{MIN_GROUPS[cfg.sampling]} per batch: lower supernet.group_size to at most "
                          f"{max(1, train_size // MIN_GROUPS[cfg.sampling])}")
    if batch < cfg.batch_size:
        log.warning("supernet: the train split has %d samples, fewer than supernet.batch_size %d: "
                    "training on batches of %d", train_size, cfg.batch_size, batch)
    return batch


def train_supernet(model: nn.Module, train: Split, holdout: Split, cfg: SupernetConfig, seed: int,
                   device: torch.device, eval_batch_size: int = 512,
                   progress: Progress | None = None, world: World = SINGLE) -> list[EpochMetrics]:
    """Train `model` in place for `cfg.epochs`; per-epoch loss and holdout accuracy of the largest
    sub-network (its running BN statistics are tracked) and of the smallest (BN statistics
    re-estimated on a few train batches, so holdout stays a pure scoring set). With `progress`,
    every finished epoch is saved and an interrupted run continues after its last one. Across
    `world` ranks (`distributed`), each trains its groups of every batch and rank 0 alone scores
    holdout and saves progress (the other ranks' accuracies are 0)."""
    batch_size = training_batch(cfg, len(train))
    group_size = cfg.group_size if cfg.sampling != "none" else 1
    check_split(batch_size, group_size, world.size, "supernet.batch_size")
    model.to(device)
    space = model.space()
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    drop_last = group_size > 1 or world.size > 1
    scheduler = cosine_schedule(optimizer, cfg.epochs * epoch_steps(len(train), batch_size, drop_last))
    history = [EpochMetrics(**row) for row in (progress.restore(model, optimizer, scheduler) if progress else [])]
    trained = wrap(model, world, device)
    for epoch in range(len(history), cfg.epochs):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        loss = train_epoch(trained, train, optimizer, scheduler, batch_size, generator, device,
                           lambda b: sample_widths(space, b, generator, cfg.sampling, cfg.group_size),
                           cfg.label_smoothing, desc=f"supernet epoch {epoch + 1}/{cfg.epochs}",
                           group_size=group_size, world=world, amp=cfg.amp,
                           largest_pass=cfg.largest == "batch", distill=cfg.distill, augment=cfg.augment,
                           subnet_weight=cfg.subnet_weight)
        largest_acc = smallest_acc = 0.0
        if world.writer:
            largest_acc = accuracy(model, holdout, eval_batch_size, device)[1]
            smallest_acc = evaluate_subnet(model, space.smallest(), holdout, batch_size=cfg.batch_size,
                                           bn_recalibration_batches=MONITOR_BN_BATCHES, device=device,
                                           calibration=train)
        metrics = EpochMetrics(epoch + 1, loss, largest_acc, smallest_acc, lr, time.perf_counter() - start)
        history.append(metrics)
        log.info("supernet epoch %d/%d  loss %.4f  holdout acc largest %.4f smallest %.4f  (%.1f s)",
                 epoch + 1, cfg.epochs, loss, largest_acc, smallest_acc, metrics.seconds)
        if progress and world.writer:
            progress.save(model, optimizer, scheduler, history_rows(history))
        barrier(world)
    return history


def save_supernet(path: Path, model: nn.Module, config_digest: str) -> None:
    """Atomic checkpoint: state dict + architecture JSON + the digest of the config that made it."""
    save_tensors(path, {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "arch": model.space().to_json(), "config_digest": config_digest})


def load_supernet(path: Path) -> tuple[nn.Module, str]:
    """Rebuild a super-network from its checkpoint (loaded with weights_only=True); returns it in eval
    mode with the config digest it was trained under."""
    if not Path(path).is_file():
        raise NetAdaptError(f"{path}: super-network checkpoint not found; run `netadapt supernet` first")
    blob = load_checkpoint(path, ("state_dict", "arch", "config_digest"), "super-network checkpoint")
    return rebuild(path, blob, lambda arch: build_supernet(arch.model), "super-network checkpoint"), \
        blob["config_digest"]


def rebuild(path: Path, blob: dict, build: Callable[[Architecture], nn.Module], what: str) -> nn.Module:
    """The network a checkpoint describes, its weights loaded; errors name the file."""
    try:
        arch = Architecture.from_json(blob["arch"])
    except NetAdaptError as exc:
        raise NetAdaptError(f"{path}: not a {what} ({exc})") from None
    model = build(arch)
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise NetAdaptError(f"{path}: weights do not fit the network it describes ({describe(exc)})") from None
    return model.eval()


def history_rows(history: list[EpochMetrics]) -> list[dict]:
    return [asdict(m) for m in history]
