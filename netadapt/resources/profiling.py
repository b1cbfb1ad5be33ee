"""Device profiling: measure every distinct unit reachable in the search space, once.

The cost grows with the number of distinct layer configurations, not with the size of the search
space: a unit shared by a million architectures is timed once.

Units are timed in rotation, in shuffled groups as large as the full network: each unit then runs
with a network's worth of other weights and activations through the caches, as it does inside a
network. (Timed alone and back to back, a unit stays cache-hot and the table underestimates a
network by ~20% on CPU; rotating through all units at once overestimates it by as much.)

The table is checked on *held-out* networks, which took no part in its rescaling or calibration
fit, and a table whose held-out error exceeds a threshold is measured again, then refused: a
busy machine otherwise yields a wrong table without a word.

With a cache folder, measured units are appended to a per-device cache as their group finishes
(`cache.UnitCache`), and a run resumes from it: only units not in it are timed. An attempt whose
table fails the held-out check discards the cache, so the next attempt times every unit again.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import statistics
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError
from netadapt.layers import LayerSpec
from netadapt.models import extract
from netadapt.resources.backends import Backend, Runner, Timing, make_runner, time_runner, timing_context
from netadapt.resources.cache import CachedUnit, UnitCache, context_digest
from netadapt.resources.command import CommandSettings, template_files
from netadapt.resources.lookup_table import KEY_FIELDS, LatencyTable, TableContext
from netadapt.resources.units import build_unit

log = logging.getLogger("netadapt")

EXHAUSTIVE_LIMIT = 20_000  # architectures, for models that cannot enumerate their units block by block
CALIBRATION_NETWORKS, CALIBRATION_SEED = 4, 10_007  # random networks besides the full and the smallest
# Calibration also measures every dimension at these fractions of its range above its narrowest
# non-zero width (no block removed): random networks all have mid-range widths, so without these the
# fit never sees narrow networks, where a unit timed alone is mostly per-call overhead.
WIDTH_LADDER = (0.0, 0.25, 0.5, 0.75)
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
    command: CommandSettings | None = None  # the device of the `command` backend (default: the shipped one)

    def runner(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runner:
        """A runner of `module(*inputs)` on this backend (call inside `timing_context(threads)`)."""
        return make_runner(module, inputs, self.backend, self.threads, command=self.command)


class UnstableProfileError(NetAdaptError):
    """Every profiling attempt gave a table whose held-out error exceeds `profile.max_error`."""


@dataclass(frozen=True)
class UnitTimes:
    """What `time_units` measured: one row per unit, and the reference bursts that set its speed."""

    rows: list[dict]  # KEY_FIELDS + latency_ms, p10_ms, p90_ms
    reference_ms: float  # median of the per-group reference medians (1.0 without a reference)
    group_reference_ms: list[float]  # each group's reference median (cached groups first)
    measured: int = 0  # units timed by this call
    from_cache: int = 0  # units read from the cache (timed by an earlier, interrupted run)

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


def time_units(specs: list[LayerSpec], settings: ProfileSettings, group_size: int,
               reference: Runner | None = None, seed: int = 0, cache: UnitCache | None = None) -> UnitTimes:
    """Median latency of each unit, timed in shuffled rotation within groups of `group_size` units.

    A shared machine drifts (neighbours, frequency): with a `reference` (the full network), a burst
    of it runs after each group, and the group's times are rescaled by (overall reference median /
    this group's reference median), so all units are expressed at one machine speed. The rows,
    that overall reference median and the per-group ones (whose spread is the drift) come back.

    With a `cache`, units it holds are not timed again: they come with the reference median of the
    group they were measured in, and are rescaled like this run's groups. Each group timed here is
    appended to it as soon as its reference burst is timed.
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
    bar = tqdm(total=len(order), initial=len(units), desc=f"profile {settings.backend}", unit="unit",
               disable=None, mininterval=1.0)
    with timing_context(settings.threads):
        for n, start in enumerate(range(0, len(todo), group_size)):
            group = [(spec, settings.runner(*build_unit(spec, settings.batch_size)))
                     for spec in todo[start:start + group_size]]
            timings = _time_group(group, settings, rng)
            gid, ref = f"{run_id}-{n}", burst_median(reference) if reference else 1.0
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
                     list(groups.values()), measured=len(todo), from_cache=len(order) - len(todo))


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
    return statistics.median(burst(run))


