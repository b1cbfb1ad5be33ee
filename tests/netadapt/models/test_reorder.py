"""NetAdapt V1's filter reordering keeps the network's function at the current, narrowed architecture
(masked super-network and slim extraction) and puts the largest filters the CBC widths allow first."""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Callable

import pytest
import torch
from torch import nn

from netadapt.arch import Architecture, ModelSpec
from netadapt.models import build_supernet, extract
from netadapt.models.blocks import Classifier, ConvBlock, InvertedResidual
from netadapt.models.network import SearchableNetwork
from netadapt.models.reorder import filter_norms, largest_first
from tests.netadapt.models.test_models import MODELS, model_spec, random_arch


def calibrated(make: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """A seeded network with random BN affines and running statistics measured on random inputs, then
    jittered: its outputs depend on the input (with arbitrary statistics they are nearly constant,
    which would hide a reordering that changes the function)."""
    torch.manual_seed(seed)
    model = make()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-0.2, 0.2)
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, *model.spec.input_shape))
    for m in bns:
        m.momentum = 0.1
        m.running_mean.add_(torch.empty_like(m.running_mean).uniform_(-0.1, 0.1))
        m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25))
    return model.eval()


def cbc_bounds(model: SearchableNetwork, dim: str, arch: Architecture) -> list[int]:
    """The CBC widths of the bypassable blocks right after the one producing `dim`: they pass its
    channels on, so a filter may not cross them. An expansion is read inside its block only."""
    if dim.endswith(".expand"):
        return []
    i = next(i for i, b in enumerate(model.blocks) if b.producer(dim) is not None)
    bounds = []
    for block in model.blocks[i + 1:]:
        cbc = [d.name for d in block.dims() if d.bypassable]
        if not cbc:
            break
        bounds.append(arch.widths[cbc[0]])
    return bounds


def expected_norms(norms: torch.Tensor, width: int, bounds: list[int]) -> torch.Tensor:
    """Each segment of [0, width) between CBC widths sorted descending; the rest in place."""
    cuts = sorted({0, width, *(b for b in bounds if 0 < b < width)})
    parts = [norms[lo:hi].sort(descending=True).values for lo, hi in zip(cuts, cuts[1:])]
    return torch.cat([*parts, norms[width:]])


def producer_of(model: SearchableNetwork, dim: str):
    return next(b.producer(dim) for b in model.blocks if b.producer(dim) is not None)


