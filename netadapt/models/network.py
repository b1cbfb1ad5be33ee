"""`SearchableNetwork`: blocks in sequence, then a classifier; the built-in models' shared body."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from netadapt.arch import Architecture, ArchitectureError, ModelSpec
from netadapt.layers import LayerSpec
from netadapt.models.blocks import Classifier, ConvBN, filter_norms, permute_outputs
from netadapt.ordered_dropout import Widths


class SlimNetwork(nn.Sequential):
    """A physically slim network extracted from a super-network for one architecture."""


class SearchableNetwork(nn.Module):
    """Implements the `SearchableModel` protocol for a chain of blocks (see netadapt.models)."""

    def __init__(self, spec: ModelSpec, blocks: list[nn.Module], classifier: Classifier):
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList(blocks)
        self.classifier = classifier
        self._space = Architecture(spec, tuple(d for b in blocks for d in b.dims()))

    def space(self) -> Architecture:
        """The full search space, every width at its maximum."""
        return self._space

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor:
        widths = widths or {}
        stream = None
        for block in self.blocks:
            x, stream = block(x, widths, stream)
        return self.classifier(x, stream)

    def _check(self, arch: Architecture) -> dict[str, int]:
        if not self._space.same_space(arch):
            raise ArchitectureError(f"architecture: it belongs to another search space than this "
                                    f"{self.spec.name} super-network ({arch.model} vs {self.spec})")
        return arch.widths

    def extract(self, arch: Architecture) -> SlimNetwork:
        widths = self._check(arch)
        modules, cin = [], self.spec.input_shape[0]
        for block in self.blocks:
            module, cin = block.extract(widths, cin)
            if module is not None:
                modules.append(module)
        modules.append(self.classifier.extract(cin))
        return SlimNetwork(*modules)

    def layers(self, arch: Architecture) -> list[LayerSpec]:
        widths = self._check(arch)
        (cin, h, w), specs = self.spec.input_shape, []
        for block in self.blocks:
            part, cin, h, w = block.layers(widths, cin, h, w)
            specs += part
        return specs + self.classifier.layers(cin, h, w)

    # -- NetAdapt V1: keep the filters of largest L2 norm by moving them first ---------------------

    def can_reorder(self, dim: str) -> bool:
        """Whether a block produces `dim` and every block reading its channels can follow a reordering."""
        space = self._channel_space(dim)
        return space is not None and all(hasattr(b, "permute_input") for b in space[2])

    @torch.no_grad()
    def keep_largest_filters(self, dim: str, arch: Architecture) -> None:
        """Reorder the channel space `dim` so that, of the filters `arch` keeps, those of largest L2
        norm come first; the filters `arch` drops keep their place after them. The producer and
        every block reading the space are reordered together, so the network computes the same
        function at `arch` (masked and extracted).

        A bypassable (CBC) block reading the space ties its output channel k to input channel k
        from its CBC width w on, so no filter may cross w: each segment of [0, width) between such
        widths is sorted on its own, which keeps the largest filters any prefix can hold."""
        widths = self._check(arch)
        if not self.can_reorder(dim):
            raise ArchitectureError(f"{dim}: not a reorderable dimension of {self.spec.name}")
        block, producer, readers = self._channel_space(dim)
        bounds = [w for b in readers if (w := b.bypass_width(widths)) is not None]
        order = largest_first(filter_norms(producer), widths[dim], bounds)
        if not readers:
            block.permute_internal(dim, order)
            return
        permute_outputs(producer, order)
        for reader in readers:
            reader.permute_input(order)

    def _channel_space(self, dim: str) -> tuple[nn.Module, ConvBN, list[nn.Module]] | None:
        """The block producing `dim`, its filters, and the blocks reading them: none for a space
        inside the block (an expansion), else those after it up to the first that does not pass
        the channels on (its `bypass_width` is None, whatever the widths)."""
        for i, block in enumerate(self.blocks):
            producer = block.producer(dim) if hasattr(block, "producer") else None
            if producer is None:
                continue
            if hasattr(block, "internal") and block.internal(dim):
                return block, producer, []
            readers = []
            for reader in [*self.blocks[i + 1:], self.classifier]:
                readers.append(reader)
                if not hasattr(reader, "bypass_width") or reader.bypass_width(self._space.widths) is None:
                    break
            return block, producer, readers
        return None


def largest_first(norms: torch.Tensor, width: int, bounds: Iterable[int]) -> torch.Tensor:
    """The channel order putting the largest `norms` first within each segment of [0, width) cut at
    `bounds` (channels may not cross them); channels from `width` on keep their place."""
    cuts = sorted({0, width, *(b for b in bounds if 0 < b < width)})
    segments = [lo + torch.argsort(norms[lo:hi], descending=True, stable=True) for lo, hi in zip(cuts, cuts[1:])]
    return torch.cat([*segments, torch.arange(width, len(norms), device=norms.device)])