def _timing_code() -> str:
    """Digest of the modules that build a unit and time it: an edit there re-times cached units."""
    here = Path(__file__).resolve().parent
    return context_digest({name: (here / name).read_text() for name in ("units.py", "backends.py")})


def cache_context(supernet: nn.Module, settings: ProfileSettings) -> dict:
    """What a cached unit time depends on besides the unit: the backend and its settings, the
    versions and the code (`units.py`, `backends.py`) that build and run it, and the reference
    network its group was rescaled by. A
    command's template, pattern and the files it names (a device script) count; a command that
    runs `{python}` runs here, so this machine's CPU and onnxruntime version count too."""
    versions = TableContext.current(settings.backend, settings.threads, settings.batch_size)
    context = {"backend": settings.backend, "threads": settings.threads, "batch_size": settings.batch_size,
               "warmup": settings.warmup, "repeats": settings.repeats, "torch": versions.torch_version,
               "onnxruntime": versions.onnxruntime_version, "cpu": versions.cpu, "code": _timing_code(),
               "reference": context_digest({"layers": [list(map(str, s.key()))
                                                       for s in supernet.layers(supernet.space())]})}
    if settings.backend == "command":
        device = settings.command or CommandSettings()
        local = "{python}" in device.template
        context.update(command=device.template, command_pattern=device.pattern,
                       command_files=template_files(device.template),
                       onnxruntime=TableContext.current("onnxruntime-cpu", 1, 1).onnxruntime_version if local else "",
                       cpu=versions.cpu if local else "")
    return context


@dataclass
class Profile:
    """A calibrated table and how well it predicts measured networks.

    `fidelity` has one row per measured network: network, in_fit (True for the calibration
    networks, which set the table's rescaling and fit; False for held-out ones), estimated_ms,
    measured_ms, rel_error, arch. Only held-out networks say how good the table is elsewhere.
    """

    table: LatencyTable
    fidelity: pd.DataFrame
    reference_drift: float = 1.0  # max / min of the reference bursts' medians while timing units
    unit_repeat_spread: float = 1.0  # median over units of p90 / p10 of their repeats
    attempts: int = 1  # profiling runs it took (see `profile_space`'s max_attempts)
    units_measured: int = 0  # units this attempt timed
    units_from_cache: int = 0  # units this attempt read from the resume cache

    @property
    def held_out(self) -> pd.DataFrame:
        """The networks the reported error averages over: none took part in the fit. When the space
        is so small that every network drawn was a calibration one, the calibration networks (then
        the whole space, measured) stand in."""
        out = self.fidelity[~self.fidelity.in_fit.astype(bool)]
        return out if len(out) else self.fidelity

    @property
    def error(self) -> float:
        """Mean relative error of the table on held-out networks: what `max_error` bounds."""
        return float(self.held_out.rel_error.mean())

    def metrics(self) -> dict[str, float | int]:
        """Fidelity and stability figures, flat, for the profile stage's metrics."""
        fitted = self.fidelity[self.fidelity.in_fit.astype(bool)]
        return {"lut_mean_abs_error": self.error, "lut_max_abs_error": float(self.held_out.rel_error.max()),
                "lut_in_sample_mean_abs_error": float(fitted.rel_error.mean()),
                "lut_in_sample_max_abs_error": float(fitted.rel_error.max()),
                "fidelity_networks": len(self.held_out), "calibration_networks": len(fitted),
                "reference_drift": self.reference_drift, "unit_repeat_spread": self.unit_repeat_spread,
                "attempts": self.attempts, "units_measured": self.units_measured,
                "units_from_cache": self.units_from_cache}