def assert_same(out: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    diff = (out - ref).abs().max().item()
    assert diff <= 1e-5 * max(1.0, ref.abs().max().item()), f"{what}: max abs diff {diff:.3g}"


@pytest.mark.parametrize("name", MODELS)
def test_reordering_keeps_the_function_of_random_narrowed_architectures(name):
    """For random architectures (CBC widths 0, inside and at the maximum) and every reorderable
    dimension in turn: masked and slim outputs unchanged, and the kept prefix holds the largest
    filters the CBC widths allow (each segment sorted by L2 norm, the dropped filters in place)."""
    base = calibrated(lambda: build_supernet(dataclasses.replace(model_spec(name, (3, 16, 16)), num_classes=5)))
    rng, space = random.Random(0), base.space()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    dims = [d.name for d in space.dims if base.can_reorder(d.name)]
    assert dims
    constrained = 0
    for arch in [space, space.smallest()] + [random_arch(space, rng) for _ in range(10)]:
        model = copy.deepcopy(base)  # unsorted filters: an earlier sort would satisfy any segmentation
        with torch.no_grad():
            ref = model(x, arch.widths)
            assert_same(extract(model, arch)(x), ref, f"{arch.widths} before reordering")
        for dim in dims:
            width, bounds = arch.widths[dim], cbc_bounds(model, dim, arch)
            constrained += any(0 < b < width for b in bounds)
            expected = expected_norms(filter_norms(producer_of(model, dim)).clone(), width, bounds)
            model.keep_largest_filters(dim, arch)
            with torch.no_grad():
                assert_same(model(x, arch.widths), ref, f"{arch.widths}: masked, {dim} reordered")
            assert torch.equal(filter_norms(producer_of(model, dim)), expected), f"{arch.widths}: {dim}"
        with torch.no_grad():
            assert_same(extract(model, arch)(x), ref, f"{arch.widths}: slim, every dimension reordered")
    if name == "mobilenet_v1":
        assert constrained > 0, "some CBC width fell strictly inside a reordered space"


@pytest.mark.parametrize("dim, narrowed", [("b1.out", {"b2.out": 32}), ("b5.out", {"b6.out": 128})])
def test_reported_mobilenet_v1_cases_keep_every_prediction(dim, narrowed):
    """The issue's cases: a space read by a block bypassed at a narrower CBC width. Sorting the whole
    space changed these logits by 55% and 40% and the argmax of 0.4% and 20% of the inputs."""
    model = calibrated(lambda: build_supernet(ModelSpec("mobilenet_v1", (3, 32, 32), 10)))
    arch = model.space().with_widths(narrowed)
    x = torch.randn(256, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x, arch.widths)
        model.keep_largest_filters(dim, arch)
        after = model(x, arch.widths)
    relative = ((after - before).norm() / before.norm()).item()
    agreement = (after.argmax(1) == before.argmax(1)).float().mean().item()
    assert agreement == 1.0 and relative < 1e-5, f"relative change {relative:.3g}, agreement {agreement:.3f}"


def residual_chain() -> SearchableNetwork:
    """Searchable stem -> residual block without expansion -> residual block -> strided block
    without expansion: a reorderable channel space read by inverted residuals (no built-in model has one)."""
    blocks = [ConvBlock("stem", 3, 16, 3, 1, 8), InvertedResidual("b0", 16, 16, 1, 1, 8),
              InvertedResidual("b1", 16, 16, 1, 6, 8), InvertedResidual("b2", 16, 24, 2, 1, 8)]
    return SearchableNetwork(ModelSpec("residual_chain", (3, 8, 8), 5), blocks, Classifier(24, 5))


def test_a_stem_reordering_follows_residual_and_expansion_free_blocks():
    """A searchable stem read by residual inverted-residual blocks (one without expansion) and an
    expansion-free strided one: all of them follow the reordering (it used to raise)."""
    base = calibrated(residual_chain)
    rng, space = random.Random(1), base.space()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert base.can_reorder("stem")
    inside = space.with_widths({"b0.out": 8, "b1.out": 8})  # both CBC widths cut the stem's space
    for arch in [space, inside] + [random_arch(space, rng) for _ in range(12)]:
        model = copy.deepcopy(base)
        with torch.no_grad():
            ref = model(x, arch.widths)
        bounds = [arch.widths["b0.out"], arch.widths["b1.out"]]
        expected = expected_norms(filter_norms(model.blocks[0].op).clone(), arch.widths["stem"], bounds)
        model.keep_largest_filters("stem", arch)
        with torch.no_grad():
            assert_same(model(x, arch.widths), ref, f"{arch.widths}: masked")
            if arch.widths["stem"] == 16:  # a narrowed input to a residual block has no slim form
                assert_same(extract(model, arch)(x), ref, f"{arch.widths}: slim")
        assert torch.equal(filter_norms(model.blocks[0].op), expected), arch.widths


def test_largest_first_sorts_within_the_segments_cut_by_cbc_widths():
    norms = torch.tensor([1.0, 5.0, 2.0, 4.0, 3.0, 9.0, 0.5, 8.0])
    order = largest_first(norms, 6, [0, 2, 6, 7])  # 0 and widths >= 6 cut nothing
    assert order.tolist() == [1, 0, 5, 3, 4, 2, 6, 7]
    assert largest_first(norms, 8, []).tolist() == norms.argsort(descending=True).tolist()


def test_largest_first_stays_on_the_device_of_its_norms():
    """V1 on a GPU: the order is built where the filters are (the meta device stands in for CUDA,
    which CI has not: a CPU tensor mixed in fails on it the same way)."""
    norms = torch.rand(8, device="meta")
    assert largest_first(norms, 6, [2]).device == norms.device
