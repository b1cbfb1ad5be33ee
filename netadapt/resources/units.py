"""Standalone modules for layer specs: what the latency table measures, built from the same classes
that extraction uses, so a unit costs alone what it costs inside the slim network."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.bypass import Bypass, ResidualBypass
from netadapt.layers import LayerSpec
from netadapt.models.blocks import ACTIVATIONS


class _Const(nn.Module):
    """Stands in for a block's body, whose units are measured on their own: returns its output.
    (Its call costs what the body's container call costs inside the slim network.)"""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


def build_unit(spec: LayerSpec, batch_size: int = 1) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A module running `spec` alone, in eval mode, and random inputs for it."""
    x = torch.randn(batch_size, spec.cin, spec.h, spec.w)
    if spec.op == "conv":
        parts: list[nn.Module] = [nn.Conv2d(spec.cin, spec.cout, spec.kernel, spec.stride, spec.kernel // 2,
                                            groups=spec.groups, bias=spec.bias)]
        if spec.norm:
            parts.append(nn.BatchNorm2d(spec.cout))
        if spec.act:
            parts.append(ACTIVATIONS[spec.act]())
        return nn.Sequential(*parts).eval(), (x,)
    if spec.op in ("add", "partial_add"):  # the residual wrapper around a branch of `cout` channels
        body = _Const(torch.randn(batch_size, spec.cout, spec.h, spec.w))
        return ResidualBypass(body, spec.cout, spec.cin).eval(), (x,)
    if spec.op == "bypass_cat":  # a plain block's CBC wrapper around a body of `cout` channels
        body = _Const(torch.randn(batch_size, spec.cout, spec.h, spec.w))
        return Bypass(body, spec.cout, spec.cin).eval(), (x,)
    if spec.op == "avgpool":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)).eval(), (x,)
    if spec.op == "linear":
        return nn.Linear(spec.cin, spec.cout, bias=spec.bias).eval(), (torch.randn(batch_size, spec.cin),)
    raise ValueError(f"no unit for op {spec.op!r}")