def profile_space(supernet: nn.Module, settings: ProfileSettings, fidelity_samples: int = 8, seed: int = 0,
                  interpolate: bool = False, max_error: float = math.inf, max_attempts: int = 1,
                  cache_dir: Path | None = None) -> Profile:
    """Measure, calibrate and check a table (`measure_table`); measure again while its held-out mean
    relative error exceeds `max_error`, at most `max_attempts` times in all.

    The first table within `max_error` is returned; if none is, `UnstableProfileError` names
    `profile.max_error` with the best attempt's error, drift and spread, and no table is returned.
    With `cache_dir` (one folder per device), units resume from and are appended to a `UnitCache`
    of this measurement context; a bad attempt discards it, so the next one re-times every unit.
    """
    cache = UnitCache(cache_dir, cache_context(supernet, settings)) if cache_dir is not None else None
    best: Profile | None = None
    for attempt in range(1, max_attempts + 1):
        result = measure_table(supernet, settings, fidelity_samples, seed, interpolate, cache=cache)
        result.attempts = attempt
        figures = (f"held-out mean error {result.error:.1%} (max {result.held_out.rel_error.max():.1%}), "
                   f"in-sample {result.metrics()['lut_in_sample_mean_abs_error']:.1%}, reference drift "
                   f"{result.reference_drift:.2f}x, unit repeat spread {result.unit_repeat_spread:.2f}x")
        if result.error <= max_error:
            log.info("profile: attempt %d/%d: %s", attempt, max_attempts, figures)
            return result
        log.warning("profile: attempt %d/%d: %s, above profile.max_error %.1f%%%s", attempt, max_attempts,
                    figures, 100 * max_error, ": measuring again" if attempt < max_attempts else "")
        if cache is not None:  # its units made a bad table: never reuse them
            log.warning("profile: discarded %d cached unit(s) of the bad attempt (%s)", cache.discard(), cache.path)
        if best is None or result.error < best.error:
            best = result
    assert best is not None  # max_attempts >= 1
    raise UnstableProfileError(
        f"profile.max_error: the latency table's mean error on {len(best.held_out)} held-out networks was "
        f"{best.error:.1%} (max {best.held_out.rel_error.max():.1%}) at best in {max_attempts} attempt(s), above "
        f"{max_error:.1%}; reference drift {best.reference_drift:.2f}x (1.00 = steady), unit repeat spread "
        f"p90/p10 {best.unit_repeat_spread:.2f}x: the machine was probably busy; profile on a quiet machine, "
        f"raise profile.repeats / profile.network_repeats, or raise profile.max_error; no table was written")


