"""Analytic resources: MACs and parameters, summed over the model's layer specs."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from netadapt.arch import Architecture
from netadapt.layers import total_macs, total_params


@dataclass
class MacsModel:
    """Multiply-accumulates of one forward pass (convolutions and linear layers)."""

    supernet: nn.Module
    name: str = "macs"
    unit: str = "MACs"

    def estimate(self, arch: Architecture) -> float:
        return float(total_macs(self.supernet.layers(arch)))


@dataclass
class ParamsModel:
    """Trainable parameters of the slim network (weights, biases, BN affine)."""

    supernet: nn.Module
    name: str = "params"
    unit: str = "params"

    def estimate(self, arch: Architecture) -> float:
        return float(total_params(self.supernet.layers(arch)))
