"""Model-level checks of the params that need the model itself: run by a stage before it builds,
trains or profiles a super-network (the config package checks the params alone)."""

from __future__ import annotations

import dataclasses

import torch

from netadapt.arch import ModelSpec
from netadapt.errors import ConfigError
from netadapt.models import build_supernet, implements_protocol, resolve
from netadapt.models.source import importable


def check_model_widths(spec: ModelSpec) -> None:
    """Model-level check of `model.granularity` and `model.width_mult` (a `ModelSpec`), before a
    super-network is built, trained or profiled.

    Every searchable width the model asks for (the model built at granularity 1 on the meta device:
    no memory, milliseconds) must hold at least one granularity step. Below it, the width is rounded
    *up* to the granularity: a tiny `width_mult` would not shrink the network (widths never reach 0,
    they all become the granularity), and a granularity above the smallest width builds a far wider
    network than asked (for mobilenet_v2 and 4096: about a billion parameters).

    A traced network (a plain `nn.Module`, `mobilenet_v3` included) is not checked: it is built the
    same at every granularity, which only sets its search grid (its greatest common divisor with each
    width), so nothing is rounded up.
    """
    with importable(spec.path, spec.name):
        if not implements_protocol(resolve(spec.name)):
            return

    def smallest(width_mult: float):
        try:
            with torch.device("meta"):
                model = build_supernet(dataclasses.replace(spec, width_mult=width_mult, granularity=1))
            dims = [d for d in model.space().dims if d.kind == "width"]  # kernel sizes have no granularity
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - a user model that cannot be built on the meta device: not checked here
            return None
        return min(dims, key=lambda d: d.max_width) if dims else None

    g, m = spec.granularity, spec.width_mult
    dim = smallest(m)
    if dim is None or dim.max_width >= g:
        return
    nominal = smallest(1.0) if m < 1.0 else None
    if nominal is not None and nominal.max_width >= g:
        raise ConfigError(f"model.width_mult: {m:g} narrows {spec.name}'s smallest searchable width ({dim.name}) "
                          f"to {dim.max_width} channel(s), below model.granularity {g}: widths would be rounded up "
                          f"to {g}, not shrunk; use a width_mult of at least {g / nominal.max_width:.3g} or a "
                          f"smaller granularity")
    raise ConfigError(f"model.granularity: {g} is larger than {spec.name}'s smallest searchable width "
                      f"({dim.name}: {dim.max_width} channels at model.width_mult {m:g}): widths would be rounded "
                      f"up to {g}, building a wider network than asked; use a granularity of at most {dim.max_width}")
