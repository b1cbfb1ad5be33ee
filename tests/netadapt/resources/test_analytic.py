import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netadapt.arch import ModelSpec
from netadapt.models import build_supernet, extract
from netadapt.resources import ResourceModel
from netadapt.resources.analytic import MacsModel, ParamsModel


def test_hand_computed_macs_and_params_of_a_small_net():
    """plain_cnn on 8x8x1, 3 classes: conv 1->16 (3x3, 8x8), conv 16->32 (s2, 4x4 out),
    conv 32->32 (s2, 2x2 out), each with BN; linear 32->3."""
    model = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3))
    space = model.space()
    macs = 16 * 1 * 9 * 64 + 32 * 16 * 9 * 16 + 32 * 32 * 9 * 4 + 32 * 3
    params = (16 * 9 + 32) + (32 * 16 * 9 + 64) + (32 * 32 * 9 + 64) + (32 * 3 + 3)
    assert MacsModel(model).estimate(space) == macs == 119904
    assert ParamsModel(model).estimate(space) == params == 14227
    narrow = space.with_widths({"conv0": 8, "conv1": 16, "conv2": 8})
    assert MacsModel(model).estimate(narrow) == 8 * 9 * 64 + 16 * 8 * 9 * 16 + 8 * 16 * 9 * 4 + 8 * 3
    assert isinstance(MacsModel(model), ResourceModel) and isinstance(ParamsModel(model), ResourceModel)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v1", "plain_cnn"])
def test_macs_agree_with_torch_flop_counter_on_extracted_networks(name):
    model = build_supernet(ModelSpec(name, (3, 32, 32), 10)).eval()
    space, rng = model.space(), random.Random(0)
    archs = [space, space.smallest()] + [space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})
                                          for _ in range(4)]
    for arch in archs:
        slim = extract(model, arch)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            slim(torch.randn(1, 3, 32, 32))
        assert counter.get_total_flops() == 2 * MacsModel(model).estimate(arch)
        assert sum(p.numel() for p in slim.parameters()) == ParamsModel(model).estimate(arch)
