"""The built-in `mobilenet_v3`: a plain `nn.Module` searched through its traced graph, with
squeeze-excite, h-swish and h-sigmoid, at the 32-224 px sizes it is built for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netadapt.arch import ModelSpec
from netadapt.errors import ConfigError
from netadapt.graph import TracedNetwork
from netadapt.layers import total_macs, total_params
from netadapt.models import build_supernet
from netadapt.models.checks import check_model_widths
from netadapt.models.mobilenet_v3 import MobileNetV3, adapted_strides
from netadapt.models.source import model_source_digest, user_module
from tests.netadapt.graph.test_traced import random_archs, slim_macs

CASES = {  # (variant, input side, width_mult)
    "small-32": ("small", 32, 1.0),
    "small-64": ("small", 64, 0.5),
    "large-32": ("large", 32, 0.5),
}


def supernet(key: str, granularity: int = 8) -> TracedNetwork:
    variant, side, width_mult = CASES[key]
    torch.manual_seed(0)
    net = build_supernet(ModelSpec("mobilenet_v3", (3, side, side), 10, width_mult, granularity,
                                   kwargs={"variant": variant}))
    for m in net.modules():  # trained-looking statistics, so a wrong slice would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    assert isinstance(net, TracedNetwork)
    return net


@pytest.mark.parametrize("key", CASES)
def test_masked_equals_extracted_at_random_widths(key):
    net = supernet(key).eval()
    side = CASES[key][1]
    x = torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(1))
    for arch in random_archs(net, 3):
        with torch.no_grad():
            torch.testing.assert_close(net.extract(arch)(x), net(x, arch.widths), atol=1e-5, rtol=1e-5)


def test_per_sample_widths_train_in_one_pass():
    net = supernet("small-32").train()
    widths = {d.name: torch.tensor([d.max_width, d.min_width, d.narrowest_width, d.max_width])
              for d in net.space().dims}
    out = net(torch.randn(4, 3, 32, 32), widths)
    out.sum().backward()
    assert out.shape == (4, 10)
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("key", ["small-32", "small-64"])
def test_layer_specs_count_what_the_slim_network_holds_and_runs(key):
    net = supernet(key)
    side = CASES[key][1]
    units = {s.key() for s in net.units()}
    for arch in random_archs(net, 3, seed=2):
        slim, specs = net.extract(arch), net.layers(arch)
        assert total_params(specs) == sum(p.numel() for p in slim.parameters())
        assert total_macs(specs) == slim_macs(slim, (3, side, side))
        assert {s.key() for s in specs} <= units  # profiling times every unit a search can reach


def test_squeeze_excite_hswish_and_hsigmoid_are_searched_and_profiled():
    net = supernet("small-32")
    dims = {d.name: d for d in net.space().dims}
    se = dims["blocks.4.se.reduce.out"]  # squeeze-excite's reduction: a quarter of the expansion (240)
    assert se.max_width == 64 and se.min_width == 8 and not se.bypassable
    assert {"blocks.4.expand.conv.out", "blocks.4.bypass", "blocks.3.project.conv.stage", "head.conv.out",
            "hidden.out"} <= set(dims)
    assert not any(name.startswith("classifier") for name in dims)  # the logits keep their classes
    units = net.units()
    acts = {s.act for s in units}
    assert {"hardswish", "hardsigmoid", "relu"} <= acts  # conv + BN + h-swish, SE's expand + h-sigmoid
    assert any(s.op == "act" and s.act == "hardswish" for s in units)  # the classifier's hidden layer
    assert any(s.op == "eltwise" and s.mode == "scale" for s in units)  # the gate times the features
    assert any(s.op == "conv" and s.kernel == 5 and s.groups == s.cout == s.cin for s in units)  # 5x5 depthwise
    assert not net.plan.unmeasured
    # a narrower SE reduction costs less: the unit depends on its width
    full, narrow = net.space(), net.space().with_widths({se.name: 8})
    assert total_macs(net.layers(narrow)) < total_macs(net.layers(full))


def test_small_inputs_keep_a_4x4_feature_map_and_224_px_is_torchvisions_network():
    assert adapted_strides([2, 2, 1, 2, 2, 2], 224) == [2, 2, 1, 2, 2, 2]  # 7x7 at the end
    assert adapted_strides([2, 2, 1, 2, 2, 2], 64) == [1, 2, 1, 2, 2, 2]  # 4x4
    assert adapted_strides([2, 2, 1, 2, 2, 2], 32) == [1, 1, 1, 2, 2, 2]  # 4x4: stem and first stage at full size
    assert adapted_strides([2, 2], 2) == [1, 1]  # as far as it goes
    for side, final in ((32, 4), (64, 4), (96, 6), (224, 7)):
        model = MobileNetV3(10, 3, "small", 0.25, image_size=side)
        features = model.head(model.blocks(model.stem(torch.zeros(1, 3, side, side))))
        assert features.shape[-1] == final
    large = MobileNetV3(10, 3, "large", image_size=224)
    assert sum(p.numel() for p in large.parameters()) == 4_214_842  # torchvision's mobilenet_v3_large(num_classes=10)
    small = MobileNetV3(1000, 3, "small", image_size=224)
    assert sum(p.numel() for p in small.parameters()) == 2_542_856  # torchvision's mobilenet_v3_small()


def test_a_builtin_is_named_without_a_path_and_keyed_by_the_library():
    assert user_module("mobilenet_v3") == "" and model_source_digest("mobilenet_v3", "no/such/folder") == ""
    spec = ModelSpec("mobilenet_v3", (1, 28, 28), 7, 0.5)
    net = build_supernet(spec)
    assert net.space().model == spec and spec.path is None
    assert net.net.get_submodule("stem.conv").in_channels == 1  # channels and classes from the data
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 7)


def test_sizes_come_from_the_model_section_and_the_data_not_kwargs():
    with pytest.raises(ConfigError, match="model.kwargs: width_mult of the built-in mobilenet_v3 comes from "
                                          "model.width_mult"):
        build_supernet(ModelSpec("mobilenet_v3", (3, 32, 32), 10, kwargs={"width_mult": 0.5}))
    with pytest.raises(ConfigError, match=r"model.kwargs: .*variant must be one of 'small', 'large', got 'tiny'"):
        build_supernet(ModelSpec("mobilenet_v3", (3, 32, 32), 10, kwargs={"variant": "tiny"}))


def test_model_checks_pass_at_every_granularity_since_nothing_is_rounded_up():
    for granularity in (8, 16, 32):  # 16 and 32: what a network of ImageNet size is profiled at
        check_model_widths(ModelSpec("mobilenet_v3", (3, 224, 224), 10, granularity=granularity))
    net = build_supernet(ModelSpec("mobilenet_v3", (3, 32, 32), 10, granularity=16))
    assert {d.granularity for d in net.space().dims if d.kind == "width"} == {8, 16}  # its gcd with each width


def test_its_5x5_depthwise_kernels_are_searched_down_to_3():
    net = build_supernet(ModelSpec("mobilenet_v3", (3, 32, 32), 10, width_mult=0.25))
    kernels = [d for d in net.space().dims if d.kind == "kernel"]
    assert kernels and all(d.name.endswith("depthwise.conv.kernel") and d.choices() == [3, 5] for d in kernels)
    small = net.space().with_widths({d.name: 3 for d in kernels})
    assert {s.kernel for s in net.layers(small) if s.op == "conv" and s.groups > 1} == {3}
    with pytest.raises(ConfigError, match="model.granularity: 64 is larger than plain_cnn's smallest"):
        check_model_widths(ModelSpec("plain_cnn", (1, 28, 28), 10, granularity=64))  # built from it: still checked


def test_netadapt_v1_reordering_keeps_the_function_through_squeeze_excite_and_a_stage():
    net = supernet("small-32").eval()
    space = net.space()
    arch = space.with_widths({"blocks.4.se.reduce.out": 32, "blocks.3.project.conv.stage": 24,
                              "blocks.4.bypass": 16, "blocks.4.expand.conv.out": 120})
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = net(x, arch.widths)
        for dim in ("blocks.4.se.reduce.out", "blocks.3.project.conv.stage", "blocks.4.expand.conv.out"):
            assert net.can_reorder(dim)
            net.keep_largest_filters(dim, arch)
        torch.testing.assert_close(net(x, arch.widths), before, atol=1e-5, rtol=1e-5)
    norms = net.net.get_submodule("blocks.4.se.reduce").weight.flatten(1).pow(2).sum(1)
    assert torch.all(norms[:32][:-1] >= norms[:32][1:])  # the largest filters first, within the kept width
