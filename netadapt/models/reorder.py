"""NetAdapt V1's filter reordering: keep the filters of largest L2 norm by moving them first.

A dimension's *channel space* is made by the filters of one ConvBN (its block's `producer`) and read
by the blocks after it, up to the first that does not pass the channels on; an expansion width is a
space inside its block, read by no other. Reordering the space permutes the producer's filters and
every reader's input channels together, so the network computes the same function; slicing the
first `width` channels then keeps the largest filters.

`RULES` says, per block kind, how its filters are found and how it follows a reordering. A block
kind without a rule produces no reorderable space, cannot follow one and ends any it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from netadapt.models.blocks import Classifier, ConvBlock, ConvBN, DepthwiseSeparable, InvertedResidual


def filter_norms(convbn: ConvBN) -> torch.Tensor:
    """L2 norm of each output filter (the ECCV'18 NetAdapt criterion)."""
    return convbn.conv.weight.detach().flatten(1).norm(dim=1)


def _take(t: torch.Tensor, order: torch.Tensor, axis: int) -> None:
    t.data.copy_(t.data.index_select(axis, order))


def permute_outputs(convbn: ConvBN, order: torch.Tensor) -> None:
    """Reorder a ConvBN's output channels (filters, BN affine and statistics)."""
    _take(convbn.conv.weight, order, 0)
    for name in ("weight", "bias", "running_mean", "running_var"):
        _take(getattr(convbn.bn, name), order, 0)


def permute_inputs(layer: nn.Module, order: torch.Tensor) -> None:
    """Reorder the input channels a dense conv or linear layer reads."""
    _take(layer.weight, order, 1)


@dataclass(frozen=True)
class BlockRule:
    """How one block kind takes part in reordering a channel space.

    - `producer(block, dim)`: the ConvBN whose filters make the space `dim`, if the block makes it;
    - `follow(block, order)`: reorder what the block reads from its input channels (and, when it
      passes them on, its own matching output channels);
    - `passes_on(block, widths)`: the CBC width from which output channel k is input channel k, so
      the space goes on to the next block; None when the block ends the space;
    - `inside(block, order)`: reorder a space the block makes and reads itself (an expansion);
      None when every space it makes is read by the blocks after it.
    """

    producer: Callable[[Any, str], ConvBN | None]
    follow: Callable[[Any, torch.Tensor], None]
    passes_on: Callable[[Any, Mapping[str, int]], int | None]
    inside: Callable[[Any, torch.Tensor], None] | None = None


def _ends_the_space(block: nn.Module, widths: Mapping[str, int]) -> None:
    return None  # a dense conv or the classifier's linear layer


def _follow_inverted_residual(block: InvertedResidual, order: torch.Tensor) -> None:
    """The input feeds the expansion (without one: the depthwise conv and the projection). A
    residual block adds it to its output channel for channel, so the branch outputs follow."""
    if block.expand is not None:
        permute_inputs(block.expand.conv, order)
    else:
        permute_outputs(block.dw, order)
        permute_inputs(block.project.conv, order)
    if block.residual:
        permute_outputs(block.project, order)


def _reorder_expansion(block: InvertedResidual, order: torch.Tensor) -> None:
    """The expansion space: expand filters, depthwise channels, projection inputs."""
    permute_outputs(block.expand, order)
    permute_outputs(block.dw, order)
    permute_inputs(block.project.conv, order)


def _follow_depthwise_separable(block: DepthwiseSeparable, order: torch.Tensor) -> None:
    """Depthwise channels follow the input; a bypassable block passes it on (output channel k is
    input channel k beyond its CBC width), so its own output channels follow too."""
    permute_outputs(block.dw, order)
    permute_inputs(block.pw.conv, order)
    if block.bypassable:
        permute_outputs(block.pw, order)


RULES: dict[type, BlockRule] = {
    ConvBlock: BlockRule(producer=ConvBlock.producer, follow=lambda b, order: permute_inputs(b.op.conv, order),
                         passes_on=_ends_the_space),
    InvertedResidual: BlockRule(
        producer=InvertedResidual.producer, follow=_follow_inverted_residual,
        # a residual block passes its input on; its branch adds to channels < `<name>.out` only
        passes_on=lambda b, widths: b.out_width(widths) if b.residual else None,
        inside=_reorder_expansion),
    DepthwiseSeparable: BlockRule(
        producer=DepthwiseSeparable.producer, follow=_follow_depthwise_separable,
        # output channel k is the body's below the CBC width, the input's from it on
        passes_on=lambda b, widths: widths[b.dim.name] if b.bypassable else None),
    Classifier: BlockRule(producer=lambda b, dim: None, follow=lambda b, order: permute_inputs(b.linear, order),
                          passes_on=_ends_the_space),
}


def rule_of(block: nn.Module) -> BlockRule | None:
    """The rule of `block`'s kind (a subclass inherits its base's), None for a kind without one."""
    return next((RULES[kind] for kind in type(block).__mro__ if kind in RULES), None)


@dataclass(frozen=True)
class ChannelSpace:
    """The blocks a reordering of one dimension touches: none but the maker for a space inside it."""

    maker: nn.Module
    filters: ConvBN
    readers: list[nn.Module]


def channel_space(chain: Sequence[nn.Module], dim: str, full: Mapping[str, int]) -> ChannelSpace | None:
    """The block of `chain` producing `dim`, its filters, and the blocks reading them: none for a
    space inside the block, else those after it up to the first that does not pass the channels on
    (`passes_on` None at the `full` widths, whatever the widths)."""
    for i, block in enumerate(chain):
        rule = rule_of(block)
        producer = rule.producer(block, dim) if rule is not None else None
        if producer is None:
            continue
        if rule.inside is not None:
            return ChannelSpace(block, producer, [])
        readers = []
        for reader in chain[i + 1:]:
            readers.append(reader)
            reader_rule = rule_of(reader)
            if reader_rule is None or reader_rule.passes_on(reader, full) is None:
                break
        return ChannelSpace(block, producer, readers)
    return None


def can_reorder(chain: Sequence[nn.Module], dim: str, full: Mapping[str, int]) -> bool:
    """Whether a block produces `dim` and every block reading its channels can follow a reordering."""
    space = channel_space(chain, dim, full)
    return space is not None and all(rule_of(b) is not None for b in space.readers)


@torch.no_grad()
def keep_largest_filters(chain: Sequence[nn.Module], dim: str, widths: Mapping[str, int],
                         full: Mapping[str, int]) -> None:
    """Reorder the channel space `dim` (reorderable: see `can_reorder`) so that, of the filters
    `widths` keeps, those of largest L2 norm come first; the filters it drops keep their place after
    them. The producer and every block reading the space are reordered together, so the network
    computes the same function at `widths` (masked and extracted).

    A bypassable (CBC) block reading the space ties its output channel k to input channel k from
    its CBC width w on, so no filter may cross w: each segment of [0, width) between such widths is
    sorted on its own, which keeps the largest filters any prefix can hold."""
    space = channel_space(chain, dim, full)
    bounds = [w for b in space.readers if (w := rule_of(b).passes_on(b, widths)) is not None]
    order = largest_first(filter_norms(space.filters), widths[dim], bounds)
    if not space.readers:
        rule_of(space.maker).inside(space.maker, order)
        return
    permute_outputs(space.filters, order)
    for reader in space.readers:
        rule_of(reader).follow(reader, order)


def largest_first(norms: torch.Tensor, width: int, bounds: Iterable[int]) -> torch.Tensor:
    """The channel order putting the largest `norms` first within each segment of [0, width) cut at
    `bounds` (channels may not cross them); channels from `width` on keep their place."""
    cuts = sorted({0, width, *(b for b in bounds if 0 < b < width)})
    segments = [lo + torch.argsort(norms[lo:hi], descending=True, stable=True) for lo, hi in zip(cuts, cuts[1:])]
    return torch.cat([*segments, torch.arange(width, len(norms), device=norms.device)])
