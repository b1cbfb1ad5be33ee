"""Ordered dropout (OD): channels >= w are zeroed, with w drawn per sample.

Every sample in a batch carries its own width per dimension (a LongTensor [B]), so one
forward-backward pass trains many sub-networks. The masks are prefix masks (channel k survives
iff k < w), so every sub-network is the first w channels of the super-network: exactly what
extraction later slices out.

Samples draw in groups of `group_size` samples that share one draw, and batch norm
computes its statistics per group (`GroupStatsBatchNorm2d`). Without that, a batch's statistics
are dominated by its widest sub-networks, a narrow sub-network's much smaller activations are
normalized to nearly a constant, and small sub-networks never learn. With it, each sub-network
is trained as it is later evaluated (its own statistics, re-estimated on holdout batches).
`group_size: 1` gives every sample an independent draw (shared statistics).
"""

from __future__ import annotations

from typing import Literal, Mapping, Union

import torch
from torch import nn

from netadapt.arch import Architecture

Width = Union[int, torch.Tensor]  # one width for the batch, or one per sample ([B] long tensor)
Widths = Mapping[str, Width]


def prefix_mask(width: Width, channels: int, like: torch.Tensor) -> torch.Tensor | None:
    """Boolean mask broadcastable to `like` ([B, C, ...]), true for channels < width; None keeps all."""
    trailing = [1] * (like.dim() - 2)
    if isinstance(width, int):
        if width >= channels:
            return None
        return (torch.arange(channels, device=like.device) < width).view(1, channels, *trailing)
    keep = torch.arange(channels, device=like.device).unsqueeze(0) < width.to(like.device).unsqueeze(1)
    return keep.view(len(width), channels, *trailing)


def channel_mask(x: torch.Tensor, width: Width | None) -> torch.Tensor:
    """Zero channels >= width (per sample when `width` is a tensor)."""
    if width is None:
        return x
    mask = prefix_mask(width, x.shape[1], x)
    return x if mask is None else x * mask.to(x.dtype)


SamplingMode = Literal["sandwich", "random", "none"]


def sample_widths(arch: Architecture, batch_size: int, generator: torch.Generator,
                  mode: SamplingMode = "sandwich", group_size: int = 1,
                  full_groups: int = 1) -> dict[str, torch.Tensor] | None:
    """Per-sample widths for one batch, drawn once per group of `group_size` samples (sample i is
    in group i % groups, the layout `GroupStatsBatchNorm2d` reads without copying).

    The first `full_groups` groups (group 0 by default) are always the full network, so it trains
    on that share of the batch. `sandwich` also makes the next group the smallest network; the
    other groups draw each dimension uniformly from its allowed widths. `none` trains the full
    network only (plain training) and returns None.
    """
    if mode == "none":
        return None
    groups = -(-batch_size // group_size)
    widths: dict[str, torch.Tensor] = {}
    for d in arch.dims:
        choices = torch.tensor(d.choices(), dtype=torch.long)
        w = choices[torch.randint(len(choices), (groups,), generator=generator)]
        w[:full_groups] = d.max_width
        if mode == "sandwich" and groups > full_groups:
            w[full_groups] = d.min_width
        widths[d.name] = w.repeat(group_size)[:batch_size]
    return widths


def full_group_count(share: float, groups: int, others: int) -> int:
    """How many of a batch's `groups` sample groups are the full network for a `share` of them:
    floor(share x groups), at least 1 (group 0), at most what leaves `others` groups to the
    sampled sub-networks (the sandwich's smallest and one random)."""
    return max(1, min(int(share * groups), groups - others))


class GroupStatsBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training with `groups` > 1, normalizes each sample group with that
    group's own statistics, in one fused batch-norm call.

    Sample i belongs to group i % groups, so the batch [B, C, H, W] viewed as [B/groups,
    groups*C, H, W] (a free view) puts each (group, channel) pair in a channel of its own.
    Running statistics follow the full network: the first `full_groups` groups pooled (their
    samples' mean and variance). Set `groups` before the forward pass (`set_bn_groups`); with 1
    it is a plain BatchNorm2d.
    """

    groups: int = 1
    full_groups: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.groups <= 1:
            return super().forward(x)
        g, (b, c, h, w) = self.groups, x.shape
        x = x.contiguous()  # the free view below needs the standard layout (a conv may emit channels-last)
        out, mean, invstd = torch.native_batch_norm(x.view(b // g, g * c, h, w), self.weight.repeat(g),
                                                    self.bias.repeat(g), None, None, True, 0.0, self.eps)
        with torch.no_grad():
            m, n = self.full_groups, (b // g) * h * w
            means = mean.view(g, c)[:m].double()
            variances = invstd.view(g, c)[:m].double().pow(-2) - self.eps  # biased, per group
            pooled = means.mean(0)
            var = ((variances + means.pow(2)).mean(0) - pooled.pow(2)) * (m * n) / max(m * n - 1, 1)
            self.running_mean.lerp_(pooled.float(), self.momentum)
            self.running_var.lerp_(var.float(), self.momentum)
            self.num_batches_tracked.add_(1)
        return out.view(b, c, h, w)


def set_bn_groups(model: nn.Module, groups: int, full_groups: int = 1) -> None:
    """Tell every `GroupStatsBatchNorm2d` in `model` how many sample groups the next batch has, and
    how many of them (the first) are the full network, whose statistics the running ones follow."""
    for m in model.modules():
        if isinstance(m, GroupStatsBatchNorm2d):
            m.groups, m.full_groups = groups, max(1, min(full_groups, groups))


def widest(a: Width | None, b: Width | None) -> Width | None:
    """Element-wise max of two widths; None stands for the full width."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return torch.maximum(torch.as_tensor(a), torch.as_tensor(b))
