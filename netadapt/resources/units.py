"""Standalone modules for layer specs: what the latency table measures, built from the same classes
that extraction uses, so a unit costs alone what it costs inside the slim network."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.activations import ACTIVATIONS
from netadapt.bypass import Bypass, ResidualBypass
from netadapt.layers import LayerSpec


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
        parts: list[nn.Module] = [nn.Conv2d(spec.cin, spec.cout, spec.kernel, spec.stride, spec.pad,
                                            spec.dilation, groups=spec.groups, bias=spec.bias)]
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
    if spec.op == "act":
        return ACTIVATIONS[spec.act]().eval(), (x,)
    if spec.op == "norm":
        return nn.BatchNorm2d(spec.cin).eval(), (x,)
    if spec.op == "pool":
        return _pool(spec).eval(), (x,)
    if spec.op == "eltwise":
        return _Eltwise(spec.mode).eval(), _eltwise_inputs(spec, x)
    if spec.op == "cat":  # `groups` parts of about equal width
        sizes = [spec.cin // spec.groups + (i < spec.cin % spec.groups) for i in range(spec.groups)]
        return _Cat().eval(), tuple(torch.randn(batch_size, c, spec.h, spec.w) for c in sizes)
    if spec.op == "resize":
        return nn.Upsample(scale_factor=spec.stride, mode=spec.mode or "nearest").eval(), (x,)
    raise ValueError(f"no unit for op {spec.op!r}")


def _pool(spec: LayerSpec) -> nn.Module:
    if spec.mode == "max":
        return nn.MaxPool2d(spec.kernel, spec.stride, spec.pad)
    if spec.mode == "avg":
        return nn.AvgPool2d(spec.kernel, spec.stride, spec.pad)
    if spec.mode == "adaptive_max":
        return nn.AdaptiveMaxPool2d(spec.kernel)
    if spec.mode == "adaptive_avg":
        return nn.AdaptiveAvgPool2d(spec.kernel)
    raise ValueError(f"no pooling unit for mode {spec.mode!r}")


class _Eltwise(nn.Module):
    """An element-wise binary op: `add`/`mul`/`sub`/`div` of equal shapes, `scale` by a [B, C, 1, 1]
    gate, or `<op>_scalar` with a number."""

    def __init__(self, mode: str):
        super().__init__()
        self.op = mode.removesuffix("_scalar").replace("scale", "mul")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        other = 3.0 if y is None else y
        return {"add": torch.add, "mul": torch.mul, "sub": torch.sub, "div": torch.div}[self.op](x, other)


def _eltwise_inputs(spec: LayerSpec, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if spec.mode.endswith("_scalar"):
        return (x,)
    if spec.mode == "scale":
        return x, torch.rand(x.shape[0], spec.cin, 1, 1)
    return x, torch.rand_like(x) + 0.5


class _Cat(nn.Module):
    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts, dim=1)