def measure_table(supernet: nn.Module, settings: ProfileSettings, fidelity_samples: int = 8, seed: int = 0,
                  interpolate: bool = False, cache: UnitCache | None = None) -> Profile:
    """Measure every reachable unit, calibrate the table, and check it against measured networks.

    1. Units are timed in network-sized rotation groups, each group followed by a burst of the full
       network (the reference), and rescaled to the reference's overall speed (`time_units`).
    2. Calibration networks (full, smallest, the width ladder, a few random) and held-out networks
       (`fidelity_samples` random ones, none of them a calibration network) are measured together,
       in one rotation.
    3. The table is rescaled from the reference's speed to the full network's speed in that
       rotation, and `measured = scale * table sum + n_units * offset + constant` is fitted by least
       squares over the calibration networks (`fit_calibration`); the table's entries are multiplied
       by `scale`. A unit timed alone pays a per-call cost that a network pays less of; the offset
       takes that out per unit and the scale corrects the rest in proportion, so neither the full
       network nor the narrowest (both in the fit) is mis-estimated. All comparisons are then at one
       machine speed.
    4. Every measured network is compared with its estimate; those of the fit are marked `in_fit`,
       since their error is optimistic.

    Units in `cache` are not timed again (`time_units`).
    """
    space = supernet.space()
    x = torch.randn(settings.batch_size, *space.model.input_shape, generator=torch.Generator().manual_seed(0))
    with timing_context(settings.threads):
        reference = settings.runner(extract(supernet, space), (x,))
    units = time_units(enumerate_layers(supernet), settings,
                       group_size=max(1, len(supernet.layers(space))), reference=reference, seed=seed, cache=cache)
    rows = units.rows
    calibration = calibration_architectures(space)
    fitted = {a.widths_json() for _, a in calibration}
    held_out = held_out_architectures(space, fidelity_samples, seed, exclude=fitted)
    checked = calibration + held_out
    measured = dict(zip((a.widths_json() for _, a in checked),
                        network_latencies(supernet, [a for _, a in checked], settings, seed)))
    scale = measured[space.widths_json()] / units.reference_ms
    for row in rows:
        for key in ("latency_ms", "p10_ms", "p90_ms"):
            row[key] *= scale
    context = TableContext.current(settings.backend, settings.threads, settings.batch_size,
                                   (settings.command or CommandSettings()).template)
    columns = KEY_FIELDS + ["latency_ms", "p10_ms", "p90_ms"]
    table = LatencyTable(context, pd.DataFrame(rows, columns=columns), 0.0, interpolate)
    fit_scale, offset, constant = fit_calibration(
        [table.estimate_layers(supernet.layers(a)) for _, a in calibration],
        [len(supernet.layers(a)) for _, a in calibration], [measured[a.widths_json()] for _, a in calibration])
    for row in rows:
        for key in ("latency_ms", "p10_ms", "p90_ms"):
            row[key] *= fit_scale
    table = LatencyTable(context, pd.DataFrame(rows, columns=columns), constant, interpolate, offset)
    log.info("latency table: %d units, scale %.3f, offset %.5f ms per unit, constant %.4f ms (fitted on %d "
             "networks)", len(table), fit_scale, table.unit_offset_ms, table.constant_ms, len(calibration))
    report = []
    for name, arch in checked:
        estimated, real = table.estimate_layers(supernet.layers(arch)), measured[arch.widths_json()]
        report.append({"network": name, "in_fit": arch.widths_json() in fitted, "estimated_ms": estimated,
                       "measured_ms": real, "rel_error": abs(estimated - real) / real, "arch": arch.widths_json()})
    return Profile(table, pd.DataFrame(report), units.drift, units.repeat_spread,
                   units_measured=units.measured, units_from_cache=units.from_cache)


CALIBRATION_MODELS = (("scale", "offset"), ("offset",), ("scale",), ())  # the fitted terms besides the constant


def fit_calibration(sums: list[float], units: list[int], measured: list[float]) -> tuple[float, float, float]:
    """`measured = scale * sum + units * offset + constant` over the calibration networks (`sums`:
    their table sums, `units`: their unit counts), by least squares; returns (scale, offset, constant).

    Of the models with some terms left out (scale 1, offset 0) the one with the smallest
    leave-one-out relative error is kept, so a term that noise rather than the machine would set is
    not fitted (on eager torch an offset alone does as well; on ONNX Runtime the scale matters). A
    model the networks cannot determine, or whose scale is not positive (a wider unit would make a
    network faster), is never used."""
    y, s, n = np.asarray(measured, float), np.asarray(sums, float), np.asarray(units, float)
    usable = [names for names in CALIBRATION_MODELS if _solve(names, s, n, y) is not None]
    if len(y) >= 5:
        usable.sort(key=lambda names: _leave_one_out_error(names, s, n, y))  # stable: ties keep the order
    return _solve(usable[0], s, n, y)  # () always solves


