"""Networks written the ordinary PyTorch way, as a user brings them: no netadapt code in them.

`MobileNetV3Small` and `ResNet18` follow torchvision's definitions (torchvision itself is not needed);
`width_mult` / `width` shrink them for quick runs. `TinyResNet` is a hand-written residual network,
`ConcatSENet` has a concatenation and a squeeze-excite block written with functional calls.

    netadapt run -S model.name=mymodels:MobileNetV3Small -S model.path=examples -S data.image_size=64
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.relu, self.gate = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, se: bool, act: type[nn.Module], stride: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(conv_bn_act(cin, expanded, 1, act=act))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(conv_bn_act(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


# torchvision's mobilenet_v3_small: (in, kernel, expanded, out, squeeze-excite, hard-swish, stride)
SMALL = [(16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2), (24, 3, 88, 24, False, False, 1),
         (24, 5, 96, 40, True, True, 2), (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
         (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1), (48, 5, 288, 96, True, True, 2),
         (96, 5, 576, 96, True, True, 1), (96, 5, 576, 96, True, True, 1)]


class MobileNetV3Small(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 last_channel: int = 1024, dropout: float = 0.2):
        super().__init__()
        w = lambda c: make_divisible(c * width_mult)  # noqa: E731
        layers: list[nn.Module] = [conv_bn_act(in_channels, w(16), 3, 2, act=nn.Hardswish)]
        for cin, k, exp, cout, se, hs, stride in SMALL:
            layers.append(InvertedResidual(w(cin), k, w(exp), w(cout), se, nn.Hardswish if hs else nn.ReLU, stride))
        layers.append(conv_bn_act(w(96), 6 * w(96), 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(nn.Linear(6 * w(96), last), nn.Hardswish(inplace=True),
                                        nn.Dropout(dropout, inplace=True), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """torchvision's resnet18 (BasicBlock, [2, 2, 2, 2]); `width` is the first stage's width (64)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(width, 1)
        self.layer2 = self._layer(width * 2, 2)
        self.layer3 = self._layer(width * 4, 2)
        self.layer4 = self._layer(width * 8, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8, num_classes)

    def _layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyResNet(nn.Module):
    """A hand-written residual network: residual add then ReLU, BatchNorm, no netadapt code."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList()
        for _ in range(2):
            self.blocks.append(nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                             nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                             nn.BatchNorm2d(width)))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = F.relu(x + block(x))
        x = self.down(x)
        return self.head(x.mean((2, 3)))


class ConcatSENet(nn.Module):
    """Two parallel branches concatenated, a squeeze-excite gate in functional style, a 1x1 fuse."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1)
        self.left = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.left_bn = nn.BatchNorm2d(width)
        self.right = nn.Conv2d(width, 2 * width, 1, bias=False)
        self.right_bn = nn.BatchNorm2d(2 * width)
        self.se_reduce = nn.Linear(3 * width, width)
        self.se_expand = nn.Linear(width, 3 * width)
        self.fuse = nn.Conv2d(3 * width, 2 * width, 1)
        self.dw = nn.Conv2d(2 * width, 2 * width, 3, 2, 1, groups=2 * width)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        x = torch.cat([F.relu(self.left_bn(self.left(x))), F.hardswish(self.right_bn(self.right(x)))], dim=1)
        gate = torch.sigmoid(self.se_expand(F.relu(self.se_reduce(x.mean((2, 3))))))
        x = x * gate[:, :, None, None]
        x = F.max_pool2d(F.silu(self.dw(self.fuse(x))), 2)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
