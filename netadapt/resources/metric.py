"""The search metric as the config asks for it: which `ResourceModel` estimates it, how the device
times a whole network (`profile.*`), and how the search checks its answer on the device.

Latency comes from the profiled lookup table, refused if it was measured for another setting than
`profile.*` asks for; MACs and parameters are exact, so they need no table and no measurement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from torch import nn

from netadapt.arch import Architecture
from netadapt.config import Config, ProfileConfig
from netadapt.resources import ResourceModel
from netadapt.resources.analytic import MacsModel, ParamsModel
from netadapt.resources.command import CommandSettings
from netadapt.resources.lookup_table import LatencyModel, LatencyTable, TableContext
from netadapt.resources.spread import Interval, Rounds, median_interval, ratio_interval
from netadapt.resources.timing import ProfileSettings, network_timings
from netadapt.schedule import UNDECIDED, interval_verdict

log = logging.getLogger("netadapt")


def profile_settings(p: ProfileConfig) -> ProfileSettings:
    """How `profile.*` times a module (the `command` backend's device included)."""
    command = CommandSettings(p.command, p.command_pattern, p.command_timeout) if p.backend == "command" else None
    return ProfileSettings(p.backend, p.threads, p.batch_size, p.warmup, p.repeats, p.network_repeats, command)


def latency_table(p: ProfileConfig, lut: Path) -> LatencyTable:
    """The profiled table, refused if it was measured for another setting than `profile.*` asks, or
    if its held-out error when profiled exceeds `profile.max_error`."""
    table = LatencyTable.load(lut, p.interpolate)
    table.check_error(lut, p.max_error)
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
                  warmup: int | None = None, repeats: int | None = None) -> list[Rounds]:
    """Whole networks of the super-network's space timed on the device as `profile.*` says, side by
    side, round by round (evaluate times with its own warm-up and repeats)."""
    settings = profile_settings(p)
    if warmup is not None:
        settings = replace(settings, warmup=warmup, network_repeats=repeats)
    return network_timings(supernet, archs, settings, seed)


@dataclass(frozen=True)
class SideBySide:
    """The base network and another timed side by side, the rounds of every timing pooled."""

    base: Rounds
    final: Rounds
    timings: int = 1

    def ratio(self) -> Interval:
        """final / base and its interval (paired rounds: drift cancels)."""
        return ratio_interval(self.final, self.base)

    def final_ms(self) -> Interval:
        return median_interval(self.final)

    def base_ms(self) -> Interval:
        return median_interval(self.base)

    def on_scale(self, relative: bool) -> Interval:
        """On a budget's scale: the ratio (a relative budget) or the final network's ms (an absolute one)."""
        return self.ratio() if relative else self.final_ms()


def time_until_decided(time_once: Callable[[], list[Rounds]], relative: bool, limit: float,
                       retimings: int) -> SideBySide:
    """Time the base and the final network side by side (`time_once`); while the interval on the
    budget's scale straddles `limit` (undecided within noise), time them again, at most `retimings`
    more times, pooling the rounds: more rounds narrow the interval."""
    pooled = SideBySide(*time_once())
    while pooled.timings <= retimings:
        interval = pooled.on_scale(relative)
        if interval_verdict(interval.low, interval.high, limit) != UNDECIDED:
            break
        log.info("latency: %s straddles %.4g: undecided within noise, timing again (%d/%d)", interval, limit,
                 pooled.timings, retimings)
        base, final = time_once()
        pooled = SideBySide(pooled.base + base, pooled.final + final, pooled.timings + 1)
    return pooled


def timed_beside_base(cfg: Config, supernet: nn.Module, arch: Architecture) -> SideBySide:
    """evaluate's timing of the final network beside the base (`evaluate.latency_warmup` /
    `latency_repeats`), timed again while its interval on the budget's scale straddles budget * (1 +
    `evaluate.budget_tolerance`), `search.undecided_retimings` times at most (a latency budget only)."""
    s, e = cfg.search, cfg.evaluate
    return time_until_decided(lambda: network_times(cfg.profile, supernet, [supernet.space(), arch], cfg.seed,
                                                    e.latency_warmup, e.latency_repeats),
                              s.budget_type == "relative", s.budget * (1 + e.budget_tolerance),
                              s.undecided_retimings if s.metric == "latency" else 0)


def latency_intervals(timed: SideBySide) -> dict[str, float | int]:
    """The bootstrap 95% intervals of evaluate's latencies (`<figure>_ci95_low` / `_ci95_high`: the
    final and base networks' medians, and their ratio, paired), and how many timings and rounds
    they pool."""
    figures = {"latency_measured_ms": timed.final_ms(), "base_latency_measured_ms": timed.base_ms(),
               "latency_ratio": timed.ratio()}
    out: dict[str, float | int] = {f"{name}_ci95_{end}": getattr(interval, end)
                                   for name, interval in figures.items() for end in ("low", "high")}
    return {**out, "latency_timings": timed.timings, "latency_rounds": len(timed.final.bursts)}


def measured_budget(cfg: Config, supernet: nn.Module) -> tuple[Callable[[Architecture], Interval], float]:
    """How the search checks its answer on the device, and the limit: the answer's latency as a
    fraction of the base network measured beside it (a relative budget: drift cancels out), or in ms
    (an absolute one), timed as `profile.*` times whole networks, with its interval (timed again
    while it straddles the limit, `search.undecided_retimings` times at most)."""
    s, space = cfg.search, supernet.space()
    relative = s.budget_type == "relative"

    def measure(arch: Architecture) -> Interval:
        timed = time_until_decided(lambda: network_times(cfg.profile, supernet, [space, arch], cfg.seed), relative,
                                   s.budget, s.undecided_retimings)
        return timed.on_scale(relative)
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
