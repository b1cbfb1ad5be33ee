"""Elastic kernel size (NetAdaptV2's kernel-size dimension): a depthwise conv built with kernel k_max
also runs as any odd k <= k_max, using the centre k x k of its weights.

With "same" padding (k // 2 * dilation) the output size does not depend on k, so a sub-network with a
smaller kernel is the super-network's conv with its outer rings of weights dropped, which is exactly
what extraction builds (`centre_crop`). Ordered dropout draws a kernel size per sample group like a
width: the batch is split by kernel size and each part runs its own cropped conv (at most as many
convs as sizes; depthwise convs are cheap). once-for-all adds a learned transform of the centre
weights per size; here the centre is used as is (a transform is not implemented).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netadapt.ordered_dropout import Width, Widths


def centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre `kernel` x `kernel` of a conv weight [out, in/groups, K, K]."""
    size = weight.shape[-1]
    if kernel > size or kernel % 2 != size % 2:
        raise ValueError(f"kernel size {kernel} cannot be cut from the centre of a {size}x{size} kernel")
    start = (size - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


def same_padding(kernel: int, dilation: int) -> int:
    return kernel // 2 * dilation


class ElasticKernelConv2d(nn.Conv2d):
    """A depthwise `nn.Conv2d` (same parameters and state-dict keys) whose kernel size is the
    dimension `dim` of the widths it is given: an int for the batch or a [B] tensor per sample."""

    dim: str = ""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, dim: str) -> "ElasticKernelConv2d":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                  conv.groups, conv.bias is not None, conv.padding_mode)
        new.load_state_dict(conv.state_dict())
        new.dim = dim
        return new.to(conv.weight.device)

    def run(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        """The conv at kernel size `kernel` (its centre weights, same padding)."""
        if kernel == self.kernel_size[0]:
            return super().forward(x)
        dilation = self.dilation[0]
        return F.conv2d(x, centre_crop(self.weight, kernel), self.bias, self.stride,
                        same_padding(kernel, dilation), self.dilation, self.groups)

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor:  # type: ignore[override]
        kernel: Width | None = widths.get(self.dim) if widths else None
        if kernel is None:
            return super().forward(x)
        if isinstance(kernel, int):
            return self.run(x, kernel)
        kernel = kernel.to(x.device)
        sizes = torch.unique(kernel).tolist()
        if len(sizes) == 1:
            return self.run(x, int(sizes[0]))
        parts = [(kernel == size).nonzero().squeeze(1) for size in sizes]
        outs = [self.run(x.index_select(0, idx), int(size)) for idx, size in zip(parts, sizes)]
        out = outs[0].new_empty((x.shape[0], *outs[0].shape[1:]))
        for idx, part in zip(parts, outs):
            out = out.index_copy(0, idx, part)
        return out
