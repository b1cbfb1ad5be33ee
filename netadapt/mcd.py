"""Multi-layer coordinate descent (NetAdaptV2): the candidate generator.

Each candidate picks L dimensions at random, splits the iteration's cut among them at random, and
shrinks each one to the largest width (on its granularity grid) whose estimate gives its share. A
dimension that cannot give its share passes the remainder on, to the next chosen dimension, then
to further random ones. Only candidates that meet the target are returned.

How the cut is split (`split`):
- `capacity` (default): each dimension, in random order, gives a random fraction (uniform) of what
  it *can* give (its resource down to its minimum width); the first L dimensions' parts are scaled
  down together when they would give more than the cut, and further dimensions join while the cut
  is not met. A dimension reaches its minimum only when its fraction is near 1, so candidates stay
  in the neighbourhood that coordinate descent is about, whatever the size of dR.
- `absolute`: random parts of the cut in absolute resource among L dimensions. A dimension whose
  part exceeds its capacity (most blocks of a small network at dR = 10% of the base) goes to its
  minimum and passes the rest on: on MobileNetV2, ~70% of candidates removed a block or emptied a
  width.
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


SPLITS = ("capacity", "absolute")


def capacity(arch: Architecture, resource: ResourceModel, dim: str, current_resource: float) -> float:
    """What `dim` can give: the resource saved by taking it to its minimum width (0 for a block)."""
    return max(current_resource - resource.estimate(arch.with_widths({dim: arch.dim(dim).min_width})), 0.0)


def generate_candidates(current: Architecture, current_resource: float, target: float, resource: ResourceModel,
                        count: int, layers: int, rng: np.random.Generator,
                        split: str = "capacity") -> list[Candidate]:
    """Up to `count` distinct candidates, each with estimate <= `target`."""
    found: dict[tuple, Candidate] = {}
    for _ in range(count):
        shrinkable = [d.name for d in current.dims if d.width > d.min_width]
        if not shrinkable:
            break
        order = list(rng.permutation(shrinkable))
        if split == "capacity":
            arch, estimate = _fractions_of_capacity(current, current_resource, target, order, layers, resource, rng)
        elif split == "absolute":
            arch, estimate = _parts_of_the_cut(current, current_resource, target, order, layers, resource, rng)
        else:
            raise ValueError(f"search.split: unknown {split!r} (known: {', '.join(SPLITS)})")
        for dim in order[layers:] + order[:layers]:  # the remainder nobody could give, passed on
            if estimate <= target:
                break
            arch, estimate, _ = shrink(arch, resource, dim, target)
        if estimate <= target:
            found.setdefault(tuple(arch.widths.values()), Candidate(arch, estimate))
    return list(found.values())


def _fractions_of_capacity(current: Architecture, current_resource: float, target: float, order: list[str],
                           layers: int, resource: ResourceModel, rng: np.random.Generator) -> tuple[Architecture, float]:
    """Dimensions in `order` each give a uniform random fraction of their capacity; the first
    `layers` ones' parts are scaled to the cut when they exceed it; others join until it is met."""
    fractions = rng.uniform(0.0, 1.0, len(order))
    gives = [f * capacity(current, resource, d, current_resource) for f, d in zip(fractions[:layers], order)]
    cut = current_resource - target
    scale = min(1.0, cut / sum(gives)) if sum(gives) > 0 else 1.0
    arch, estimate, goal = current, current_resource, current_resource
    for dim, give in zip(order, gives):
        goal -= give * scale  # cumulative: what one dimension could not give, the next is asked for
        arch, estimate, _ = shrink(arch, resource, dim, max(goal, target))
    for dim, fraction in zip(order[layers:], fractions[layers:]):
        if estimate <= target:
            break
        goal = max(estimate - fraction * capacity(arch, resource, dim, estimate), target)
        arch, estimate, _ = shrink(arch, resource, dim, goal)
    return arch, estimate


def _parts_of_the_cut(current: Architecture, current_resource: float, target: float, order: list[str],
                      layers: int, resource: ResourceModel, rng: np.random.Generator) -> tuple[Architecture, float]:
    """The first `layers` dimensions in `order` give Dirichlet-random parts of the cut."""
    shares = rng.dirichlet(np.ones(min(layers, len(order)))) * (current_resource - target)
    arch, estimate, goal = current, current_resource, current_resource
    for dim, share in zip(order, shares):
        goal -= share  # cumulative: what one dimension could not give, the next one is asked for
        arch, estimate, _ = shrink(arch, resource, dim, goal)
    return arch, estimate
