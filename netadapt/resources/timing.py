"""How profiling times a module: units in shuffled rotation groups, networks in rotated bursts.

Units are timed in rotation, in shuffled groups as large as the full network: each unit then runs
with a network's worth of other weights and activations through the caches, as it does inside a
network. (Timed alone and back to back, a unit stays cache-hot and the table underestimates a
network by ~20% on CPU; rotating through all units at once overestimates it by as much.) A burst
of the full network (the reference) after each group measures the machine's speed, so groups
timed while it drifts are rescaled to one speed; with one more before the first group, the
references also show contention that stays (`contention`).
"""

from __future__ import annotations

import logging
import random
import statistics
import uuid
from dataclasses import dataclass, field

import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.eta import progress_bar
from netadapt.layers import LayerSpec
from netadapt.models import extract
from netadapt.resources.backends import Backend, Runner, Timing, make_runner, time_runner, timing_context
from netadapt.resources.cache import CachedUnit, UnitCache
from netadapt.resources.command import CommandSettings
from netadapt.resources.contention import MachineWatch
from netadapt.resources.lookup_table import KEY_FIELDS
from netadapt.resources.spread import Rounds
from netadapt.resources.units import build_unit

log = logging.getLogger("netadapt")

BURST_WARMUP, BURST = 3, 5  # whole networks: untimed then timed runs each time a network's turn comes


