"""`SearchableNetwork`: blocks in sequence, then a classifier; the built-in models' shared body."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.arch import Architecture, ArchitectureError, ModelSpec
from netadapt.layers import LayerSpec
from netadapt.models.blocks import Classifier, filter_norms, permute_outputs
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
        return any(b.producer(dim) is not None for b in self.blocks)

    @torch.no_grad()
    def keep_largest_filters(self, dim: str, width: int) -> None:
        """Reorder the channel space `dim` so that its `width` currently kept filters of largest L2
        norm come first (the others keep their order after them); producer and every consumer are
        reordered together, so the network computes the same function. Bypass (CBC) widths cannot
        be reordered: channel k of a bypassed block is tied to input channel k."""
        for i, block in enumerate(self.blocks):
            producer = block.producer(dim)
            if producer is None:
                continue
            norms = filter_norms(producer)
            kept = torch.argsort(norms[:width], descending=True, stable=True)
            order = torch.cat([kept, torch.arange(width, len(norms))])
            if hasattr(block, "permute_internal") and block.permute_internal(dim, order):
                return
            permute_outputs(producer, order)
            for consumer in list(self.blocks[i + 1:]) + [self.classifier]:
                if not consumer.permute_input(order):
                    return
            return
        raise ArchitectureError(f"{dim}: not a reorderable dimension of {self.spec.name}")
