"""Kernel-size dimensions: a depthwise conv built at k_max runs at every odd k down to 3 with the centre
of its weights, in the masked super-network (per sample), the slim network and the layer specs alike,
for the built-in MobileNetV2 (`model.kwargs: {kernel: 7}`) and for any traced model."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from netadapt.arch import Architecture, ArchitectureError, Dimension, ModelSpec
from netadapt.elastic_kernel import centre_crop
from netadapt.errors import ConfigError
from netadapt.graph import TracedNetwork
from netadapt.layers import total_macs
from netadapt.mcd import generate_candidates
from netadapt.models import build_supernet, extract
from netadapt.netadapt_v1 import NetAdaptV1
from netadapt.ordered_dropout import sample_widths
from netadapt.resources.analytic import MacsModel
from tests.netadapt.models.test_models import randomize_bn

K7 = ModelSpec("mobilenet_v2", (3, 32, 32), 10, width_mult=0.5, kwargs={"kernel": 7})


def trained_looking(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(model)


def kernel_dims(space: Architecture) -> list[Dimension]:
    return [d for d in space.dims if d.kind == "kernel"]


class Tiny(nn.Module):
    """A plain model with a 7x7 depthwise conv at stride 2 and a 5x5 one with dilation 2."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw7 = nn.Sequential(nn.Conv2d(16, 16, 7, 2, 3, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw5 = nn.Conv2d(16, 16, 5, 1, 4, dilation=2, groups=16)
        self.dw3 = nn.Conv2d(16, 16, 3, 1, 1, groups=16)  # 3x3: nothing to shrink
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.dw3(self.dw5(self.dw7(self.stem(x))))
        return self.head(x.mean((2, 3)))


def tiny() -> TracedNetwork:
    torch.manual_seed(0)
    return TracedNetwork(ModelSpec("tests:Tiny", (3, 16, 16), 4, granularity=8), trained_looking(Tiny())).eval()


def test_kernel_dimensions_are_named_typed_and_odd():
    space = build_supernet(K7).space()
    kernels = kernel_dims(space)
    assert len(kernels) == 11 and kernels[0].name == "b0.kernel"
    assert all(d.choices() == [3, 5, 7] and d.width == 7 and not d.bypassable for d in kernels)
    assert space.narrowest().widths["b0.kernel"] == 3
    for bad in (4, 9, 1):
        with pytest.raises(ArchitectureError, match=f"b0.kernel: kernel size {bad} is not an odd size between 3 and 7"):
            space.with_widths({"b0.kernel": bad})
    assert [d.name for d in kernel_dims(tiny().space())] == ["dw7.0.kernel", "dw5.kernel"]


def test_descriptions_keep_the_kind_and_width_spaces_stay_as_they_were():
    space = build_supernet(K7).space().with_widths({"b3.kernel": 5})
    again = Architecture.from_json(space.to_json())
    assert again == space and again.dim("b3.kernel").kind == "kernel"
    plain = build_supernet(ModelSpec("mobilenet_v2", (3, 32, 32), 10)).space()
    assert not kernel_dims(plain)
    assert all("kind" not in d for d in plain.to_dict()["dimensions"])


def test_a_smaller_kernel_is_the_centre_of_the_larger_one():
    model = trained_looking(build_supernet(K7))
    arch = model.space().with_widths({"b2.kernel": 3, "b4.kernel": 5})
    slim = extract(model, arch)
    super_convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] == 7}
    slim_sizes = sorted(m.kernel_size[0] for m in slim.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    assert slim_sizes.count(3) == 1 and slim_sizes.count(5) == 1
    crop = centre_crop(super_convs["blocks.3.dw.conv"].weight, 3)
    assert torch.equal(crop, super_convs["blocks.3.dw.conv"].weight[..., 2:5, 2:5])
    dw = [m for m in slim.modules() if isinstance(m, nn.Conv2d) and m.groups > 1 and m.kernel_size[0] == 3]
    assert torch.equal(dw[0].weight, crop[: dw[0].out_channels]) and dw[0].padding == (1, 1)


@pytest.mark.parametrize("make", [lambda: trained_looking(build_supernet(K7)), tiny], ids=["mobilenet_v2-k7", "traced"])
def test_masked_equals_extracted_at_random_kernel_sizes_and_widths(make):
    model, rng = make(), random.Random(0)
    space = model.space()
    x = torch.randn(3, *space.model.input_shape, generator=torch.Generator().manual_seed(1))
    archs = [space.smallest(), space.with_widths({d.name: 3 for d in kernel_dims(space)})]
    archs += [space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims}) for _ in range(5)]
    for arch in archs:
        with torch.no_grad():
            torch.testing.assert_close(extract(model, arch)(x), model(x, arch.widths), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [lambda: trained_looking(build_supernet(K7)), tiny], ids=["mobilenet_v2-k7", "traced"])
