"""BN recalibration of extracted sub-networks: what statistics it ends with."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.data import Split
from netadapt.evaluation import recalibrate_bn
from netadapt.training import to_input


def test_recalibration_weighs_each_sample_equally_with_a_short_last_batch():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (10, 2, 3, 3), dtype=torch.uint8)
    split = Split(images, torch.zeros(10, dtype=torch.long))
    model = nn.Sequential(nn.BatchNorm2d(2))
    recalibrate_bn(model, split, num_batches=3, batch_size=4, device=torch.device("cpu"))  # 4 + 4 + 2
    expected = to_input(images).mean(dim=(0, 2, 3))
    assert torch.allclose(model[0].running_mean, expected, atol=1e-5)
    assert model[0].momentum == 0.1 and not model.training


def test_recalibration_on_a_class_sorted_split_sees_every_class():
    labels = torch.arange(3).repeat_interleave(20)
    images = (labels * 100).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    model = nn.Sequential(nn.BatchNorm2d(1))
    recalibrate_bn(model, Split(images, labels), num_batches=1, batch_size=6, device=torch.device("cpu"))
    assert torch.allclose(model[0].running_mean, to_input(images).mean(dim=(0, 2, 3)), atol=1e-5)
