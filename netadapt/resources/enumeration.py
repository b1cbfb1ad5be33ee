"""The distinct units of a search space: what profiling must time, each once.

The cost of profiling grows with the number of distinct layer configurations, not with the size of
the space: a unit shared by a million architectures is listed, and timed, once.
"""

from __future__ import annotations

import itertools
import math

from torch import nn

from netadapt.errors import NetAdaptError
from netadapt.layers import LayerSpec

EXHAUSTIVE_LIMIT = 20_000  # architectures, for models that cannot enumerate their units block by block


def enumerate_layers(supernet: nn.Module) -> list[LayerSpec]:
    """Every distinct unit some architecture of the space runs, sorted.

    Traced networks (`netadapt.graph`) list them unit by unit; models built from blocks
    (`SearchableNetwork`) are walked block by block, carrying the set of
    reachable (channels, height, width) states; other models are enumerated exhaustively when their
    space is small enough.
    """
    if callable(getattr(supernet, "units", None)):  # traced networks list their units node by node
        return sorted(supernet.units(), key=lambda s: tuple(map(str, s.key())))
    if hasattr(supernet, "blocks") and hasattr(supernet, "classifier"):
        return sorted(_walk_blocks(supernet), key=lambda s: tuple(map(str, s.key())))
    space = supernet.space()
    size = math.prod(len(d.choices()) for d in space.dims)
    if size > EXHAUSTIVE_LIMIT:
        raise NetAdaptError(f"model.name: {space.model.name} has {size} architectures and no blocks to walk; "
                            f"give it `blocks` and `classifier` like SearchableNetwork to profile it")
    found: set[LayerSpec] = set()
    for combo in itertools.product(*(d.choices() for d in space.dims)):
        found.update(supernet.layers(space.with_widths(dict(zip((d.name for d in space.dims), combo)))))
    return sorted(found, key=lambda s: tuple(map(str, s.key())))


def _walk_blocks(supernet: nn.Module) -> set[LayerSpec]:
    """The units of every block at every width, from every input shape the blocks before it can
    produce, then the classifier's: the space's units without listing its architectures."""
    found: set[LayerSpec] = set()
    states = {tuple(supernet.spec.input_shape)}
    for block in supernet.blocks:
        dims = block.dims()
        nxt: set[tuple[int, int, int]] = set()
        for cin, h, w in states:
            for combo in itertools.product(*(d.choices() for d in dims)):
                specs, cout, oh, ow = block.layers(dict(zip((d.name for d in dims), combo)), cin, h, w)
                found.update(specs)
                nxt.add((cout, oh, ow))
        states = nxt
    for cin, h, w in states:
        found.update(supernet.classifier.layers(cin, h, w))
    return found
