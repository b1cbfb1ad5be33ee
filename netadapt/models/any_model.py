"""A user's own network: any `nn.Module` class or factory, torchvision's and timm's by name.

`model.name` names it: `package.module:Attr` (a class or a function returning a module),
`torchvision:<name>` or `timm:<name>`. It is called with `model.kwargs`, plus `num_classes` and
`in_channels` (timm: `in_chans`) from the data when its signature takes them. Nothing is downloaded:
torchvision's and timm's architectures are built with `weights=None` / `pretrained=False`; trained
weights come from the user's own file (`load_weights`).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from netadapt.arch import ModelSpec
from netadapt.errors import ConfigError, describe
from netadapt.models.source import HUBS

def factory(target: str) -> Callable[..., nn.Module]:
    """The class or function `target` names (imported: only for names the run's own params give)."""
    module_name, _, attr = target.partition(":")
    if module_name in HUBS:
        return _hub_factory(module_name, attr)
    if not module_name or not all(part.isidentifier() for part in attr.split(".")) or not attr:
        raise ConfigError(f"model.name: {target!r} is not a built-in model, a 'package.module:Attr' path, "
                          f"'torchvision:<name>' or 'timm:<name>'")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"model.name: cannot import {target!r} ({describe(exc)}); a module outside this "
                          f"project needs model.path or PYTHONPATH") from None
    if not callable(found) or (not isinstance(found, type) and not inspect.isfunction(found)):
        raise ConfigError(f"model.name: {target!r} is neither a torch.nn.Module class nor a function "
                          f"(got {type(found).__name__})")
    if isinstance(found, type) and not issubclass(found, nn.Module):
        raise ConfigError(f"model.name: {target!r} is a class but not a torch.nn.Module subclass")
    return found


def _hub_factory(hub: str, name: str) -> Callable[..., nn.Module]:
    if not name.replace("_", "").isalnum():
        raise ConfigError(f"model.name: {hub}:{name!r} is not a model name")
    try:
        if hub == "timm":
            timm = importlib.import_module("timm")
            return lambda **kwargs: timm.create_model(name, pretrained=False, **kwargs)
        models = importlib.import_module("torchvision.models")
    except Exception as exc:  # noqa: BLE001 - a broken install raises RuntimeError, not ImportError
        raise ConfigError(f"model.name: {hub}:{name} needs {hub}, which does not import here "
                          f"({describe(exc)})") from None
    found = getattr(models, name, None)
    if found is None or not callable(found):
        raise ConfigError(f"model.name: torchvision has no model {name!r}")
    return lambda **kwargs: found(weights=None, **kwargs)


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_module(target: str, spec: ModelSpec) -> nn.Module:
    """The user's network for `spec` (not yet searchable: see `netadapt.graph.TracedNetwork`)."""
    make = factory(target)
    kwargs: dict[str, Any] = dict(spec.kwargs)
    hub = target.partition(":")[0]
    if hub in HUBS or _accepts(make, "num_classes"):
        kwargs.setdefault("num_classes", spec.num_classes)
    channels = "in_chans" if hub == "timm" else "in_channels"
    if (hub == "timm" or _accepts(make, channels)) and hub != "torchvision":
        kwargs.setdefault(channels, spec.input_shape[0])
    try:
        module = make(**kwargs)
    except TypeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"model.kwargs: {target}({given}) fails ({describe(exc)}); give its arguments in "
                          f"model.kwargs") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"model.name: {target} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def load_weights(module: nn.Module, path: str | Path, allow_pickle: bool = False) -> None:
    """Load a user's trained weights (a state dict; a whole pickled module only with `allow_pickle`,
    since unpickling runs code). A file that does not fit names the first mismatching key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.checkpoint: {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a bad file
        hint = " (a pickled module needs model.checkpoint_pickle: true)" if not allow_pickle else ""
        raise ConfigError(f"model.checkpoint: {path} is not a loadable state dict{hint} ({describe(exc)})") from None
    if isinstance(blob, nn.Module):
        blob = blob.state_dict()
    if isinstance(blob, Mapping) and "state_dict" in blob and isinstance(blob["state_dict"], Mapping):
        blob = blob["state_dict"]
    if not isinstance(blob, Mapping):
        raise ConfigError(f"model.checkpoint: {path} holds a {type(blob).__name__}, not a state dict")
    own = module.state_dict()
    for key, value in blob.items():
        if key not in own:
            raise ConfigError(f"model.checkpoint: {path}: key {key!r} is not in the model "
                              f"(its keys start {', '.join(list(own)[:3])})")
        if not isinstance(value, torch.Tensor) or value.shape != own[key].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ConfigError(f"model.checkpoint: {path}: key {key!r} has shape {shape}, the model's "
                              f"{tuple(own[key].shape)}")
    missing = [k for k in own if k not in blob]
    if missing:
        raise ConfigError(f"model.checkpoint: {path}: key {missing[0]!r} of the model is missing "
                          f"({len(missing)} missing)")
    module.load_state_dict(blob)
