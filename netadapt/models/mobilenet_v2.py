"""MobileNetV2-style super-network for small images (28x28x1, 32x32x3).

Inverted residual blocks; every expansion width is searchable (ordered dropout); every residual
block is bypassable (CBC), so whole blocks can disappear; the last 1x1 conv width is searchable.
"""

from __future__ import annotations

from netadapt.arch import ModelSpec
from netadapt.models.blocks import Classifier, ConvBlock, InvertedResidual, make_divisible
from netadapt.models.network import SearchableNetwork

# (expand ratio t, output channels c, blocks n, first stride s), sized for 28-32 pixel inputs:
# the stem keeps full resolution; three stride-2 stages take 28 -> 4 (32 -> 4).
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1)]
STEM, HEAD = 16, 640


class MobileNetV2(SearchableNetwork):
    def __init__(self, spec: ModelSpec):
        g, m = spec.granularity, spec.width_mult
        cin = make_divisible(STEM * m, g)
        blocks = [ConvBlock("stem", spec.input_shape[0], cin, 3, 1, g, searchable=False)]
        index = 0
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * m, g)
            for i in range(n):
                blocks.append(InvertedResidual(f"b{index}", cin, cout, s if i == 0 else 1, t, g))
                cin, index = cout, index + 1
        head = make_divisible(HEAD * max(m, 1.0), g)
        blocks.append(ConvBlock("head", cin, head, 1, 1, g))
        super().__init__(spec, blocks, Classifier(head, spec.num_classes))
