"""Training utilities shared by super-network training, V1 fine-tuning and final training: batches,
optimizer and schedule, one generic epoch (`train_epoch`) that trains with a loss function given to
it (`cross_entropy` is plain training; `supernet.OrderedDropoutLoss` the super-network's), scoring."""

from __future__ import annotations

import logging
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
from torch import nn

from netadapt.augment import augment
from netadapt.data import Split
from netadapt.data.split import class_mixed_order
from netadapt.data.view import InputView
from netadapt.distributed import SINGLE, World, local_positions, mean_over_ranks
from netadapt.errors import ConfigError
from netadapt.eta import progress_bar
from netadapt.ordered_dropout import Widths

log = logging.getLogger("netadapt")


def resolve_device(name: Literal["auto", "cpu", "cuda"], world: World = SINGLE) -> torch.device:
    """`auto`: CUDA when present; a data-parallel rank gets the GPU of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA device is available")
    return torch.device("cuda", world.local_rank) if name == "cuda" and world.size > 1 else torch.device(name)


def to_input(images: torch.Tensor, view: InputView = InputView()) -> torch.Tensor:
    """uint8 images -> float network input as `view` (a split's) says: normalized (by default to
    [-1, 1]), in the standard contiguous layout whatever strides the images came with."""
    return view.inputs(images)


FIXED_ORDER_SEED = 0  # the class-mixed order of unshuffled batches: the same subset for every caller


def epoch_steps(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches in one pass over `n` samples: what `batches` yields and a schedule must count."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


PREFETCH = 2  # batches read ahead (in a thread) while the model works on the current one


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None,
            device: torch.device = torch.device("cpu"), limit: int = 0, drop_last: bool = False,
            part: torch.Tensor | None = None, stored: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, labels) batches; shuffled when a generator is given, else in a fixed seeded
    class-mixed order (so the first `limit` batches hold every class in its share); at most `limit`
    batches if > 0; `drop_last` skips a final partial batch; `part`: the positions of each (full)
    batch this process takes (`distributed.local_positions`); `stored`: images at their stored size
    (a training split's margin, for `augment` to crop), else at the network's input size (`split.view`).
    The next `PREFETCH` batches are read (from the split's image file) and converted in a background thread."""
    n = len(split)
    if generator is not None:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.from_numpy(class_mixed_order(split.labels.numpy(), FIXED_ORDER_SEED))
    count = epoch_steps(n, batch_size, drop_last)
    steps = count if limit <= 0 else min(count, limit)

    def load(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = order[i * batch_size:(i + 1) * batch_size]
        idx = idx if part is None else idx[part]
        return split.view.inputs(split.images[idx], stored), split.labels[idx]

    with ThreadPoolExecutor(1, thread_name_prefix="netadapt-batches") as reader:
        ahead = deque(reader.submit(load, i) for i in range(min(PREFETCH, steps)))
        for i in range(steps):
            inputs, labels = ahead.popleft().result()
            if i + PREFETCH < steps:
                ahead.append(reader.submit(load, i + PREFETCH))
            yield inputs.to(device), labels.to(device)


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))


@dataclass(frozen=True)
class Loop:
    """How an epoch walks the training split. `group_size` > 1: batches of whole groups of that many
    samples (a loss may give each group statistics of its own), so `batch_size` must be a multiple
    of it and at most the split's size, and a partial last batch is dropped (as across ranks).
    `max_steps` > 0: at most that many batches. `amp`: autocast (float16 with loss scaling on CUDA,
    bfloat16 on CPU). `augment`: random flip and crop (`augment.augment`: random-resized crops of data
    prepared at `data.image_size`), drawn from the epoch's generator."""
    batch_size: int
    group_size: int = 1
    max_steps: int = 0
    amp: bool = False
    augment: bool = False
    desc: str = "train"


