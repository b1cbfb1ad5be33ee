"""MobileNetV2-style super-network for small images (28x28x1, 32x32x3).

Inverted residual blocks; every expansion width is searchable (ordered dropout); every residual
block is bypassable (CBC), so whole blocks can disappear; the last 1x1 conv width is searchable.
`model.kwargs: {kernel: 5}` (or 7) builds every depthwise conv at that size and makes each block's
kernel size a dimension too (`b<i>.kernel`: 7, 5, 3), as NetAdaptV2 searches; the default is 3x3.
"""

from __future__ import annotations

from netadapt.arch import ModelSpec
from netadapt.errors import ConfigError
from netadapt.models.blocks import Classifier, ConvBlock, InvertedResidual, make_divisible
from netadapt.models.network import SearchableNetwork

# (expand ratio t, output channels c, blocks n, first stride s), sized for 28-32 pixel inputs:
# the stem keeps full resolution; three stride-2 stages take 28 -> 4 (32 -> 4).
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1)]
STEM, HEAD = 16, 640
KERNELS = (3, 5, 7)


def kernel_setting(spec: ModelSpec) -> int:
    """The depthwise kernel size `model.kwargs` asks for (3, the default, searches none)."""
    kwargs = dict(spec.kwargs)
    unknown = sorted(set(kwargs) - {"kernel"})
    if unknown:
        raise ConfigError(f"model.kwargs: {spec.name} takes only 'kernel' (one of {KERNELS}), not {unknown[0]!r}")
    kernel = kwargs.get("kernel", 3)
    if kernel not in KERNELS or isinstance(kernel, bool):
        raise ConfigError(f"model.kwargs.kernel: must be one of {KERNELS}, got {kernel!r}")
    return kernel


class MobileNetV2(SearchableNetwork):
    def __init__(self, spec: ModelSpec):
        g, m, kernel = spec.granularity, spec.width_mult, kernel_setting(spec)
        cin = make_divisible(STEM * m, g)
        blocks = [ConvBlock("stem", spec.input_shape[0], cin, 3, 1, g, searchable=False)]
        index = 0
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * m, g)
            for i in range(n):
                blocks.append(InvertedResidual(f"b{index}", cin, cout, s if i == 0 else 1, t, g, kernel))
                cin, index = cout, index + 1
        head = make_divisible(HEAD * max(m, 1.0), g)
        blocks.append(ConvBlock("head", cin, head, 1, 1, g))
        super().__init__(spec, blocks, Classifier(head, spec.num_classes))
