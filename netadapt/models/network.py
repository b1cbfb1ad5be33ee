"""`SearchableNetwork`: blocks in sequence, then a classifier; the built-in models' shared body."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.arch import Architecture, ArchitectureError, ModelSpec, pinned
from netadapt.layers import LayerSpec
from netadapt.models import reorder
from netadapt.models.blocks import Classifier
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
        self._space = Architecture(spec, pinned((d for b in blocks for d in b.dims()), spec.fixed))

    def space(self) -> Architecture:
        """The full search space, every width at its maximum."""
        return self._space

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor:
        widths = widths or {}
        pending_width = None  # the width the next consumer masks the channels to (None: all valid)
        for block in self.blocks:
            x, pending_width = block(x, widths, pending_width)
        return self.classifier(x, pending_width)

    def _check(self, arch: Architecture) -> dict[str, int]:
        return self._space.widths_of(arch)

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
        (cin, height, width), specs = self.spec.input_shape, []
        for block in self.blocks:
            part, cin, height, width = block.layers(widths, cin, height, width)
            specs += part
        return specs + self.classifier.layers(cin, height, width)

    # -- NetAdapt V1: keep the filters of largest L2 norm by moving them first (netadapt.models.reorder)

    def can_reorder(self, dim: str) -> bool:
        """Whether a block produces `dim` and every block reading its channels can follow a reordering."""
        return reorder.can_reorder([*self.blocks, self.classifier], dim, self._space.widths)

    def keep_largest_filters(self, dim: str, arch: Architecture) -> None:
        """Reorder the channel space `dim` so that, of the filters `arch` keeps, those of largest L2
        norm come first, without changing the function at `arch` (`reorder.keep_largest_filters`)."""
        widths = self._check(arch)
        if not self.can_reorder(dim):
            raise ArchitectureError(f"{dim}: not a reorderable dimension of {self.spec.name}")
        reorder.keep_largest_filters([*self.blocks, self.classifier], dim, widths, self._space.widths)