@dataclass(frozen=True)
class Batch:
    """One training batch as a loss function sees it: this process's `inputs` and `labels` of a
    global batch of `size` samples (every rank draws the same one and keeps its `part`, positions
    from `distributed.local_positions`; None in a single process), the precision to train in, and
    the batch's `index` in its epoch (0, 1, ...)."""
    inputs: torch.Tensor
    labels: torch.Tensor
    size: int
    part: torch.Tensor | None
    amp: bool
    scaler: torch.amp.GradScaler
    index: int = 0

    def local(self, per_sample: torch.Tensor) -> torch.Tensor:
        """This process's entries of a tensor drawn per sample of the global batch, on the inputs' device."""
        return (per_sample if self.part is None else per_sample[self.part]).to(self.inputs.device)

    def autocast(self) -> torch.autocast:
        """Where the forward passes run: autocast under `amp`, else plain float32."""
        device = self.inputs.device.type
        return torch.autocast(device, dtype=torch.float16 if device == "cuda" else torch.bfloat16, enabled=self.amp)

    def backward(self, loss: torch.Tensor) -> None:
        """Add `loss`'s gradients (loss-scaled under CUDA `amp`)."""
        self.scaler.scale(loss).backward()


# A loss function trains `model` on one batch: it runs the forward passes the batch needs (under
# `batch.autocast()`), passes each loss to train to `batch.backward`, and returns the loss to report.
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def cross_entropy(label_smoothing: float = 0.0, widths: Widths | None = None) -> LossFn:
    """Plain training: cross-entropy with the labels (smoothed by `label_smoothing`) of the network,
    or, with `widths`, of that sub-network of a masked super-network."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
        with batch.autocast():
            logits = model(batch.inputs, widths) if widths is not None else model(batch.inputs)
            loss = criterion(logits, batch.labels)
        batch.backward(loss)
        return loss

    return loss_fn


def train_epoch(model: nn.Module, split: Split, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None, loop: Loop, generator: torch.Generator,
                device: torch.device, loss_fn: LossFn, world: World = SINGLE) -> float:
    """One pass over `split` (or `loop.max_steps` batches), shuffled by `generator`: each batch one
    optimizer (and `scheduler`) step on the gradients `loss_fn` adds. Across `world` ranks (`model`
    wrapped by `distributed.wrap`), every rank draws the same global batch and trains its whole
    groups of it. Returns the mean of the reported loss over the samples (of every rank)."""
    scaler = torch.amp.GradScaler(device.type, enabled=loop.amp and device.type == "cuda")
    batch_size, group_size = loop.batch_size, loop.group_size
    drop_last = group_size > 1 or world.size > 1
    part = local_positions(batch_size, group_size, world) if world.size > 1 else None
    if drop_last and (batch_size % group_size or batch_size > len(split)):
        raise ValueError(f"grouped training needs a batch of whole groups within the split: batch "
                         f"{batch_size}, group {group_size}, split {len(split)} (see supernet.batch_size)")
    model.train()
    total, count = 0.0, 0
    steps = epoch_steps(len(split), batch_size, drop_last) if loop.max_steps <= 0 else loop.max_steps
    bar = progress_bar(batches(split, batch_size, generator, device, loop.max_steps, drop_last, part,
                               stored=loop.augment), total=steps, desc=loop.desc, unit="batches", enabled=world.writer)
    for index, (inputs, labels) in enumerate(bar):
        size = len(labels) if part is None else batch_size
        if loop.augment:
            inputs = augment(inputs, split.view.size, generator, size, part)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, Batch(inputs, labels, size, part, loop.amp, scaler, index))
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        total, count = total + loss.item() * len(labels), count + len(labels)
        bar.set_postfix(loss=f"{total / count:.3f}", refresh=False)
    return mean_over_ranks(total, count, world)


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int, device: torch.device,
             widths: Widths | None = None, limit: int = 0, topk: tuple[int, ...] = (1,)) -> dict[int, float]:
    """Top-k accuracies (fractions) of `model` in eval mode; `widths` for a masked super-network."""
    model.eval()
    correct = {k: 0 for k in topk}
    seen = 0
    for inputs, labels in batches(split, batch_size, None, device, limit):
        logits = model(inputs, widths) if widths is not None else model(inputs)
        top = logits.topk(max(topk), dim=1).indices
        hits = top == labels.unsqueeze(1)
        for k in topk:
            correct[k] += int(hits[:, :k].any(dim=1).sum())
        seen += len(labels)
    return {k: correct[k] / max(seen, 1) for k in topk}
