"""MobileNetV3 (Howard et al., 2019), small and large, written as a plain `nn.Module`.

No search code is in it: `build_supernet` traces it (`netadapt.graph.TracedNetwork`), which makes
the three views (masked forward with per-sample widths, slim extraction, layer specs) and finds the
dimensions: every expansion width (`blocks.<i>.expand.conv.out`), every squeeze-excite reduction
width (`blocks.<i>.se.reduce.out`), the width each residual stage shares
(`blocks.<i>.project.conv.stage`, `stem.conv.stage`), every residual block's bypass
(`blocks.<i>.bypass`: the block's depth), the last 1x1 conv (`head.conv.out`) and the classifier's
hidden layer (`hidden.out`). The layers are named so that those names say what they are.
Depthwise convs are built with their own kernel (3 or 5, padding k // 2), as the paper has them.

The layer table is torchvision's `mobilenet_v3_small` / `mobilenet_v3_large` (h-swish, ReLU,
squeeze-excite gated by h-sigmoid with its reduction at a quarter of the expansion, widths rounded to
multiples of 8 as torchvision does, so `model.granularity` only sets the search grid). One change
sizes it for 32-224 px inputs: at 224 px its five stride-2 layers leave a 7x7 feature map, at 32 px
they would leave 1x1 after the third stage already. So, decided from the input size when the network
is built, the first stride-2 layers (stem first, then the earliest blocks) keep stride 1 until the
last feature map is at least `MIN_FEATURE_SIZE` pixels: 32 px keeps three reductions (4x4 at the
end, as CIFAR variants of MobileNet do with a stride-1 stem and first stage), 64 px four (4x4),
128 px and larger all five (torchvision's network).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from netadapt.models.blocks import make_divisible

# (kernel, expanded, out, squeeze-excite, h-swish, stride): torchvision's bneck_conf rows
SMALL = [(3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
         (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
         (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
         (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1)]
LARGE = [(3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
         (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
         (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
         (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
         (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1)]
VARIANTS = {"small": (SMALL, 1024), "large": (LARGE, 1280)}  # blocks, the classifier's hidden width
STEM = 16
DIVISOR = 8  # torchvision rounds every width to a multiple of 8
MIN_FEATURE_SIZE = 4  # the last feature map keeps at least this many pixels a side, where the input allows


def adapted_strides(strides: list[int], image_size: int) -> list[int]:
    """`strides` (stem first, then each block's) with the earliest stride-2 layers set to 1 until an
    `image_size` input leaves a last feature map of at least `MIN_FEATURE_SIZE` pixels (a k x k conv
    with padding k // 2 and stride 2 takes n pixels to ceil(n / 2))."""
    strides = list(strides)

    def final() -> int:
        size = image_size
        for s in strides:
            size = math.ceil(size / s)
        return size

    while final() < MIN_FEATURE_SIZE and 2 in strides:
        strides[strides.index(2)] = 1
    return strides


class ConvBNAct(nn.Module):
    """Conv, batch norm, optional activation (torchvision's `Conv2dNormActivation`)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.Hardswish):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Channel gate: global pool, 1x1 reduce + ReLU, 1x1 expand + h-sigmoid, times the features."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """1x1 expansion (absent when it would not widen), k x k depthwise, optional squeeze-excite,
    linear 1x1 projection; a residual add when the block keeps its size and width."""

    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, se: bool, act: type[nn.Module],
                 stride: int):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.expand = ConvBNAct(cin, expanded, 1, act=act) if expanded != cin else None
        self.depthwise = ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act)
        self.se = SqueezeExcite(expanded, make_divisible(expanded // 4, DIVISOR)) if se else None
        self.project = ConvBNAct(expanded, cout, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out


class MobileNetV3(nn.Module):
    """MobileNetV3 `variant` ("small" or "large") for `image_size` px inputs (see the module's
    docstring), every width scaled by `width_mult` (torchvision's rounding)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, variant: str = "small",
                 width_mult: float = 1.0, image_size: int = 224, dropout: float = 0.2):
        super().__init__()
        if variant not in VARIANTS:
            raise TypeError(f"variant must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}")
        rows, hidden = VARIANTS[variant]
        width = lambda c: make_divisible(c * width_mult, DIVISOR)  # noqa: E731
        strides = adapted_strides([2] + [row[-1] for row in rows], image_size)
        self.stem = ConvBNAct(in_channels, width(STEM), 3, strides[0])
        cin, blocks = width(STEM), []
        for (kernel, expanded, cout, se, hswish, _), stride in zip(rows, strides[1:]):
            act = nn.Hardswish if hswish else nn.ReLU
            blocks.append(InvertedResidual(cin, kernel, width(expanded), width(cout), se, act, stride))
            cin = width(cout)
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, 6 * cin, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = nn.Linear(6 * cin, width(hidden))
        self.hidden_act = nn.Hardswish()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width(hidden), num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's initialization."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        x = self.hidden_act(self.hidden(torch.flatten(x, 1)))
        return self.classifier(self.dropout(x))
