"""A small plain CNN (three 3x3 convs) for fast tests; every conv width is searchable."""

from __future__ import annotations

from netadapt.arch import ModelSpec
from netadapt.models.blocks import Classifier, ConvBlock, make_divisible
from netadapt.models.network import SearchableNetwork

WIDTHS = [(16, 1), (32, 2), (32, 2)]  # (output channels, stride)


class PlainCNN(SearchableNetwork):
    def __init__(self, spec: ModelSpec):
        g, cin = spec.granularity, spec.input_shape[0]
        blocks = []
        for i, (c, s) in enumerate(WIDTHS):
            cout = make_divisible(c * spec.width_mult, g)
            blocks.append(ConvBlock(f"conv{i}", cin, cout, 3, s, g, act="relu"))
            cin = cout
        super().__init__(spec, blocks, Classifier(cin, spec.num_classes))