def _solve(names: tuple[str, ...], s: np.ndarray, n: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    x = np.column_stack([{"scale": s, "offset": n}[c] for c in names] + [np.ones_like(y)])
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    coef = np.linalg.lstsq(x, y if "scale" in names else y - s, rcond=None)[0]
    fitted = dict(zip(names, (float(c) for c in coef)))
    scale = fitted.get("scale", 1.0)
    return (scale, fitted.get("offset", 0.0), float(coef[-1])) if scale > 0 else None


def _leave_one_out_error(names: tuple[str, ...], s: np.ndarray, n: np.ndarray, y: np.ndarray) -> float:
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        fit = _solve(names, s[keep], n[keep], y[keep])
        if fit is None:
            return math.inf
        scale, offset, constant = fit
        errors.append(abs(scale * s[i] + offset * n[i] + constant - y[i]) / y[i])
    return float(np.mean(errors))


def network_latencies(supernet: nn.Module, archs: list[Architecture], settings: ProfileSettings,
                      seed: int = 0) -> list[float]:
    """Median latency (ms) of each architecture's slim network, as deployed (warm, run after run).

    Networks are measured in short bursts (`BURST_WARMUP` untimed runs, then `BURST` timed ones),
    the bursts rotated across networks in shuffled order, so drift of the machine affects all
    alike while each timed run finds its own network in the caches. (A batch runner's burst is one
    invocation, whose median counts as one sample.)
    """
    x = torch.randn(settings.batch_size, *supernet.spec.input_shape, generator=torch.Generator().manual_seed(seed))
    rng = random.Random(seed)
    with timing_context(settings.threads):
        runners = [(i, settings.runner(extract(supernet, a), (x,))) for i, a in enumerate(archs)]
        samples: list[list[float]] = [[] for _ in archs]
        for _ in range(-(-settings.network_repeats // BURST)):
            rng.shuffle(runners)
            for i, run in runners:
                samples[i] += burst(run)
    return [Timing.of(s).median_ms for s in samples]


def width_ladder(space: Architecture) -> list[tuple[str, Architecture]]:
    """Every dimension at each `WIDTH_LADDER` fraction of its range above its narrowest non-zero
    width (on its grid): no block removed, named `width0.25` etc.; `width0` is the narrowest."""
    def at(d, fraction: float) -> int:
        low = d.narrowest_width
        return low + d.granularity * round((d.max_width - low) * fraction / d.granularity)
    return [(f"width{fraction:g}", space.with_widths({d.name: at(d, fraction) for d in space.dims}))
            for fraction in WIDTH_LADDER]


def calibration_architectures(space: Architecture) -> list[tuple[str, Architecture]]:
    """The networks the table is rescaled (base) and fitted on: base, smallest, the width ladder and
    `CALIBRATION_NETWORKS` random ones, named, without duplicates."""
    picks, seen = [], set()
    sampled = sample_architectures(space, CALIBRATION_NETWORKS, CALIBRATION_SEED)
    for name, arch in sampled[:2] + width_ladder(space) + sampled[2:]:
        if arch.widths_json() not in seen:
            seen.add(arch.widths_json())
            picks.append((name.replace("random", "calibration"), arch))
    return picks


def held_out_architectures(space: Architecture, count: int, seed: int,
                           exclude: set[str]) -> list[tuple[str, Architecture]]:
    """Up to `count` distinct random architectures whose widths are not in `exclude` (widths JSON),
    named random0, random1, ...; fewer only in a space too small to hold them."""
    rng = random.Random(seed)
    seen, picks = set(exclude), []
    for _ in range(100 * count):
        if len(picks) == count:
            break
        arch = space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})
        if arch.widths_json() not in seen:
            seen.add(arch.widths_json())
            picks.append((f"random{len(picks)}", arch))
    return picks


def sample_architectures(space: Architecture, count: int, seed: int) -> list[tuple[str, Architecture]]:
    """The base, the smallest and `count` random architectures, named."""
    rng = random.Random(seed)
    picks = [("base", space), ("smallest", space.smallest())]
    for i in range(count):
        picks.append((f"random{i}", space.with_widths({d.name: rng.choice(d.choices()) for d in space.dims})))
    return picks