@dataclass(frozen=True)
class ProfileSettings:
    """The backend a table is measured on and how many runs each measurement takes."""

    backend: Backend
    threads: int = 1
    batch_size: int = 1
    warmup: int = 5
    repeats: int = 20
    network_repeats: int = 60  # whole networks: calibration and fidelity
    command: CommandSettings | None = None  # the device of the `command` backend (default: the shipped one)

    def runner(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runner:
        """A runner of `module(*inputs)` on this backend (call inside `timing_context(threads)`)."""
        return make_runner(module, inputs, self.backend, self.threads, command=self.command)


@dataclass(frozen=True)
class UnitTimes:
    """What `time_units` measured: one row per unit, and the reference bursts that set its speed."""

    rows: list[dict]  # KEY_FIELDS + latency_ms, p10_ms, p90_ms
    reference_ms: float  # median of the per-group reference medians (1.0 without a reference)
    group_reference_ms: list[float]  # each group's reference median (cached groups first)
    measured: int = 0  # units timed by this call
    from_cache: int = 0  # units read from the cache (timed by an earlier, interrupted run)
    references_ms: list[float] = field(default_factory=list)  # this call's reference medians, in order:
    # before the first group, then after each (what `contention` reads sustained contention from)

    @property
    def drift(self) -> float:
        """max / min of the per-group reference medians: 1.0 on a steady machine."""
        refs = [r for r in self.group_reference_ms if r > 0]
        return max(refs) / min(refs) if refs else 1.0

    @property
    def repeat_spread(self) -> float:
        """Median over units of p90 / p10 of their repeats: near 1 when repeats agree. Units whose
        p10 reads 0 (onnxruntime, below the call overhead's jitter) have no ratio and are skipped."""
        ratios = [r["p90_ms"] / r["p10_ms"] for r in self.rows if r["p10_ms"] > 0]
        return statistics.median(ratios) if ratios else 1.0


def reference_runner(supernet: nn.Module, settings: ProfileSettings) -> Runner:
    """A runner of the full network on a fixed input: the reference `time_units` bursts after each
    group of units to follow the machine's speed."""
    space = supernet.space()
    x = torch.randn(settings.batch_size, *space.model.input_shape, generator=torch.Generator().manual_seed(0))
    with timing_context(settings.threads):
        return settings.runner(extract(supernet, space), (x,))


def time_units(specs: list[LayerSpec], settings: ProfileSettings, group_size: int,
               reference: Runner | None = None, seed: int = 0, cache: UnitCache | None = None,
               watch: MachineWatch | None = None) -> UnitTimes:
    """Median latency of each unit, timed in shuffled rotation within groups of `group_size` units.

    A shared machine drifts (neighbours, frequency): with a `reference` (the full network), a burst
    of it runs after each group, and the group's times are rescaled by (overall reference median /
    this group's reference median), so all units are expressed at one machine speed. The rows,
    that overall reference median and the per-group ones (whose spread is the drift) come back.

    With a `cache`, units it holds are not timed again: they come with the reference median of the
    group they were measured in, and are rescaled like this run's groups. Each group timed here is
    appended to it as soon as its reference burst is timed.

    The reference is also timed once before the first group: its medians, in order, come back as
    `references_ms` (sustained contention slows most of them, `contention`); `watch` samples the
    OS's figures at each.
    """
    rng = random.Random(seed)
    order = list(specs)
    rng.shuffle(order)
    wanted = set(order)
    units = {s: u for s, u in (cache.load() if cache else {}).items() if s in wanted}
    todo = [s for s in order if s not in units]
    if units:
        log.info("profile: %d of %d units from %s (measured earlier), %d to measure", len(units), len(order),
                 cache.path if cache else "", len(todo))
    groups = {}  # group id -> its reference median, cached groups first
    for unit in units.values():
        groups.setdefault(unit.group, unit.reference_ms)
    run_id = uuid.uuid4().hex[:8]
    torch.manual_seed(seed)
    bar = progress_bar(total=len(order), initial=len(units), desc=f"profile {settings.backend}", unit="units")
    references: list[float] = []

    def reference_median() -> float:
        if reference is None:
            return 1.0
        references.append(burst_median(reference))
        if watch is not None:
            watch.sample()
        return references[-1]

    with timing_context(settings.threads):
        if todo:
            reference_median()  # before the first group: the machine's speed as profiling starts
        for n, start in enumerate(range(0, len(todo), group_size)):
            group = [(spec, settings.runner(*build_unit(spec, settings.batch_size)))
                     for spec in todo[start:start + group_size]]
            timings = _time_group(group, settings, rng)
            gid, ref = f"{run_id}-{n}", reference_median()
            fresh = {spec: CachedUnit(t.median_ms, t.p10_ms, t.p90_ms, ref, gid) for spec, t in timings.items()}
            if cache:
                cache.append(fresh)
            units.update(fresh)
            groups[gid] = ref
            bar.update(len(group))
    bar.close()
    overall = statistics.median(groups.values()) if groups else 1.0
    rows = []
    for spec, unit in units.items():
        scale = overall / unit.reference_ms
        rows.append({**{k: getattr(spec, k) for k in KEY_FIELDS}, "latency_ms": unit.latency_ms * scale,
                     "p10_ms": unit.p10_ms * scale, "p90_ms": unit.p90_ms * scale})
    return UnitTimes(sorted(rows, key=lambda r: tuple(str(r[k]) for k in KEY_FIELDS)), overall,
                     list(groups.values()), measured=len(todo), from_cache=len(order) - len(todo),
                     references_ms=references)


def _time_group(group: list[tuple[LayerSpec, Runner]], settings: ProfileSettings,
                rng: random.Random) -> dict[LayerSpec, Timing]:
    """Each unit's timing. In-process runners: `warmup + repeats` rounds, each a shuffled pass over
    the group (a unit finds a network's worth of other units in the caches). Runners with
    `time_batch` (a process per call): one batch of all repeats per unit, in shuffled order."""
    if all(hasattr(run, "time_batch") for _, run in group):
        rng.shuffle(group)
        return {spec: time_runner(run, settings.warmup, settings.repeats) for spec, run in group}
    samples: dict[LayerSpec, list[float]] = {spec: [] for spec, _ in group}
    for round_ in range(settings.warmup + settings.repeats):
        rng.shuffle(group)
        for spec, run in group:
            elapsed = run()
            if round_ >= settings.warmup:
                samples[spec].append(elapsed)
    return {spec: Timing.of(times) for spec, times in samples.items()}


def burst(run: Runner) -> list[float]:
    """`BURST_WARMUP` untimed then `BURST` timed runs: their times (a batch runner's: its median)."""
    if hasattr(run, "time_batch"):
        result = run.time_batch(BURST_WARMUP, BURST)
        return [float(result)] if isinstance(result, (int, float)) else list(result)
    for _ in range(BURST_WARMUP):
        run()
    return [run() for _ in range(BURST)]


def burst_median(run: Runner) -> float:
    """Median of one `burst`: the reference's speed after a group of units."""
    return statistics.median(burst(run))


def network_latencies(supernet: nn.Module, archs: list[Architecture], settings: ProfileSettings,
                      seed: int = 0) -> list[float]:
    """Median latency (ms) of each architecture's slim network, as deployed: `module_latencies`."""
    return module_latencies([extract(supernet, a) for a in archs], supernet.spec.input_shape, settings, seed)


def network_timings(supernet: nn.Module, archs: list[Architecture], settings: ProfileSettings,
                    seed: int = 0) -> list[Rounds]:
    """Each architecture's slim network timed as deployed, round by round (`module_timings`): what a
    median and its interval (`spread`) are computed from."""
    return module_timings([extract(supernet, a) for a in archs], supernet.spec.input_shape, settings, seed)


def module_latencies(modules: list[nn.Module], input_shape: tuple[int, ...], settings: ProfileSettings,
                     seed: int = 0) -> list[float]:
    """Median latency (ms) of each network (any module taking one image batch): `module_timings`."""
    return [Timing.of([t for burst in r.bursts for t in burst]).median_ms
            for r in module_timings(modules, input_shape, settings, seed)]


def module_timings(modules: list[nn.Module], input_shape: tuple[int, ...], settings: ProfileSettings,
                   seed: int = 0) -> list[Rounds]:
    """Each network (any module taking one image batch) timed as deployed (warm, run after run),
    burst by burst.

    Networks are measured in short bursts (`BURST_WARMUP` untimed runs, then `BURST` timed ones),
    the bursts rotated across networks in shuffled order, one burst each per round, so drift of the
    machine affects all alike while each timed run finds its own network in the caches. (A batch
    runner's burst is one invocation, whose median counts as one sample.)
    """
    x = torch.randn(settings.batch_size, *input_shape, generator=torch.Generator().manual_seed(seed))
    rng = random.Random(seed)
    with timing_context(settings.threads):
        runners = [(i, settings.runner(m, (x,))) for i, m in enumerate(modules)]
        samples: list[list[tuple[float, ...]]] = [[] for _ in modules]
        for _ in range(-(-settings.network_repeats // BURST)):
            rng.shuffle(runners)
            for i, run in runners:
                samples[i].append(tuple(burst(run)))
    return [Rounds(tuple(s)) for s in samples]
