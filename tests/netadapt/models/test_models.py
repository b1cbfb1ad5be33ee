"""The three views of every built-in model agree: masked super-network, slim extraction, layer specs."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from netadapt.arch import Architecture, ArchitectureError, ModelSpec
from netadapt.layers import total_params
from netadapt.models import build_supernet, extract

MODELS = ["mobilenet_v2", "mobilenet_v2-k7", "mobilenet_v1", "plain_cnn"]
SHAPES = [(1, 28, 28), (3, 32, 32)]


def model_spec(name: str, shape: tuple[int, int, int]) -> ModelSpec:
    """`mobilenet_v2-k7`: MobileNetV2 with 7x7 depthwise convs and kernel-size dimensions."""
    base, _, kernel = name.partition("-k")
    return ModelSpec(base, shape, 10, kwargs={"kernel": int(kernel)} if kernel else {})


def randomize_bn(model: nn.Module) -> nn.Module:
    """`model` (eval mode) with random BN statistics and affine parameters (defaults hide slicing bugs),
    drawn from torch's global generator."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def trained_looking(spec: ModelSpec, seed: int = 0) -> nn.Module:
    """A super-network of `spec`, seeded, with trained-looking BN (`randomize_bn`)."""
    torch.manual_seed(seed)
    return randomize_bn(build_supernet(spec).eval())


def random_arch(space: Architecture, rng: random.Random) -> Architecture:
    return space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})


@pytest.mark.parametrize("shape", SHAPES, ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", MODELS)
def test_extraction_equals_masked_supernet_and_counts_params(name, shape):
    spec = model_spec(name, shape)
    model, rng = trained_looking(spec), random.Random(0)
    space = model.space()
    x = torch.randn(3, *shape)
    for arch in [space, space.smallest()] + [random_arch(space, rng) for _ in range(6)]:
        slim = extract(model, arch)
        with torch.no_grad():
            diff = (slim(x) - model(x, arch.widths)).abs().max().item()
        assert diff <= 1e-5, f"{arch.widths}: max abs diff {diff}"
        assert sum(p.numel() for p in slim.parameters()) == total_params(model.layers(arch))


@pytest.mark.parametrize("name", MODELS)
def test_layer_specs_list_the_convolutions_the_slim_network_runs(name):
    spec = model_spec(name, (3, 32, 32))
    model = trained_looking(spec)
    arch = random_arch(model.space(), random.Random(3))
    slim = extract(model, arch)
    seen: list[tuple] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(
        (mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.groups, inp[0].shape[-1])))
        for m in slim.modules() if isinstance(m, nn.Conv2d)]
    slim(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    specs = [(s.cin, s.cout, s.kernel, s.stride, s.groups, s.w) for s in model.layers(arch) if s.op == "conv"]
    assert seen == specs


def test_bypassed_blocks_disappear_from_the_slim_network():
    model = trained_looking(ModelSpec("mobilenet_v2", (1, 28, 28), 10))
    space = model.space()
    bypassable = [d.name for d in space.dims if d.bypassable]
    assert len(bypassable) >= 5, "every residual block is bypassable"
    no_blocks = space.with_widths({n: 0 for n in bypassable})
    full, slim = extract(model, space), extract(model, no_blocks)
    assert len(list(slim.modules())) < len(list(full.modules()))
    assert len(slim) == len(full) - len(bypassable)
    assert not any(isinstance(m, nn.Conv2d) and 0 in m.weight.shape for m in slim.modules())


@pytest.mark.parametrize("name", MODELS)
def test_each_sample_of_a_batch_runs_its_own_sub_network(name):
    """Per-sample widths in one batch equal each sample run alone through its sub-network."""
    spec = model_spec(name, (1, 28, 28))
    model, rng = trained_looking(spec), random.Random(1)
    archs = [random_arch(model.space(), rng) for _ in range(4)]
    widths = {d.name: torch.tensor([a.widths[d.name] for a in archs]) for d in model.space().dims}
    assert any(len(set(w.tolist())) > 1 for w in widths.values())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        batched = model(x, widths)
        alone = torch.cat([model(x[i:i + 1], a.widths) for i, a in enumerate(archs)])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_gradients_reach_only_kept_channels():
    model = build_supernet(ModelSpec("mobilenet_v2", (1, 28, 28), 10)).train()
    space = model.space()
    block = next(b for b in model.blocks if getattr(b, "residual", False) and b.expand is not None)
    e_dim, out_dim = block.expand_dim, block.out_dim
    widths = {e_dim.name: torch.tensor([16, 24]), out_dim.name: torch.tensor([8, 8])}
    model(torch.randn(2, 1, 28, 28), widths).sum().backward()
    expand_grad = block.expand.conv.weight.grad.flatten(1).abs().sum(1)
    project_grad = block.project.conv.weight.grad.flatten(1).abs().sum(1)
    assert (expand_grad[:24] > 0).all() and (expand_grad[24:] == 0).all()
    assert (project_grad[:8] > 0).all() and (project_grad[8:] == 0).all()
    assert (block.project.conv.weight.grad[:8, 24:] == 0).all(), "inputs beyond every sample's expansion"
    assert space.dim(e_dim.name).max_width > 24


def test_extract_rejects_an_architecture_of_another_space():
    model = build_supernet(ModelSpec("plain_cnn", (1, 28, 28), 10))
    other = build_supernet(ModelSpec("plain_cnn", (1, 28, 28), 7)).space()
    with pytest.raises(ArchitectureError, match="another search space"):
        extract(model, other)
