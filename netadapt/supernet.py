"""Super-network training with ordered dropout (NetAdaptV2).

Every batch draws widths per group of samples (`ordered_dropout.sample_widths`), so one
forward-backward pass trains many sub-networks, each group normalized by its own batch-norm
statistics; the full network is always group 0 (and, with `sampling: sandwich`, the smallest is
group 1). `OrderedDropoutLoss` is that loss on one batch; `sampling: none` is plain training of
the full network (the baseline OD is compared with).
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from netadapt.arch import Architecture
from netadapt.config import MIN_GROUPS, SupernetConfig
from netadapt.data import Split
from netadapt.distributed import SINGLE, World, barrier, check_split, wrap
from netadapt.errors import ConfigError
from netadapt.evaluation import evaluate_subnet
from netadapt.ordered_dropout import Widths, full_group_count, sample_widths, set_bn_groups
from netadapt.resume import Progress
from netadapt.training import (Batch, LossFn, Loop, accuracy, cosine_schedule, cross_entropy, epoch_steps,
                               make_optimizer, train_epoch)

log = logging.getLogger("netadapt")


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    loss: float
    holdout_acc_largest: float
    holdout_acc_smallest: float
    lr: float
    seconds: float


@contextmanager
def group_statistics(model: nn.Module, groups: int, full_groups: int = 1) -> Iterator[None]:
    """Batch norm normalizes each of `groups` sample groups by its own statistics inside the block
    (`ordered_dropout.GroupStatsBatchNorm2d`; running statistics from the first `full_groups`),
    and the whole batch by shared ones again after it."""
    set_bn_groups(model, groups, full_groups)
    try:
        yield
    finally:
        set_bn_groups(model, 1)


def unwrapped(model: nn.Module) -> nn.Module:
    """The network itself, inside a data-parallel wrapper or not."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class EmaTeacher:
    """An exponential moving average of the super-network's weights, run as the full network
    without gradients: the teacher of in-place distillation (`supernet.teacher: ema`) for the price
    of a forward pass, where the full network's own pass costs a forward-backward.

    `probabilities` first folds in the weights as they are now (after the previous optimizer step)
    with decay min(`decay`, (1 + t) / (10 + t)) at update t, so the early average is not the
    random initialization; buffers (batch-norm statistics) are copied. The average runs with batch
    statistics, as the full network's own pass does."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(unwrapped(model)).requires_grad_(False)
        set_bn_groups(self.module, 1)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        source = unwrapped(model)
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mine, theirs in zip(self.module.parameters(), source.parameters()):
            mine.lerp_(theirs.detach(), 1 - decay)
        for mine, theirs in zip(self.module.buffers(), source.buffers()):
            mine.copy_(theirs)
        self.updates += 1

    @torch.no_grad()
    def probabilities(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The average's class probabilities on the batch, after folding in `model`'s weights."""
        self.update(model)
        self.module.train()
        with batch.autocast():
            return self.module(batch.inputs).float().softmax(-1)


