"""Channel-level bypass connections (CBC).

In a block whose input and output have the same channels, output channel k is the block's own
output for k < w and the input channel passed through for k >= w:

    out[k] = block(x)[k] if k < w else x[k]

so w = 0 is the identity and the block disappears: depth is searched as width. For a residual
block (block(x) = x + branch(x)) this is the branch output zeroed from channel w on.
"""

from __future__ import annotations

import torch
from torch import nn

from netadapt.ordered_dropout import Width, channel_mask, prefix_mask


def bypass(x: torch.Tensor, y: torch.Tensor, width: Width | None) -> torch.Tensor:
    """Masked CBC for a plain block: y where channel < width, x elsewhere (per sample)."""
    keep = None if width is None else prefix_mask(width, y.shape[1], y)
    return y if keep is None else torch.where(keep, y, x)


def residual_bypass(x: torch.Tensor, branch: torch.Tensor, width: Width | None) -> torch.Tensor:
    """Masked CBC for a residual block: x + branch, the branch zeroed from channel `width` on."""
    return x + channel_mask(branch, width)


class Bypass(nn.Module):
    """Physical CBC for a plain block computing `width` channels from an input of `in_channels`.

    Output has max(width, in_channels) channels: the body's, then the input's beyond `width`.
    """

    def __init__(self, body: nn.Module, width: int, in_channels: int):
        super().__init__()
        self.body, self.width, self.in_channels = body, width, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.width >= self.in_channels:
            return y
        return torch.cat([y, x[:, self.width:]], dim=1)


class ResidualBypass(nn.Module):
    """Physical CBC for a residual block whose branch computes only the first `width` channels."""

    def __init__(self, branch: nn.Module, width: int, channels: int):
        super().__init__()
        self.branch, self.width, self.channels = branch, width, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        if self.width == self.channels:
            return x + y
        return torch.cat([x[:, :self.width] + y, x[:, self.width:]], dim=1)
