"""Super-network building blocks. Each has three views of one structure:

- `forward(x, widths, pending_width)`: the masked super-network (ordered dropout + CBC, widths per
  sample);
- `extract(widths, cin)`: a physically slim module (weights sliced, bypassed blocks gone);
- `layers(widths, cin, height, width)`: the `LayerSpec`s the slim module executes (resources, LUT
  keys) for an input of `cin` channels and `height` x `width` pixels.

Channel counts are `cin`/`cout`/`hidden`; a searched one is a *width* (`widths` maps dimension names
to them); `height` and `width` alone are image sizes.

Tests hold the three views equal: outputs (masked vs slim) and ops/params (specs vs slim).

Masks are deferred: a block returns its output *unmasked* together with its pending width (`pending_width`,
None = full), and each consumer applies it where it is cheapest and harmless. A dense conv masks its
input; a channel-local op (depthwise conv, pooling) masks its output. Masking before a depthwise conv
would instead feed its batch norm zeros for every sample whose sub-network lacks the channel, so
the statistics of high channels collapse and training with per-sample widths diverges.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from netadapt.activations import ACTIVATIONS
from netadapt.arch import Dimension
from netadapt.bypass import Bypass, ResidualBypass, bypass, residual_bypass
from netadapt.elastic_kernel import ElasticKernelConv2d, centre_crop
from netadapt.layers import LayerSpec, conv_bn_act
from netadapt.ordered_dropout import GroupStatsBatchNorm2d, Width, Widths, channel_mask, widest



def make_divisible(value: float, divisor: int) -> int:
    """Round a channel count to a multiple of `divisor`, never below it nor 10% under `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBN(nn.Module):
    """conv (no bias) -> BN -> optional activation; `same` padding. `elastic` names a kernel-size
    dimension: the depthwise conv then runs at the kernel size `widths` give it (`elastic_kernel`)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, depthwise: bool = False,
                 act: str | None = "relu6", elastic: str = ""):
        super().__init__()
        self.kernel, self.stride, self.depthwise, self.act_name = kernel, stride, depthwise, act
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=cout if depthwise else 1,
                              bias=False)
        if elastic:
            self.conv = ElasticKernelConv2d.from_conv(self.conv, elastic)
        self.bn = GroupStatsBatchNorm2d(cout)
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor:
        y = self.conv(x, widths) if isinstance(self.conv, ElasticKernelConv2d) else self.conv(x)
        return self.act(self.bn(y))

    def extract(self, cin: int, cout: int, kernel: int | None = None) -> nn.Sequential:
        """Slim copy taking the first `cin` input and producing the first `cout` output channels
        (with the centre `kernel` x `kernel` of the weights when given)."""
        groups = cout if self.depthwise else 1
        kernel = kernel or self.kernel
        conv = nn.Conv2d(cin, cout, kernel, self.stride, kernel // 2, groups=groups, bias=False)
        conv.weight.data.copy_(centre_crop(self.conv.weight.data[:cout, : (1 if self.depthwise else cin)], kernel))
        bn = nn.BatchNorm2d(cout, eps=self.bn.eps, momentum=self.bn.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).data.copy_(getattr(self.bn, name).data[:cout])
        bn.num_batches_tracked.data.copy_(self.bn.num_batches_tracked.data)
        return nn.Sequential(conv, bn, ACTIVATIONS[self.act_name]() if self.act_name else nn.Identity())

    def layers(self, cin: int, cout: int, height: int, width: int,
               kernel: int | None = None) -> tuple[list[LayerSpec], int, int]:
        return conv_bn_act(cin, cout, height, width, kernel or self.kernel, self.stride,
                           cout if self.depthwise else 1, self.act_name)


class ConvBlock(nn.Module):
    """A ConvBN as a block (stem, head, plain CNN layers); its output width is a searchable
    dimension (ordered dropout, never 0) when `searchable`, else fixed."""

    def __init__(self, name: str, cin: int, cout: int, kernel: int, stride: int, granularity: int,
                 searchable: bool = True, act: str = "relu6"):
        super().__init__()
        self.cout = cout
        self.dim = Dimension(name, cout, cout, granularity, granularity) if searchable else None
        self.op = ConvBN(cin, cout, kernel, stride, act=act)

    def dims(self) -> list[Dimension]:
        return [self.dim] if self.dim else []

    def _width(self, widths: Mapping[str, int]) -> int:
        return widths[self.dim.name] if self.dim else self.cout

    def forward(self, x: torch.Tensor, widths: Widths, pending_width: Width | None):
        y = self.op(channel_mask(x, pending_width))
        return y, (widths.get(self.dim.name) if self.dim else None)

    def extract(self, widths: Mapping[str, int], cin: int) -> tuple[nn.Module, int]:
        cout = self._width(widths)
        return self.op.extract(cin, cout), cout

    def layers(self, widths: Mapping[str, int], cin: int, height: int,
               width: int) -> tuple[list[LayerSpec], int, int, int]:
        cout = self._width(widths)
        specs, height, width = self.op.layers(cin, cout, height, width)
        return specs, cout, height, width

    def producer(self, dim: str) -> ConvBN | None:
        """The ConvBN whose filters make the channel space `dim`, if this block makes it (see
        `netadapt.models.reorder`)."""
        return self.op if self.dim is not None and dim == self.dim.name else None


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> k x k depthwise -> 1x1 project (+ residual when shapes match).

    Dimensions: `<name>.expand` (the hidden width, ordered dropout), `<name>.kernel` when `kernel` > 3
    (the depthwise kernel size, odd, down to 3) and, for residual blocks, `<name>.out` (CBC width of
    the branch; 0 removes the block).
    """

    def __init__(self, name: str, cin: int, cout: int, stride: int, expand_ratio: int, granularity: int,
                 kernel: int = 3):
        super().__init__()
        hidden = make_divisible(cin * expand_ratio, granularity) if expand_ratio != 1 else cin
        self.cin, self.cout, self.hidden = cin, cout, hidden
        self.residual = stride == 1 and cin == cout
        self.expand = ConvBN(cin, hidden) if expand_ratio != 1 else None
        self.kernel_dim = Dimension(f"{name}.kernel", kernel, kernel, 2, 3, kind="kernel") if kernel > 3 else None
        self.dw = ConvBN(hidden, hidden, kernel, stride, depthwise=True,
                         elastic=self.kernel_dim.name if self.kernel_dim else "")
        self.project = ConvBN(hidden, cout, act=None)
        self.expand_dim = Dimension(f"{name}.expand", hidden, hidden, granularity, granularity) \
            if self.expand is not None else None
        self.out_dim = Dimension(f"{name}.out", cout, cout, granularity, 0) if self.residual else None

    def dims(self) -> list[Dimension]:
        return [d for d in (self.expand_dim, self.kernel_dim, self.out_dim) if d is not None]

    def _kernel(self, widths: Mapping[str, int]) -> int | None:
        return widths.get(self.kernel_dim.name) if self.kernel_dim else None

    def _width(self, widths: Mapping, dim: Dimension | None, default: int):
        return default if dim is None else widths.get(dim.name, default)

    def out_width(self, widths: Mapping[str, int]) -> int:
        """The branch's CBC width (all `cout` channels without a residual)."""
        return self._width(widths, self.out_dim, self.cout)

    def forward(self, x: torch.Tensor, widths: Widths, pending_width: Width | None):
        """Output (all channels valid: pending width None)."""
        if self.expand is None:
            hidden_width, hidden = pending_width, x
        else:
            hidden_width, hidden = widths.get(self.expand_dim.name), self.expand(channel_mask(x, pending_width))
        y = self.project(channel_mask(self.dw(hidden, widths), hidden_width))  # depthwise: mask after, channel-local
        if not self.residual:
            return y, None
        return residual_bypass(channel_mask(x, pending_width), y, widths.get(self.out_dim.name)), None

    def extract(self, widths: Mapping[str, int], cin: int) -> tuple[nn.Module | None, int]:
        hidden, out = self._width(widths, self.expand_dim, cin), self.out_width(widths)
        if self.residual and out == 0:
            return None, cin
        parts = [self.expand.extract(cin, hidden)] if self.expand is not None else []
        parts += [self.dw.extract(hidden, hidden, self._kernel(widths)), self.project.extract(hidden, out)]
        body = nn.Sequential(*parts)
        return (ResidualBypass(body, out, self.cout) if self.residual else body), self.cout

    def layers(self, widths: Mapping[str, int], cin: int, height: int,
               width: int) -> tuple[list[LayerSpec], int, int, int]:
        hidden, out = self._width(widths, self.expand_dim, cin), self.out_width(widths)
        if self.residual and out == 0:
            return [], cin, height, width
        specs: list[LayerSpec] = []
        oh, ow = height, width
        if self.expand is not None:
            part, oh, ow = self.expand.layers(cin, hidden, oh, ow)
            specs += part
        part, oh, ow = self.dw.layers(hidden, hidden, oh, ow, self._kernel(widths))
        specs += part
        part, oh, ow = self.project.layers(hidden, out, oh, ow)
        specs += part
        if self.residual:
            op = "add" if out == self.cout else "partial_add"
            specs.append(LayerSpec(op, self.cout, out, oh, ow))
        return specs, self.cout, oh, ow

    def producer(self, dim: str) -> ConvBN | None:
        return self.expand if self.expand_dim is not None and dim == self.expand_dim.name else None


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: 3x3 depthwise -> 1x1 pointwise.

    Dimension `<name>.out`, the pointwise width: ordered dropout, or CBC (may reach 0) when input
    and output widths are equal and the stride is 1. The depthwise conv shares the input's channel
    space, whose width `pending_width` (per sample) is passed along by the model.
    """

    def __init__(self, name: str, cin: int, cout: int, stride: int, granularity: int):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.bypassable = stride == 1 and cin == cout
        self.dw = ConvBN(cin, cin, 3, stride, depthwise=True, act="relu")
        self.pw = ConvBN(cin, cout, act="relu")
        self.dim = Dimension(f"{name}.out", cout, cout, granularity, 0 if self.bypassable else granularity)

    def dims(self) -> list[Dimension]:
        return [self.dim]

    def forward(self, x: torch.Tensor, widths: Widths, pending_width: Width | None):
        """Output and its pending width (per sample): max(pending_width, out) under CBC, else out."""
        y = self.pw(channel_mask(self.dw(x), pending_width))
        out = widths.get(self.dim.name)
        if not self.bypassable:
            return y, out
        return bypass(x, y, out), widest(pending_width, out)

    def extract(self, widths: Mapping[str, int], cin: int) -> tuple[nn.Module | None, int]:
        out = widths[self.dim.name]
        if self.bypassable and out == 0:
            return None, cin
        body = nn.Sequential(self.dw.extract(cin, cin), self.pw.extract(cin, out))
        if not self.bypassable:
            return body, out
        return Bypass(body, out, cin), max(cin, out)

    def layers(self, widths: Mapping[str, int], cin: int, height: int,
               width: int) -> tuple[list[LayerSpec], int, int, int]:
        out = widths[self.dim.name]
        if self.bypassable and out == 0:
            return [], cin, height, width
        specs, oh, ow = self.dw.layers(cin, cin, height, width)
        part, oh, ow = self.pw.layers(cin, out, oh, ow)
        specs += part
        if self.bypassable and out < cin:
            specs.append(LayerSpec("bypass_cat", cin, out, oh, ow))
        return specs, (max(cin, out) if self.bypassable else out), oh, ow

    def producer(self, dim: str) -> ConvBN | None:
        return self.pw if dim == self.dim.name and not self.bypassable else None


class Classifier(nn.Module):
    """Global average pool -> linear, reading the first `cin` features."""

    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor, pending_width: Width | None = None) -> torch.Tensor:
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.linear(channel_mask(pooled, pending_width))  # pooling is channel-local: mask after

    def extract(self, cin: int) -> nn.Module:
        linear = nn.Linear(cin, self.linear.out_features)
        linear.weight.data.copy_(self.linear.weight.data[:, :cin])
        linear.bias.data.copy_(self.linear.bias.data)
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), linear)

    def layers(self, cin: int, height: int, width: int) -> list[LayerSpec]:
        return [LayerSpec("avgpool", cin, cin, height, width),
                LayerSpec("linear", cin, self.linear.out_features, 1, 1, bias=True)]