@dataclass(frozen=True)
class OrderedDropoutLoss:
    """The super-network's loss on one batch (NetAdaptV2's ordered dropout).

    1. Each group of `group_size` samples gets its own widths (`sample`: per-sample widths for a
       global batch of that many samples); the full network is among them: the first
       `full_groups(groups)` groups (`largest_share` of them, at least group 0).
    2. `largest_pass`: on batches 0, `largest_every`, 2 x `largest_every`, ... of an epoch, the full
       network first also trains on the whole batch in a pass of its own (shared batch-norm
       statistics, as plain training), and its probabilities are the teacher.
    3. `ema`: the teacher is instead an average of the weights (`EmaTeacher`), on every batch.
       `largest_weight` > 0: the full network's samples (its groups') also add their mean
       cross-entropy x that weight, so it learns at about plain training's rate in the one pass.
    4. One masked forward pass trains every sampled sub-network, each group with its own batch-norm
       statistics: cross-entropy with the labels (smoothed by `label_smoothing`), and with a teacher
       and `distill` > 0, in-place distillation: (1 - distill) x that + distill x cross-entropy with
       the teacher's probabilities; weighted by `subnet_weight` against the full pass when there is
       one (the sandwich's balance). Returns that sampled pass's loss (unweighted).
    """
    sample: Callable[[int], Widths]
    group_size: int = 1
    label_smoothing: float = 0.0
    largest_pass: bool = False
    distill: float = 0.0
    subnet_weight: float = 1.0
    largest_every: int = 1
    largest_share: float = 0.0
    ema: EmaTeacher | None = None
    largest_weight: float = 0.0
    others: int = 2  # groups the sampled sub-networks keep at least (MIN_GROUPS - 1)

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        widths = {k: batch.local(v) if isinstance(v, torch.Tensor) else v for k, v in self.sample(batch.size).items()}
        criterion = nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        full_pass = self.largest_pass and batch.index % self.largest_every == 0
        teacher = self.full_network_pass(model, batch, criterion) if full_pass else None
        if self.ema is not None:
            teacher = self.ema.probabilities(model, batch)
        groups = len(batch.labels) // self.group_size if self.group_size > 1 else 1
        with group_statistics(model, groups, self.full_groups(batch.size)), batch.autocast():
            logits = model(batch.inputs, widths)
            loss = criterion(logits, batch.labels)
            if teacher is not None and self.distill > 0:
                soft = -(teacher * logits.float().log_softmax(-1)).sum(-1).mean()
                loss = (1 - self.distill) * loss + self.distill * soft
            total = loss * self.subnet_weight if full_pass else loss
            if self.largest_weight > 0:
                total = total + self.largest_weight * self.full_network_loss(logits, batch)
        batch.backward(total)
        return loss

    def full_network_loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The full network's samples' mean cross-entropy over the global batch, as this process's
        share: its samples' sum over the global count, times the ranks that data-parallel training
        averages over (a rank without full-network samples adds 0, not the NaN of an empty mean)."""
        full = self.full_samples(batch)
        ranks = batch.size // len(batch.labels)
        count = self.full_groups(batch.size) * self.group_size
        summed = F.cross_entropy(logits[full], batch.labels[full], reduction="sum",
                                 label_smoothing=self.label_smoothing)
        return summed * ranks / count

    def full_groups(self, size: int) -> int:
        """The full network's groups in a global batch of `size` samples."""
        return full_group_count(self.largest_share, -(-size // self.group_size), self.others)

    def full_samples(self, batch: Batch) -> torch.Tensor:
        """Which of this process's samples are the full network's (global group < `full_groups`)."""
        positions = torch.arange(len(batch.labels)) if batch.part is None else batch.part.cpu()
        groups = -(-batch.size // self.group_size)
        return (positions % groups < self.full_groups(batch.size)).to(batch.labels.device)

    @staticmethod
    def full_network_pass(model: nn.Module, batch: Batch, criterion: nn.Module) -> torch.Tensor:
        """The full network's forward-backward on the whole batch (batch norm updates its running
        statistics); returns its probabilities, the teacher of in-place distillation."""
        with batch.autocast():
            full = model(batch.inputs)
            batch.backward(criterion(full, batch.labels))
        return full.detach().float().softmax(-1)


def ema_teacher(cfg: SupernetConfig, model: nn.Module) -> EmaTeacher | None:
    """The weight average `cfg` distills from (`supernet.teacher: ema`), started from `model`'s weights."""
    return EmaTeacher(model, cfg.ema_decay) if cfg.teacher == "ema" and cfg.sampling != "none" else None


def supernet_loss(cfg: SupernetConfig, space: Architecture, generator: torch.Generator,
                  ema: EmaTeacher | None = None) -> LossFn:
    """The loss `cfg` trains the super-network of `space` with, its widths drawn from `generator`:
    ordered dropout's, or plain cross-entropy of the full network for `sampling: none`. `ema`:
    the teacher `ema_teacher` made, kept across epochs (required with `teacher: ema`)."""
    if cfg.sampling == "none":
        return cross_entropy(cfg.label_smoothing)
    if (cfg.teacher == "ema") != (ema is not None):
        raise ValueError(f"supernet.teacher {cfg.teacher}: pass the EmaTeacher that ema_teacher(cfg, model) makes")
    others = MIN_GROUPS[cfg.sampling] - 1

    def sample(b: int) -> Widths:
        full = full_group_count(cfg.largest_share, -(-b // cfg.group_size), others)
        return sample_widths(space, b, generator, cfg.sampling, cfg.group_size, full)

    return OrderedDropoutLoss(sample, cfg.group_size, cfg.label_smoothing, cfg.largest == "batch", cfg.distill,
                              cfg.subnet_weight, cfg.largest_every, cfg.largest_share, ema, cfg.largest_weight, others)


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
    ema = ema_teacher(cfg, model)  # restarts from the restored weights when a run resumes
    for epoch in range(len(history), cfg.epochs):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        loop = Loop(batch_size, group_size, amp=cfg.amp, augment=cfg.augment,
                    desc=f"supernet epoch {epoch + 1}/{cfg.epochs}")
        loss = train_epoch(trained, train, optimizer, scheduler, loop, generator, device,
                           supernet_loss(cfg, space, generator, ema), world)
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


def history_rows(history: list[EpochMetrics]) -> list[dict]:
    return [asdict(m) for m in history]
