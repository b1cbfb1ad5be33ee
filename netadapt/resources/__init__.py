"""Resources: one protocol, `estimate(arch) -> float`, whatever the metric.

Search code sees only `ResourceModel`: MACs and parameters are analytic (from the model's layer
specs), latency comes from a lookup table measured on the target device. Any other metric, such as
energy or memory, plugs in by implementing the same two attributes and one method.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from netadapt.arch import Architecture


@runtime_checkable
class ResourceModel(Protocol):
    name: str  # "latency", "macs", "params"
    unit: str  # "ms", "MACs", "params"

    def estimate(self, arch: Architecture) -> float: ...


__all__ = ["ResourceModel"]
