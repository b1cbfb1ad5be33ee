"""The Torch-Pruning baseline shared by the benches: L2-magnitude `MetaPruner` (uniform or global
ranking, the classifier kept, widths rounded to the search's granularity) of a trained network, its
pruning ratio the least whose network, timed beside the base, measures within a latency budget; and
the pruned network's shape, enough to rebuild it for the side-by-side timing."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from netadapt.resources.metric import ProfileSettings
from netadapt.resources.timing import module_latencies

TP_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # scanned before bisecting (latency is not monotone in it)
log = logging.getLogger("bench")


class NoRatio(Exception):
    """No pruning ratio up to the largest meets the budget."""


def torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError:
        raise SystemExit("this benchmark needs Torch-Pruning: pip install 'torch-pruning==1.6.1' --no-deps "
                         "(or pip install -e '.[bench]')") from None
    return tp


def tp_prune(module: nn.Module, ratio: float, global_pruning: bool, shape: tuple[int, ...], round_to: int,
             classes: int = 10) -> nn.Module:
    """A pruned copy of `module`: Torch-Pruning's MetaPruner, L2 magnitude, the classifier (the linear
    layer of `classes` outputs) kept, widths rounded to multiples of `round_to` (the search's granularity;
    odd widths also run slower here)."""
    tp = torch_pruning()
    model = copy.deepcopy(module).cpu().eval()
    head = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == classes]
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, *shape), importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=ratio, global_pruning=global_pruning, max_pruning_ratio=max(TP_RATIOS),
                                  ignored_layers=head, round_to=round_to)
    pruner.step()
    return model


@dataclass
class Pruned:
    """The pruned network meeting the budget, its ratio and every ratio tried (`latency_ratio`: measured / base)."""

    model: nn.Module
    ratio: float
    tries: list[dict]


def prune_to_latency(base: nn.Module, budget: float, global_pruning: bool, shape: tuple[int, ...], round_to: int,
                     settings: ProfileSettings, seed: int, steps: int, classes: int = 10) -> Pruned:
    """The least pruning of `base` that measures within `budget` (a fraction of the base's latency), each
    try timed beside the base: the first of `TP_RATIOS` within it, then bisected `steps` times below."""
    tries: list[dict] = []

    def measured(ratio: float) -> tuple[nn.Module, float]:
        model = tp_prune(base, ratio, global_pruning, shape, round_to, classes)
        base_ms, ms = module_latencies([base.eval(), model], shape, settings, seed)
        tries.append({"ratio": round(ratio, 4), "latency_ratio": ms / base_ms})
        log.info("torch-pruning %s ratio %.4f: %.3f of the base", "global" if global_pruning else "uniform", ratio,
                 ms / base_ms)
        return model, ms / base_ms

    low, best, model = 0.0, None, None
    for ratio in TP_RATIOS:
        candidate, latency = measured(ratio)
        if latency <= budget:
            best, model = ratio, candidate
            break
        low = ratio
    if best is None or model is None:
        raise NoRatio(f"no pruning ratio up to {max(TP_RATIOS)} measures within the budget (best: "
                      f"{min(t['latency_ratio'] for t in tries):.3f} of the base)")
    high = best
    for _ in range(steps):
        mid = (low + high) / 2
        candidate, latency = measured(mid)
        if latency <= budget:
            high, best, model = mid, mid, candidate
        else:
            low = mid
    return Pruned(model, best, tries)


def structure(model: nn.Module) -> dict[str, list[int]]:
    """A pruned network's shape, all the timing needs: each conv's (in, out, groups), each batch
    norm's features, each linear layer's (in, out)."""
    shapes = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            shapes[name] = [m.in_channels, m.out_channels, m.groups]
        elif isinstance(m, nn.BatchNorm2d):
            shapes[name] = [m.num_features]
        elif isinstance(m, nn.Linear):
            shapes[name] = [m.in_features, m.out_features]
    return shapes


def rebuild(base: nn.Module, shapes: dict[str, list[int]], params: int) -> nn.Module:
    """The base module with every layer resized to `shapes` (weights fresh: latency does not depend on
    them), checked against the pruned network's parameter count."""
    model = copy.deepcopy(base)
    for name, dims in shapes.items():
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent)
        old = getattr(owner, attr)
        if isinstance(old, nn.Conv2d):
            new = nn.Conv2d(dims[0], dims[1], old.kernel_size, old.stride, old.padding, old.dilation, dims[2],
                            old.bias is not None)
        elif isinstance(old, nn.BatchNorm2d):
            new = nn.BatchNorm2d(dims[0])
        else:
            new = nn.Linear(dims[0], dims[1], old.bias is not None)
        setattr(owner, attr, new)
    if (count := sum(p.numel() for p in model.parameters())) != params:
        raise RuntimeError(f"rebuilt network has {count} parameters, the pruned one had {params}")
    return model.eval()
