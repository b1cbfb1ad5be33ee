"""Any nn.Module as a search space: one traced graph, three views that agree.

The models are written the ordinary PyTorch way (examples/mymodels.py: after torchvision's
mobilenet_v3_small and resnet18, a hand-written residual network, a concatenation with
squeeze-excite); torchvision's own classes are tried where torchvision imports.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from examples import mymodels
from netadapt.arch import ModelSpec
from netadapt.graph import GraphError, TracedNetwork
from netadapt.layers import total_macs, total_params

MODELS = {
    "mobilenet_v3_small": (mymodels.MobileNetV3Small, (3, 32, 32), {"width_mult": 0.25}),
    "resnet18": (mymodels.ResNet18, (3, 32, 32), {"width": 8}),
    "tiny_resnet": (mymodels.TinyResNet, (1, 16, 16), {}),
    "concat_se": (mymodels.ConcatSENet, (3, 16, 16), {}),
}


def traced(key: str, granularity: int = 4) -> TracedNetwork:
    cls, shape, kwargs = MODELS[key]
    torch.manual_seed(0)
    module = cls(num_classes=10, in_channels=shape[0], **kwargs)
    for m in module.modules():  # trained-looking statistics, so a wrong slice would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return TracedNetwork(ModelSpec(f"examples.mymodels:{cls.__name__}", shape, 10, granularity=granularity), module)


def random_archs(net: TracedNetwork, count: int, seed: int = 0):
    rng, space = random.Random(seed), net.space()
    yield space.smallest()
    for _ in range(count):
        yield space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})


def slim_macs(slim: nn.Module, shape: tuple[int, ...]) -> int:
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            macs += output.numel() * (module.in_channels // module.groups) * module.kernel_size[0] ** 2
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in slim.modules()]
    slim(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return macs


@pytest.mark.parametrize("key", MODELS)
def test_masked_equals_extracted_at_random_widths(key):
    net = traced(key).eval()
    x = torch.randn(3, *MODELS[key][1], generator=torch.Generator().manual_seed(1))
    for arch in random_archs(net, 6):
        slim = net.extract(arch)
        with torch.no_grad():
            torch.testing.assert_close(slim(x), net(x, arch.widths), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key", MODELS)
def test_layer_specs_count_what_the_slim_network_holds_and_runs(key):
    net = traced(key)
    shape = MODELS[key][1]
    for arch in random_archs(net, 4, seed=2):
        slim, specs = net.extract(arch), net.layers(arch)
        assert total_params(specs) == sum(p.numel() for p in slim.parameters())
        assert total_macs(specs) == slim_macs(slim, shape)
        assert {s.key() for s in specs} <= {s.key() for s in net.units()}  # profiling times every unit


def test_the_dimensions_are_the_coupled_channel_groups():
    names = {d.name: d for d in traced("resnet18").space().dims}
    # a stage width shared by residual-linked blocks (layer2's adds tie downsample and both conv2s)
    assert "layer2.0.conv2.stage" in names and names["layer2.0.conv2.stage"].min_width > 0
    # a block whose add reads its own input is bypassable (depth as width); a downsampling one is not
    assert names["layer2.1.bypass"].bypassable and "layer2.0.bypass" not in names
    assert "layer2.0.conv1.out" in names  # the width inside a block
    assert not any(n.startswith("fc") for n in names)  # the logits keep their classes
    mobile = {d.name for d in traced("mobilenet_v3_small").space().dims}
    assert "features.4.block.2.fc1.out" in mobile  # squeeze-excite's reduction width
    assert "features.5.block.bypass" in mobile and "features.4.block.bypass" not in mobile
    assert "classifier.0.out" in mobile  # the head


def test_fixed_stage_widths_stay_at_their_built_size_in_every_view():
    """`model.fixed: ["*.stage"]`: the same dimensions, the stage widths with one choice; the smallest
    network keeps every stage at full width, and profiling has fewer units to time."""
    free = traced("resnet18")
    cls, shape, kwargs = MODELS["resnet18"]
    torch.manual_seed(0)
    net = TracedNetwork(replace(free.spec, fixed=("*.stage",)), cls(num_classes=10, in_channels=shape[0], **kwargs))
    stages = [d for d in net.space().dims if d.name.endswith(".stage")]
    assert stages and all(d.fixed for d in stages) and not any(d.fixed for d in free.space().dims)
    assert [d.name for d in net.space().dims] == [d.name for d in free.space().dims]
    slim = dict(net.extract(net.space().smallest()).named_modules())
    assert slim["layer2.0.conv2"].out_channels == net.space().dim("layer2.0.conv2.stage").max_width
    assert slim["layer2.0.conv1"].out_channels == net.space().dim("layer2.0.conv1.out").min_width
    assert net.units() < free.units()


def test_removing_a_branch_removes_its_nodes():
    net = traced("tiny_resnet")
    arch = net.space().with_widths({"blocks.0.bypass": 0})
    slim = net.extract(arch)
    assert not any(name.startswith("blocks.0") for name, _ in slim.named_modules())
    assert len(net.layers(arch)) < len(net.layers(net.space()))


def test_per_sample_widths_train_in_one_pass():
    net = traced("mobilenet_v3_small").train()
    space = net.space()
    widths = {d.name: torch.tensor([d.max_width, d.min_width, d.max_width, d.min_width]) for d in space.dims}
    out = net(torch.randn(4, 3, 32, 32), widths)
    out.sum().backward()
    assert out.shape == (4, 10)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    # each sample is its own sub-network: sample 1 equals the smallest network run alone
    net.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        together = net(x, widths)[1]
        alone = net.extract(space.smallest())(x[1:2])[0]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_reordering_keeps_the_function_through_a_residual_coupled_group():
    net = traced("resnet18").eval()
    space = net.space()
    arch = space.with_widths({"layer1.1.bypass": 4})  # a bypass width inside the stage
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x, arch.widths)
        net.keep_largest_filters("conv1.stage", arch)
        after = net(x, arch.widths)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)
    norms = net.net.get_submodule("conv1").weight.flatten(1).pow(2).sum(1)
    for name in ("layer1.0.conv2", "layer1.1.conv2"):
        norms = norms + net.net.get_submodule(name).weight.flatten(1).pow(2).sum(1)
    assert torch.all(norms[:4][:-1] >= norms[:4][1:])  # largest first within the bypass width
    assert torch.all(norms[4:][:-1] >= norms[4:][1:])


class ChannelShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Linear(8, 10)
        self.c = nn.Conv2d(8, 16, 1)
        self.d = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        x = self.d(torch.relu(self.c(self.b(x))))
        return self.head(x.mean((2, 3)))


def test_an_op_it_cannot_follow_keeps_its_neighbours_whole_and_says_which(caplog):
    with caplog.at_level(logging.WARNING):
        net = TracedNetwork(ModelSpec("t:ChannelShuffle", (3, 8, 8), 10, granularity=4), ChannelShuffle())
    assert "'view'" in caplog.text or "'transpose'" in caplog.text
    names = {d.name for d in net.space().dims}
    assert "a.out" not in names  # read by the shuffle: full width
    assert "c.out" in names  # beyond it, searchable as usual
    arch = net.space().smallest()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net.extract(arch)(x), net.eval()(x, arch.widths), atol=1e-5, rtol=1e-5)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_an_untraceable_model_is_refused_naming_it():
    with pytest.raises(GraphError, match=r"model.name: t:DataDependent: torch.fx cannot trace"):
        TracedNetwork(ModelSpec("t:DataDependent", (3, 8, 8), 10), DataDependent())


class Gate(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return self.conv(x) if x.mean() > 0 else x * 0.5


class WithAnUntraceablePart(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.gate = Gate(16)
        self.c = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.c(self.gate(self.b(self.a(x))))
        return self.head(x.mean((2, 3)))


def test_an_untraceable_submodule_is_kept_whole_and_named(caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        net = TracedNetwork(ModelSpec("t:WithAnUntraceablePart", (3, 8, 8), 10, granularity=4),
                            WithAnUntraceablePart()).eval()
    assert "submodule 'gate' cannot be traced" in caplog.text
    names = {d.name for d in net.space().dims}
    assert "b.0.out" not in names  # read and written by the opaque gate: full width
    assert {"a.0.out", "c.0.out"} <= names  # elsewhere, searchable as usual
    x = torch.randn(2, 3, 8, 8)
    for arch in random_archs(net, 4):
        with torch.no_grad():
            torch.testing.assert_close(net.extract(arch)(x), net(x, arch.widths), atol=1e-5, rtol=1e-5)


def test_torchvision_models_where_torchvision_imports():
    try:
        from torchvision import models
    except Exception as exc:  # noqa: BLE001 - a CUDA build beside the CPU torch raises RuntimeError
        pytest.skip(f"torchvision does not import here ({type(exc).__name__})")
    for factory in (models.resnet18, models.mobilenet_v3_small):
        net = TracedNetwork(ModelSpec(f"torchvision:{factory.__name__}", (3, 32, 32), 10, granularity=8),
                            factory(weights=None, num_classes=10)).eval()
        arch = next(iter(random_archs(net, 1)))
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(net.extract(arch)(x), net(x, arch.widths), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key", ["tiny_resnet", "concat_se"])
def test_the_slim_network_exports_to_onnx_with_a_dynamic_batch(key):
    import onnxruntime

    from netadapt.resources.backends import onnx_bytes

    net, shape = traced(key), MODELS[key][1]
    widths = {d.name: d.max_width // 2 if d.bypassable else d.min_width for d in net.space().dims}
    slim = net.extract(net.space().with_widths(widths))  # partial adds, sliced concatenation parts
    session = onnxruntime.InferenceSession(onnx_bytes(slim, (torch.randn(1, *shape),), dynamic_batch=True))
    x = torch.randn(3, *shape)
    with torch.no_grad():
        expected = slim(x).numpy()
    assert abs(session.run(None, {"input0": x.numpy()})[0] - expected).max() < 1e-5


def test_a_slim_network_with_a_removed_branch_trains_although_the_user_wrote_in_place_ops():
    """torchvision's BasicBlock does `out += identity` and `ReLU(inplace=True)`: with the branch gone,
    the block's ReLU would overwrite the previous ReLU's output that autograd saved."""
    net = traced("resnet18")
    arch = net.space().with_widths({d.name: 0 for d in net.space().dims if d.bypassable})
    for model in (net.extract(arch).train(), net.train()):
        out = model(torch.randn(4, 3, 32, 32)) if model is not net else model(torch.randn(4, 3, 32, 32), arch.widths)
        out.sum().backward()  # raised "modified by an inplace operation" before


class DropPath(nn.Module):
    """timm's per-sample branch drop (torchvision's StochasticDepth alike): `if self.training`."""

    def forward(self, x):
        if not self.training:
            return x
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) > 0.5
        return x * keep / 0.5


class DropPathNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.drop = DropPath()
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.drop(self.branch(x))
        return self.head(x.mean((2, 3)))


def test_a_branch_drop_stays_a_module_call_and_its_branch_stays_bypassable():
    torch.manual_seed(0)
    net = TracedNetwork(ModelSpec("t:DropPathNet", (3, 8, 8), 10, granularity=4), DropPathNet()).eval()
    assert "drop" in {n.target for n in net.net.graph.nodes if n.op == "call_module"}  # not traced through
    names = {d.name for d in net.space().dims}
    assert names == {"stem.0.stage", "add.bypass"}  # the branch adds into the stem's stage, and may go
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))  # eval mode: no branch dropped at random
        for arch in random_archs(net, 4):
            torch.testing.assert_close(net.extract(arch)(x), net(x, arch.widths), atol=1e-5, rtol=1e-5)
    assert not net.plan.unmeasured


class AuxInTraining(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv(x)
        if self.training:
            x = x * 0.5
        return self.head(x.mean((2, 3)))


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = F.dropout(self.conv(x).mean((2, 3)), 0.5, training=self.training)
        return self.head(x)


def test_a_forward_that_branches_on_training_is_refused_naming_the_node():
    with pytest.raises(GraphError, match=r"t:AuxInTraining: forward\(\) takes another path in training than in "
                                         r"evaluation \(from node 'mul' on"):
        TracedNetwork(ModelSpec("t:AuxInTraining", (3, 8, 8), 10, granularity=4), AuxInTraining())


def test_functional_dropout_follows_the_mode_it_runs_in():
    torch.manual_seed(0)
    net = TracedNetwork(ModelSpec("t:FunctionalDropout", (3, 8, 8), 10, granularity=4), FunctionalDropout())
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(x), net(x))  # no dropout in eval mode
        net.train()
        assert not torch.equal(net(x), net(x))  # dropout in training