def test_each_sample_runs_its_own_kernel_size_in_one_pass(make):
    model = make()
    space = model.space()
    dims = kernel_dims(space)
    x = torch.randn(6, *space.model.input_shape, generator=torch.Generator().manual_seed(2))
    per_sample = {d.name: torch.tensor([7, 3, 5, 7, 5, 3]).clamp(max=d.max_width) for d in dims}
    with torch.no_grad():
        together = model(x, per_sample)
        for i in range(len(x)):
            alone = model(x[i:i + 1], {name: int(k[i]) for name, k in per_sample.items()})
            torch.testing.assert_close(together[i:i + 1], alone, atol=1e-5, rtol=1e-5)


def test_a_sample_at_kernel_3_trains_only_the_centre():
    model = tiny().train()
    x = torch.randn(2, 3, 16, 16)
    model(x, {"dw7.0.kernel": torch.tensor([3, 3])}).sum().backward()
    grad = model.net.get_submodule("dw7.0").weight.grad
    assert grad[..., 2:5, 2:5].abs().sum() > 0
    outer = grad.clone()
    outer[..., 2:5, 2:5] = 0
    assert outer.abs().sum() == 0


def test_layer_specs_and_profiled_units_carry_the_kernel():
    model = tiny()
    space = model.space()
    small = space.with_widths({"dw7.0.kernel": 3, "dw5.kernel": 3})
    kernels = sorted(s.kernel for s in model.layers(small) if s.op == "conv" and s.groups > 1)
    assert kernels == [3, 3, 3]
    assert total_macs(model.layers(small)) < total_macs(model.layers(space))
    units = {(s.kernel, s.dilation) for s in model.units() if s.op == "conv" and s.groups > 1}
    assert {(3, 1), (5, 1), (7, 1), (3, 2), (5, 2)} <= units
    builtin = build_supernet(K7)
    assert {s.kernel for s in builtin.layers(builtin.space().smallest()) if s.op == "conv" and s.groups > 1} == {3}


def test_ordered_dropout_draws_kernel_sizes_like_widths():
    space = build_supernet(K7).space()
    widths = sample_widths(space, 64, torch.Generator().manual_seed(0), "sandwich", group_size=4)
    drawn = widths["b5.kernel"]
    assert set(drawn.tolist()) == {3, 5, 7}
    assert drawn[0] == 7 and drawn[1] == 3  # group 0 the full network, group 1 the smallest


def test_mcd_and_v1_can_shrink_a_kernel():
    model = tiny()
    space, macs = model.space(), MacsModel(model)
    base = macs.estimate(space)
    target = base - 0.02 * base  # a small cut: a kernel can give it
    found = generate_candidates(space, base, target, macs, 40, 2, np.random.default_rng(0))
    moved = {name for c in found for name, w in c.arch.widths.items() if w != space.widths[name]}
    assert "dw7.0.kernel" in moved or "dw5.kernel" in moved
    v1 = NetAdaptV1.__new__(NetAdaptV1)
    v1.resource = macs
    proposals = v1.candidates(space, base, target, np.random.default_rng(0))
    kernel_moves = [p for p in proposals if p.arch.widths["dw7.0.kernel"] < 7 or p.arch.widths["dw5.kernel"] < 5]
    assert kernel_moves and all(p.resource <= target for p in proposals)
    assert not model.can_reorder("dw7.0.kernel")


def test_the_built_in_kernel_setting_is_checked():
    for kwargs, message in [({"kernel": 4}, "model.kwargs.kernel: must be one of"),
                            ({"kernel": True}, "model.kwargs.kernel: must be one of"),
                            ({"depth": 2}, "model.kwargs: mobilenet_v2 takes only 'kernel'")]:
        with pytest.raises(ConfigError, match=message):
            build_supernet(ModelSpec("mobilenet_v2", (3, 32, 32), 10, kwargs=kwargs))


def test_the_granularity_check_looks_at_widths_only():
    from netadapt.models.checks import check_model_widths

    check_model_widths(ModelSpec("mobilenet_v2", (3, 32, 32), 10, granularity=8, kwargs={"kernel": 7}))
