"""Device profiling: measure every distinct unit reachable in the search space, once.

The cost grows with the number of distinct layer configurations, not with the size of the search
space: a unit shared by a million architectures is timed once.

Units are timed in rotation, in shuffled groups as large as the full network: each unit then runs
with a network's worth of other weights and activations through the caches, as it does inside a
network. (Timed alone and back to back, a unit stays cache-hot and the table underestimates a
network by ~20% on CPU; rotating through all units at once overestimates it by as much.)
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import statistics
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError
from netadapt.layers import LayerSpec
from netadapt.models import extract
from netadapt.resources.backends import Backend, Runner, Timing, make_runner, timing_context
from netadapt.resources.lookup_table import KEY_FIELDS, LatencyTable, TableContext
from netadapt.resources.units import build_unit

log = logging.getLogger("netadapt")

EXHAUSTIVE_LIMIT = 20_000  # architectures, for models that cannot enumerate their units block by block
CALIBRATION_NETWORKS, CALIBRATION_SEED = 4, 10_007  # random networks besides the full and the smallest
BURST_WARMUP, BURST = 3, 5  # whole networks: untimed then timed runs each time a network's turn comes


def enumerate_layers(supernet: nn.Module) -> list[LayerSpec]:
    """Every distinct unit some architecture of the space runs, sorted.

    Models built from blocks (`SearchableNetwork`) are walked block by block, carrying the set of
    reachable (channels, height, width) states; other models are enumerated exhaustively when their
    space is small enough.
    """
    if hasattr(supernet, "blocks") and hasattr(supernet, "classifier"):
        return sorted(_walk_blocks(supernet), key=lambda s: tuple(map(str, s.key())))
    space = supernet.space()
    size = math.prod(len(d.choices()) for d in space.dims)
    if size > EXHAUSTIVE_LIMIT:
        raise NetAdaptError(f"model.name: {space.model.name} has {size} architectures and no blocks to walk; "
                            f"give it `blocks` and `classifier` like SearchableNetwork to profile it")
    found: set[LayerSpec] = set()
    for combo in itertools.product(*(d.choices() for d in space.dims)):
        found.update(supernet.layers(space.with_widths(dict(zip((d.name for d in space.dims), combo)))))
    return sorted(found, key=lambda s: tuple(map(str, s.key())))


def _walk_blocks(supernet: nn.Module) -> set[LayerSpec]:
    found: set[LayerSpec] = set()
    states = {tuple(supernet.spec.input_shape)}
    for block in supernet.blocks:
        dims = block.dims()
        nxt: set[tuple[int, int, int]] = set()
        for cin, h, w in states:
            for combo in itertools.product(*(d.choices() for d in dims)):
                specs, cout, oh, ow = block.layers(dict(zip((d.name for d in dims), combo)), cin, h, w)
                found.update(specs)
                nxt.add((cout, oh, ow))
        states = nxt
    for cin, h, w in states:
        found.update(supernet.classifier.layers(cin, h, w))
    return found


@dataclass(frozen=True)
class ProfileSettings:
    backend: Backend
    threads: int = 1
    batch_size: int = 1
    warmup: int = 5
    repeats: int = 20
    network_repeats: int = 60  # whole networks: calibration and fidelity


def time_units(specs: list[LayerSpec], settings: ProfileSettings, group_size: int,
               reference: Runner | None = None, seed: int = 0) -> tuple[list[dict], float]:
    """Median latency of each unit, timed in shuffled rotation within groups of `group_size` units.

    A shared machine drifts (neighbours, frequency): with a `reference` (the full network), a burst
    of it runs after each group, and the group's times are rescaled by (overall reference median /
    this group's reference median), so all units are expressed at one machine speed. Returns the
    rows and that overall reference median (ms; 1.0 without a reference).
    """
    rng = random.Random(seed)
    order = list(specs)
    rng.shuffle(order)
    groups: list[tuple[dict[LayerSpec, list[float]], float]] = []
    torch.manual_seed(seed)
    bar = tqdm(total=len(order), desc=f"profile {settings.backend}", unit="unit", disable=None, mininterval=1.0)
    with timing_context(settings.threads):
        for start in range(0, len(order), group_size):
            group = [(spec, make_runner(*build_unit(spec, settings.batch_size), settings.backend, settings.threads))
                     for spec in order[start:start + group_size]]
            samples: dict[LayerSpec, list[float]] = {spec: [] for spec, _ in group}
            for round_ in range(settings.warmup + settings.repeats):
                rng.shuffle(group)
                for spec, run in group:
                    elapsed = run()
                    if round_ >= settings.warmup:
                        samples[spec].append(elapsed)
            groups.append((samples, burst_median(reference) if reference else 1.0))
            bar.update(len(group))
    bar.close()
    overall = statistics.median(ref for _, ref in groups)
    rows = []
    for samples, ref in groups:
        scale = overall / ref
        for spec, times in samples.items():
            t = Timing.of([x * scale for x in times])
            rows.append({**{k: getattr(spec, k) for k in KEY_FIELDS},
                         "latency_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms})
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in KEY_FIELDS)), overall


def burst_median(run: Runner) -> float:
    for _ in range(BURST_WARMUP):
        run()
    return statistics.median(run() for _ in range(BURST))


@dataclass
class Profile:
    table: LatencyTable
    fidelity: pd.DataFrame  # network, estimated_ms, measured_ms, rel_error, arch


def profile_space(supernet: nn.Module, settings: ProfileSettings, fidelity_samples: int = 8, seed: int = 0,
                  interpolate: bool = False) -> Profile:
    """Measure every reachable unit, calibrate the table, and check it against measured networks.

    1. Units are timed in network-sized rotation groups, each group followed by a burst of the full
       network (the reference), and rescaled to the reference's overall speed (`time_units`).
    2. Calibration networks (full, smallest, a few random) and fidelity networks (full, smallest,
       `fidelity_samples` random, drawn apart) are measured together, in one rotation.
    3. The table is rescaled from the reference's speed to the full network's speed in that
       rotation, and `measured = table sum + n_units * offset + constant` is fitted by least
       squares over the calibration networks. All comparisons are then at one machine speed.
    """
    space = supernet.space()
    x = torch.randn(settings.batch_size, *space.model.input_shape, generator=torch.Generator().manual_seed(0))
    with timing_context(settings.threads):
        reference = make_runner(extract(supernet, space), (x,), settings.backend, settings.threads)
    rows, reference_ms = time_units(enumerate_layers(supernet), settings,
                                    group_size=max(1, len(supernet.layers(space))), reference=reference, seed=seed)
    calibration = [a for _, a in sample_architectures(space, CALIBRATION_NETWORKS, CALIBRATION_SEED)]
    checked = sample_architectures(space, fidelity_samples, seed)
    unique = list({a.widths_json(): a for a in calibration + [a for _, a in checked]}.values())
    measured = dict(zip((a.widths_json() for a in unique), network_latencies(supernet, unique, settings, seed)))
    scale = measured[space.widths_json()] / reference_ms
    for row in rows:
        for key in ("latency_ms", "p10_ms", "p90_ms"):
            row[key] *= scale
    context = TableContext.current(settings.backend, settings.threads, settings.batch_size)
    table = LatencyTable(context, pd.DataFrame(rows, columns=KEY_FIELDS + ["latency_ms", "p10_ms", "p90_ms"]),
                         0.0, interpolate)
    table.unit_offset_ms, table.constant_ms = fit_offset_and_constant(
        [len(supernet.layers(a)) for a in calibration],
        [measured[a.widths_json()] - table.estimate_layers(supernet.layers(a)) for a in calibration])
    log.info("latency table: %d units, offset %.5f ms per unit, constant %.4f ms (fitted on %d networks)",
             len(table), table.unit_offset_ms, table.constant_ms, len(calibration))
    report = []
    for name, arch in checked:
        estimated, real = table.estimate_layers(supernet.layers(arch)), measured[arch.widths_json()]
        report.append({"network": name, "estimated_ms": estimated, "measured_ms": real,
                       "rel_error": abs(estimated - real) / real, "arch": arch.widths_json()})
    return Profile(table, pd.DataFrame(report))


def fit_offset_and_constant(units: list[int], residuals: list[float]) -> tuple[float, float]:
    """Least squares of residual = units * offset + constant; offset 0 if all unit counts agree."""
    mean_n, mean_r = statistics.fmean(units), statistics.fmean(residuals)
    var_n = sum((n - mean_n) ** 2 for n in units)
    offset = sum((n - mean_n) * (r - mean_r) for n, r in zip(units, residuals)) / var_n if var_n else 0.0
    return offset, mean_r - offset * mean_n


def network_latencies(supernet: nn.Module, archs: list[Architecture], settings: ProfileSettings,
                      seed: int = 0) -> list[float]:
    """Median latency (ms) of each architecture's slim network, as deployed (warm, run after run).

    Networks are measured in short bursts (`BURST_WARMUP` untimed runs, then `BURST` timed ones),
    the bursts rotated across networks in shuffled order, so drift of the machine affects all
    alike while each timed run finds its own network in the caches.
    """
    x = torch.randn(settings.batch_size, *supernet.spec.input_shape, generator=torch.Generator().manual_seed(seed))
    rng = random.Random(seed)
    with timing_context(settings.threads):
        runners = [(i, make_runner(extract(supernet, a), (x,), settings.backend, settings.threads))
                   for i, a in enumerate(archs)]
        samples: list[list[float]] = [[] for _ in archs]
        for _ in range(-(-settings.network_repeats // BURST)):
            rng.shuffle(runners)
            for i, run in runners:
                for _ in range(BURST_WARMUP):
                    run()
                samples[i] += [run() for _ in range(BURST)]
    return [Timing.of(s).median_ms for s in samples]


def sample_architectures(space: Architecture, count: int, seed: int) -> list[tuple[str, Architecture]]:
    """The base, the smallest and `count` random architectures, named."""
    rng = random.Random(seed)
    picks = [("base", space), ("smallest", space.smallest())]
    for i in range(count):
        picks.append((f"random{i}", space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})))
    return picks
