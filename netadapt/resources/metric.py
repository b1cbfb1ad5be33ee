"""The search metric as the config asks for it: which `ResourceModel` estimates it, how the device
times a whole network (`profile.*`), and how the search checks its answer on the device.

Latency comes from the profiled lookup table, refused if it was measured for another setting than
`profile.*` asks for; MACs and parameters are exact, so they need no table and no measurement.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from torch import nn

from netadapt.arch import Architecture
from netadapt.config import Config, ProfileConfig
from netadapt.resources import ResourceModel
from netadapt.resources.analytic import MacsModel, ParamsModel
from netadapt.resources.command import CommandSettings
from netadapt.resources.lookup_table import LatencyModel, LatencyTable, TableContext
from netadapt.resources.timing import ProfileSettings, network_latencies


def profile_settings(p: ProfileConfig) -> ProfileSettings:
    """How `profile.*` times a module (the `command` backend's device included)."""
    command = CommandSettings(p.command, p.command_pattern, p.command_timeout) if p.backend == "command" else None
    return ProfileSettings(p.backend, p.threads, p.batch_size, p.warmup, p.repeats, p.network_repeats, command)


def latency_table(p: ProfileConfig, lut: Path) -> LatencyTable:
    """The profiled table, refused if it was measured for another setting than `profile.*` asks."""
    table = LatencyTable.load(lut, p.interpolate)
    command = p.command if p.backend == "command" else None
    table.check(TableContext.current(p.backend, p.threads, p.batch_size, command), p.allow_mismatch)
    return table


def resource_model(cfg: Config, supernet: nn.Module, lut: Path) -> ResourceModel:
    """The search metric (`search.metric`) as a `ResourceModel` of the super-network's space."""
    if cfg.search.metric == "macs":
        return MacsModel(supernet)
    if cfg.search.metric == "params":
        return ParamsModel(supernet)
    return LatencyModel(supernet, latency_table(cfg.profile, lut))


def network_times(p: ProfileConfig, supernet: nn.Module, archs: list[Architecture], seed: int,
                  warmup: int | None = None, repeats: int | None = None) -> list[float]:
    """Whole networks of the super-network's space timed on the device as `profile.*` says, side by
    side (ms each; evaluate times with its own warm-up and repeats)."""
    settings = profile_settings(p)
    if warmup is not None:
        settings = replace(settings, warmup=warmup, network_repeats=repeats)
    return network_latencies(supernet, archs, settings, seed)


def measured_budget(cfg: Config, supernet: nn.Module) -> tuple[Callable[[Architecture], float], float]:
    """How the search checks its answer on the device, and the limit: the answer's latency as a
    fraction of the base network measured beside it (a relative budget: drift cancels out), or in ms
    (an absolute one), timed as `profile.*` times whole networks."""
    s, space = cfg.search, supernet.space()

    def measure(arch: Architecture) -> float:
        base_ms, ms = network_times(cfg.profile, supernet, [space, arch], cfg.seed)
        return ms / base_ms if s.budget_type == "relative" else ms
    return measure, s.budget


def latency_reach(supernet: nn.Module, table: LatencyTable) -> dict[str, float]:
    """How far the search can go, as fractions of the base network's estimated latency: every
    dimension at its smallest non-zero width (width alone, no block removed), and every dimension at
    its minimum (blocks removed too). A budget below the first needs depth; below the second, a
    smaller model or input."""
    space, latency = supernet.space(), LatencyModel(supernet, table)
    base = latency.estimate(space)
    return {"width_only_min_ratio": latency.estimate(space.narrowest()) / base,
            "min_ratio": latency.estimate(space.smallest()) / base}
