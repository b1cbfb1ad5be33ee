"""bench/torch_pruning_baseline.py, shared by search_quality.py and any_model.py: the least pruning
ratio within a latency budget (scan, then bisection), and the pruned network rebuilt from its
recorded shape for the side-by-side timing."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from netadapt.resources.timing import ProfileSettings
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import torch_pruning_baseline as tpb  # noqa: E402  (bench/)

pytest.importorskip("torch_pruning")


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                         nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def test_the_least_ratio_within_the_budget_is_bisected_below_the_first_that_meets_it() -> None:
    settings = ProfileSettings("torch-cpu", warmup=1, repeats=2, network_repeats=4)
    # a budget every ratio meets: 0.1 passes the scan, one bisection step tries 0.05 and keeps it
    pruned = tpb.prune_to_latency(tiny(), 10.0, False, (3, 8, 8), 8, settings, seed=0, steps=1)
    assert [t["ratio"] for t in pruned.tries] == [0.1, 0.05] and pruned.ratio == 0.05
    params = sum(p.numel() for p in pruned.model.parameters())
    rebuilt = tpb.rebuild(tiny(), tpb.structure(pruned.model), params)
    assert rebuilt(torch.zeros(1, 3, 8, 8)).shape == (1, 10)
    assert tpb.structure(rebuilt) == tpb.structure(pruned.model)
    with pytest.raises(RuntimeError, match="parameters"):
        tpb.rebuild(tiny(), tpb.structure(pruned.model), params + 1)


def test_no_ratio_within_the_budget_is_said_with_the_best_reached() -> None:
    settings = ProfileSettings("torch-cpu", warmup=1, repeats=2, network_repeats=4)
    with pytest.raises(tpb.NoRatio, match="no pruning ratio up to 0.9 measures within the budget"):
        tpb.prune_to_latency(tiny(), 0.0, True, (3, 8, 8), 8, settings, seed=0, steps=0)
