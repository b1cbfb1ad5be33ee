"""MobileNetV1-style super-network for small images: depthwise-separable blocks.

Each block's pointwise width is searchable; blocks whose input and output widths are equal (stride 1)
are bypassable (CBC) and can disappear.
"""

from __future__ import annotations

from netadapt.arch import ModelSpec
from netadapt.models.blocks import Classifier, ConvBlock, DepthwiseSeparable, make_divisible
from netadapt.models.network import SearchableNetwork

STEM = 16
BLOCKS = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]  # (pointwise width, stride)


class MobileNetV1(SearchableNetwork):
    def __init__(self, spec: ModelSpec):
        g, m = spec.granularity, spec.width_mult
        cin = make_divisible(STEM * m, g)
        blocks = [ConvBlock("stem", spec.input_shape[0], cin, 3, 1, g, searchable=False, act="relu")]
        for i, (c, s) in enumerate(BLOCKS):
            cout = make_divisible(c * m, g)
            blocks.append(DepthwiseSeparable(f"b{i}", cin, cout, s, g))
            cin = cout
        super().__init__(spec, blocks, Classifier(cin, spec.num_classes))
