"""The slim network trains: a removed residual block leaves no in-place op on a tensor autograd keeps.

ResNet's `relu = nn.ReLU(inplace=True)` after `out += identity`: once the block is removed, the add is
gone and that ReLU would act in place on the previous block's ReLU output, which that ReLU's backward
needs (finetune failed with "modified by an inplace operation").
"""

from __future__ import annotations

import torch
from torch import nn

from examples import mymodels
from netadapt.arch import ModelSpec
from netadapt.graph import TracedNetwork


def test_a_network_with_a_removed_block_trains_and_computes_the_masked_function() -> None:
    torch.manual_seed(0)
    net = TracedNetwork(ModelSpec("examples.mymodels:ResNet18", (3, 32, 32), 10, granularity=4),
                        mymodels.ResNet18(num_classes=10, in_channels=3, width=8))
    arch = net.space().with_widths({"layer4.1.bypass": 0, "layer2.1.bypass": 0})
    slim = net.extract(arch)
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(slim(x), net(x, arch.widths), atol=1e-5)
    slim.train()
    nn.functional.cross_entropy(slim(x), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in slim.parameters() if p.requires_grad)
