"""Searchable models, registered by name.

Bringing your own model
-----------------------
Any `torch.nn.Module` can be searched as it is: `model.name: "package.module:Attr"` (a class or a
factory), `torchvision:<name>` or `timm:<name>`; it is traced and its coupled channel groups become the
search dimensions (`netadapt.graph`). A model can instead implement `SearchableModel` itself:

- constructed as `Model(spec: ModelSpec)` (input shape, classes, width multiplier, granularity);
- `space() -> Architecture`: its searchable dimensions, every width at its maximum, those that
  `spec.fixed` (`model.fixed`) names held there (`netadapt.arch.pinned`);
- `forward(x, widths=None)`: the masked super-network. `widths` maps a dimension name to an int
  (whole batch) or a LongTensor [B] (one width per sample, ordered dropout); channels >= width
  are zeroed (`netadapt.ordered_dropout.channel_mask`), bypassable blocks use
  `netadapt.bypass`; a missing name means full width;
- `extract(arch) -> nn.Module`: the physically slim network, whose outputs equal the masked
  forward's in eval mode;
- `layers(arch) -> list[LayerSpec]`: the ops that slim network runs (analytic MACs, parameters and
  latency lookup).

The blocks in
`netadapt.models.blocks` implement all three views for common layers, and `SearchableNetwork`
chains them, so most models are a list of blocks (see `plain_cnn.py`). NetAdapt V1 also moves the
largest filters first in the blocks `netadapt.models.reorder` has a rule for (`RULES`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from netadapt.arch import Architecture, ModelSpec, pinned
from netadapt.errors import ConfigError
from netadapt.layers import LayerSpec
from netadapt.models import any_model
from netadapt.models.registry import BUILTIN_MODELS
from netadapt.models.source import importable
from netadapt.ordered_dropout import Widths

BUILT_FROM_SPEC = ("width_mult", "image_size")  # a built-in plain module's arguments from the spec (`_sized`)


@runtime_checkable
class SearchableModel(Protocol):
    spec: ModelSpec

    def space(self) -> Architecture: ...

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor: ...

    def extract(self, arch: Architecture) -> nn.Module: ...

    def layers(self, arch: Architecture) -> list[LayerSpec]: ...


PROTOCOL_METHODS = ("space", "forward", "extract", "layers")


def implements_protocol(found: object) -> bool:
    """Whether `found` is a model class written against `SearchableModel` (built from `ModelSpec`)."""
    return isinstance(found, type) and issubclass(found, nn.Module) and found.forward is not nn.Module.forward \
        and all(callable(getattr(found, m, None)) for m in PROTOCOL_METHODS)


def resolve(name: str) -> Callable[..., nn.Module]:
    """The class or factory a built-in name or `model.name` path names (see `any_model.factory`)."""
    return any_model.factory(BUILTIN_MODELS.get(name, name))


def build_supernet(spec: ModelSpec, checkpoint: str | Path | None = None,
                   allow_pickle: bool = False) -> nn.Module:
    """The super-network of `spec`: a `SearchableModel` class built from the spec, or any other
    network traced into one (`netadapt.graph.TracedNetwork`). `checkpoint`: the user's trained
    weights (`model.checkpoint`), loaded into the network before it becomes a super-network."""
    with importable(spec.path, spec.name):
        return _build(spec, checkpoint, allow_pickle)


def _build(spec: ModelSpec, checkpoint: str | Path | None, allow_pickle: bool) -> nn.Module:
    make = resolve(spec.name)
    if implements_protocol(make):
        model = make(spec)
        if checkpoint is not None:
            any_model.load_weights(model, checkpoint, allow_pickle)
        if not isinstance(model, SearchableModel):
            raise ConfigError(f"model.name: {spec.name!r} does not implement the SearchableModel protocol "
                              f"(spec, space, forward, extract, layers)")
        dims = model.space().dims
        if pinned(dims, spec.fixed) != dims:
            raise ConfigError(f"model.fixed: {spec.name} implements SearchableModel, and its space() leaves "
                              f"dimensions that model.fixed names free: build its Architecture from "
                              f"netadapt.arch.pinned(dims, spec.fixed), as SearchableNetwork does")
        return model
    from netadapt.graph import TracedNetwork  # torch.fx: only for traced models

    module = any_model.build_module(BUILTIN_MODELS.get(spec.name, spec.name), _sized(spec))
    if checkpoint is not None:
        any_model.load_weights(module, checkpoint, allow_pickle)
    return TracedNetwork(spec, module)


def _sized(spec: ModelSpec) -> ModelSpec:
    """The spec a plain module is built from: a built-in one (`mobilenet_v3`) is also given
    `model.width_mult` and the input's side (`image_size`, the smaller of height and width), as the
    library's own models are sized by the model section and the data; a user's module gets its
    `model.kwargs` alone."""
    if spec.name not in BUILTIN_MODELS:
        return spec
    kwargs = dict(spec.kwargs)
    for key in BUILT_FROM_SPEC:
        if key in kwargs:
            source = "model.width_mult" if key == "width_mult" else "the data"
            raise ConfigError(f"model.kwargs: {key} of the built-in {spec.name} comes from {source}; "
                              f"remove it from model.kwargs")
    kwargs.update(width_mult=spec.width_mult, image_size=min(spec.input_shape[1:]))
    return dataclasses.replace(spec, kwargs=kwargs)


def extract(supernet: SearchableModel, arch: Architecture) -> nn.Module:
    """The physically slim network of `arch`, with the super-network's weights (eval mode)."""
    return supernet.extract(arch).eval()


__all__ = ["SearchableModel", "build_supernet", "extract", "resolve", "BUILTIN_MODELS"]
