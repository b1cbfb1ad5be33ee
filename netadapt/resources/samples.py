"""The networks a latency table is calibrated on and checked against.

Calibration networks (the full one, the smallest, a ladder of widths and a few random ones) set
the table's rescaling and fit; held-out networks, drawn so that none is a calibration network,
say how well the table predicts the rest of the space. Every sampler is seeded: the same space
and seed give the same networks, in the same order.
"""

from __future__ import annotations

import random

from netadapt.arch import Architecture

CALIBRATION_NETWORKS, CALIBRATION_SEED = 4, 10_007  # random networks besides the full and the smallest
# Calibration also measures every dimension at these fractions of its range above its narrowest
# non-zero width (no block removed): random networks all have mid-range widths, so without these the
# fit never sees narrow networks, where a unit timed alone is mostly per-call overhead.
WIDTH_LADDER = (0.0, 0.25, 0.5, 0.75)


def width_ladder(space: Architecture) -> list[tuple[str, Architecture]]:
    """Every dimension at each `WIDTH_LADDER` fraction of its range above its narrowest non-zero
    width (on its grid): no block removed, named `width0.25` etc.; `width0` is the narrowest."""
    def at(d, fraction: float) -> int:
        low = d.narrowest_width
        return low + d.granularity * round((d.max_width - low) * fraction / d.granularity)
    return [(f"width{fraction:g}", space.with_widths({d.name: at(d, fraction) for d in space.dims}))
            for fraction in WIDTH_LADDER]


def calibration_architectures(space: Architecture) -> list[tuple[str, Architecture]]:
    """The networks the table is rescaled (base) and fitted on: base, smallest, the width ladder and
    `CALIBRATION_NETWORKS` random ones, named, without duplicates."""
    picks, seen = [], set()
    sampled = sample_architectures(space, CALIBRATION_NETWORKS, CALIBRATION_SEED)
    for name, arch in sampled[:2] + width_ladder(space) + sampled[2:]:
        if arch.widths_json() not in seen:
            seen.add(arch.widths_json())
            picks.append((name.replace("random", "calibration"), arch))
    return picks


def held_out_architectures(space: Architecture, count: int, seed: int,
                           exclude: set[str]) -> list[tuple[str, Architecture]]:
    """Up to `count` distinct random architectures whose widths are not in `exclude` (widths JSON),
    named random0, random1, ...; fewer only in a space too small to hold them."""
    rng = random.Random(seed)
    seen, picks = set(exclude), []
    for _ in range(100 * count):
        if len(picks) == count:
            break
        arch = space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})
        if arch.widths_json() not in seen:
            seen.add(arch.widths_json())
            picks.append((f"random{len(picks)}", arch))
    return picks


def sample_architectures(space: Architecture, count: int, seed: int) -> list[tuple[str, Architecture]]:
    """The base, the smallest and `count` random architectures, named."""
    rng = random.Random(seed)
    picks = [("base", space), ("smallest", space.smallest())]
    for i in range(count):
        picks.append((f"random{i}", space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})))
    return picks
