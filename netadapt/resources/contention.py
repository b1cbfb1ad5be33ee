"""Sustained contention while profiling: what the reference workload and the OS saw.

Profiling times a reference workload (the full network, `timing.reference_runner`) before the first
group of units, between groups and after the last. A neighbour that comes and goes shows as drift
between groups, which `time_units` rescales away; a neighbour that stays slows most of those
references: their median over the fastest reference seen (this attempt's, an earlier attempt's, or
the resume cache's groups') is the `slowdown`. Over `SUSTAINED_SLOWDOWN` the attempt is measured
again, and a table is never used without a word while it holds (`profiling.profile_space`).

Where Linux tells, the OS's own figures are read beside it and stated in the messages: the 1-minute
load average against the cores this process may use, the processes waiting to run (`procs_running`
of /proc/stat, less this one, sampled at each reference), and the share of CPU time the hypervisor
stole. They are reported, not decisive: a neighbour at idle priority, or a device that is not this
CPU (`command` over ssh), loads the OS without slowing the timings, and the reference is what
measures the device itself.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

SUSTAINED_SLOWDOWN = 1.5  # reference median / fastest reference: a device that keeps its speed stays near 1
PROC = Path("/proc")  # where the OS's figures are read (a test points it at a folder of its own)


def _read(name: str) -> str | None:
    try:
        return (PROC / name).read_text()
    except OSError:
        return None


def load_average() -> float | None:
    """The 1-minute load average (/proc/loadavg), None where the OS does not tell."""
    text = _read("loadavg")
    try:
        return float(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def cpu_stat() -> tuple[int | None, int, int]:
    """(`procs_running`, stolen ticks, all ticks) from /proc/stat; (None, 0, 0) where it is unreadable."""
    text = _read("stat") or ""
    running, steal, total = None, 0, 0
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = [int(p) for p in parts[1:] if p.isdigit()]
            total, steal = sum(ticks), ticks[7] if len(ticks) > 7 else 0
        elif parts[:1] == ["procs_running"] and len(parts) > 1 and parts[1].isdigit():
            running = int(parts[1])
    return running, steal, total


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class MachineWatch:
    """The OS's figures over one profiling attempt: started before it, sampled at each reference."""

    start: tuple[int | None, int, int] = field(default_factory=lambda: cpu_stat())
    waiting: list[int] = field(default_factory=list)  # procs_running less this process, at each sample

    def sample(self) -> None:
        running = cpu_stat()[0]
        if running is not None:
            self.waiting.append(max(running - 1, 0))

    def contention(self, references_ms: list[float], fastest_ms: float | None = None) -> "Contention":
        """What was seen: `references_ms` (this attempt's reference medians, in order) over the
        fastest reference known (`fastest_ms`, e.g. an earlier attempt's), and the OS's figures."""
        refs = [r for r in references_ms if r > 0]
        floor = min(refs + ([fastest_ms] if fastest_ms else [])) if refs else 0.0
        slowdown = statistics.median(refs) / floor if refs and floor > 0 else 1.0
        _, steal, total = cpu_stat()
        ticks = total - self.start[2]
        return Contention(slowdown, min(refs) if refs else None, load_average(), usable_cores(),
                          statistics.median(self.waiting) if self.waiting else None,
                          (steal - self.start[1]) / ticks if ticks > 0 else None)


@dataclass(frozen=True)
class Contention:
    """What one profiling attempt saw of its neighbours (see the module)."""

    slowdown: float  # median reference / fastest reference known: 1.0 on a steady machine
    fastest_ms: float | None  # this attempt's fastest reference (what the next attempt compares with)
    load: float | None = None  # 1-minute load average at the end
    cores: int = 1  # cores this process may use
    waiting: float | None = None  # median of the other runnable processes, at the references
    steal: float | None = None  # share of CPU time stolen by the hypervisor

    @property
    def sustained(self) -> bool:
        return self.slowdown > SUSTAINED_SLOWDOWN

    def describe(self) -> str:
        """`reference workload slowed 2.3x during profiling (load 5.1 on 2 cores, 3 other processes
        runnable, steal 4%)`; the OS's figures where known."""
        seen = [f"load {self.load:.1f} on {self.cores} core{'s' if self.cores != 1 else ''}"
                if self.load is not None else f"{self.cores} core{'s' if self.cores != 1 else ''}"]
        if self.waiting is not None:
            seen.append(f"{self.waiting:g} other process{'es' if self.waiting != 1 else ''} runnable")
        if self.steal:
            seen.append(f"steal {self.steal:.0%}")
        return f"reference workload slowed {self.slowdown:.2f}x during profiling ({', '.join(seen)})"

    def metrics(self) -> dict[str, float | int | bool]:
        """Flat figures for the profile stage (the OS's only where known)."""
        out: dict[str, float | int | bool] = {"reference_slowdown": self.slowdown, "contended": self.sustained,
                                              "cpu_cores": self.cores}
        for key, value in (("load_average", self.load), ("runnable_others", self.waiting),
                           ("steal_fraction", self.steal)):
            if value is not None:
                out[key] = value
        return out
