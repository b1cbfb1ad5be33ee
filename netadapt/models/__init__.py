"""Searchable models, registered by name.

Bringing your own model
-----------------------
Any `torch.nn.Module` can be searched if it satisfies `SearchableModel`:

- constructed as `Model(spec: ModelSpec)` (input shape, classes, width multiplier, granularity);
- `space() -> Architecture`: its searchable dimensions, every width at its maximum;
- `forward(x, widths=None)`: the masked super-network. `widths` maps a dimension name to an int
  (whole batch) or a LongTensor [B] (one width per sample, ordered dropout); channels >= width
  are zeroed (`netadapt.ordered_dropout.channel_mask`), bypassable blocks use
  `netadapt.bypass`; a missing name means full width;
- `extract(arch) -> nn.Module`: the physically slim network, whose outputs equal the masked
  forward's in eval mode;
- `layers(arch) -> list[LayerSpec]`: the ops that slim network runs (analytic MACs, parameters and
  latency lookup).

Select it with `model.name: "package.module:ClassName"` in params.yaml. The blocks in
`netadapt.models.blocks` implement all three views for common layers, and `SearchableNetwork`
chains them, so most models are a list of blocks (see `plain_cnn.py`). NetAdapt V1 also moves the
largest filters first in the blocks `netadapt.models.reorder` has a rule for (`RULES`).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from netadapt.arch import Architecture, ModelSpec
from netadapt.errors import ConfigError
from netadapt.layers import LayerSpec
from netadapt.models.registry import BUILTIN_MODELS
from netadapt.ordered_dropout import Widths


@runtime_checkable
class SearchableModel(Protocol):
    spec: ModelSpec

    def space(self) -> Architecture: ...

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor: ...

    def extract(self, arch: Architecture) -> nn.Module: ...

    def layers(self, arch: Architecture) -> list[LayerSpec]: ...


PROTOCOL_METHODS = ("space", "forward", "extract", "layers")


def resolve(name: str) -> type:
    """The model class for a registered name or a `package.module:Class` path.

    The attribute must be a `torch.nn.Module` subclass defining the protocol's methods, checked
    before anything is called: a name (from params or stored in a checkpoint) can point at a model
    class, never at an arbitrary callable such as `os:system`.
    """
    target = BUILTIN_MODELS.get(name, name)
    module_name, _, attr = target.partition(":")
    if not module_name or not attr.isidentifier():
        raise ConfigError(f"model.name: {target!r} is not a built-in model or a 'package.module:Class' path")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"model.name: cannot import {target!r} ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ConfigError(f"model.name: {target!r} is not a torch.nn.Module subclass "
                          f"(got {type(found).__name__}); it must implement the SearchableModel protocol")
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(found, m, None))
               or (m == "forward" and found.forward is nn.Module.forward)]
    if missing:
        raise ConfigError(f"model.name: {target!r} does not implement the SearchableModel protocol "
                          f"(spec, space, forward, extract, layers): missing {', '.join(missing)}")
    return found


def build_supernet(spec: ModelSpec) -> nn.Module:
    """Instantiate the super-network of `spec` and check that it satisfies the protocol."""
    model = resolve(spec.name)(spec)
    if not isinstance(model, SearchableModel):
        raise ConfigError(f"model.name: {spec.name!r} does not implement the SearchableModel protocol "
                          f"(spec, space, forward, extract, layers)")
    return model


def extract(supernet: SearchableModel, arch: Architecture) -> nn.Module:
    """The physically slim network of `arch`, with the super-network's weights (eval mode)."""
    return supernet.extract(arch).eval()


__all__ = ["SearchableModel", "build_supernet", "extract", "resolve", "BUILTIN_MODELS"]
