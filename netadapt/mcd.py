"""Multi-layer coordinate descent (NetAdaptV2): the candidate generator.

Each candidate picks L dimensions at random, splits the iteration's cut among them at random, and
shrinks each one to the largest width (on its granularity grid) whose estimate gives its share. A
dimension that cannot give its share passes the remainder on, to the next chosen dimension, then
to further random ones. Only candidates that meet the target are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netadapt.arch import Architecture
from netadapt.resources import ResourceModel


@dataclass(frozen=True)
class Candidate:
    arch: Architecture
    resource: float


def shrink(arch: Architecture, resource: ResourceModel, dim: str, goal: float) -> tuple[Architecture, float, bool]:
    """Largest width of `dim` below its current one whose estimate is <= `goal`; else its minimum.

    Returns the new architecture, its estimate, and whether `goal` was met.
    """
    d = arch.dim(dim)
    last = (arch, resource.estimate(arch))
    for width in reversed([w for w in d.choices() if w < d.width]):
        trial = arch.with_widths({dim: width})
        estimate = resource.estimate(trial)
        if estimate <= goal:
            return trial, estimate, True
        last = (trial, estimate)
    return last[0], last[1], False


def generate_candidates(current: Architecture, current_resource: float, target: float, resource: ResourceModel,
                        count: int, layers: int, rng: np.random.Generator) -> list[Candidate]:
    """Up to `count` distinct candidates, each with estimate <= `target`."""
    found: dict[tuple, Candidate] = {}
    for _ in range(count):
        shrinkable = [d.name for d in current.dims if d.width > d.min_width]
        if not shrinkable:
            break
        order = list(rng.permutation(shrinkable))
        chosen, spare = order[:layers], order[layers:]
        shares = rng.dirichlet(np.ones(len(chosen))) * (current_resource - target)
        arch, estimate, goal = current, current_resource, current_resource
        for dim, share in zip(chosen, shares):
            goal -= share  # cumulative: what one dimension could not give, the next one is asked for
            arch, estimate, _ = shrink(arch, resource, dim, goal)
        for dim in spare:  # the remainder nobody could give, passed on to other dimensions
            if estimate <= target:
                break
            arch, estimate, _ = shrink(arch, resource, dim, target)
        if estimate <= target:
            found.setdefault(tuple(arch.widths.values()), Candidate(arch, estimate))
    return list(found.values())
