"""Device profiling: measure every distinct unit of the search space once, calibrate, and check.

`measure_table` runs the steps: the space's units (`enumeration`) are timed against a reference
network (`timing`), the table is rescaled and fitted on measured calibration networks
(`samples`, `calibration`), and checked on *held-out* networks, which took no part in its
rescaling or calibration fit. `profile_space` measures again, then refuses, a table whose
held-out error exceeds a threshold: a busy machine otherwise yields a wrong table without a word.

With a cache folder, measured units are appended to a per-device cache as their group finishes
(`cache.UnitCache`), and a run resumes from it: only units not in it are timed. An attempt whose
table fails the held-out check discards the cache, so the next attempt times every unit again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from netadapt.errors import NetAdaptError
from netadapt.resources.cache import UnitCache, context_digest
from netadapt.resources.calibration import fit_calibration
from netadapt.resources.command import CommandSettings, template_files
from netadapt.resources.contention import Contention, MachineWatch
from netadapt.resources.enumeration import enumerate_layers
from netadapt.resources.lookup_table import KEY_FIELDS, LatencyTable, TableContext
from netadapt.resources.samples import calibration_architectures, held_out_architectures
from netadapt.resources.spread import median_interval
from netadapt.resources.timing import ProfileSettings, network_timings, reference_runner, time_units

log = logging.getLogger("netadapt")

TIME_FIELDS = ["latency_ms", "p10_ms", "p90_ms"]  # the columns of a row that rescaling multiplies

class UnstableProfileError(NetAdaptError):
    """Every profiling attempt gave a table whose held-out error exceeds `profile.max_error`."""


def _timing_code() -> str:
    """Digest of the modules that build a unit and time it: an edit there re-times cached units."""
    here = Path(__file__).resolve().parent
    return context_digest({name: (here / name).read_text() for name in ("units.py", "backends.py")})


def cache_context(supernet: nn.Module, settings: ProfileSettings) -> dict:
    """What a cached unit time depends on besides the unit: the backend and its settings, the
    versions and the code (`units.py`, `backends.py`) that build and run it, and the reference
    network its group was rescaled by. A command's template, pattern and the files it names (a
    device script) count; a command that runs `{python}` runs here, so this machine's CPU and
    onnxruntime version count too."""
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
    measured_ms (with its bootstrap 95% interval, measured_ci95_low_ms / _high_ms), rel_error, arch. Only held-out networks say how good the table is elsewhere.
    """

    table: LatencyTable
    fidelity: pd.DataFrame
    reference_drift: float = 1.0  # max / min of the reference bursts' medians while timing units
    unit_repeat_spread: float = 1.0  # median over units of p90 / p10 of their repeats
    attempts: int = 1  # profiling runs it took (see `profile_space`'s max_attempts)
    units_measured: int = 0  # units this attempt timed
    units_from_cache: int = 0  # units this attempt read from the resume cache
    contention: Contention = Contention(1.0, None)  # what the reference and the OS saw while timing units

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
                "units_from_cache": self.units_from_cache, **self.contention.metrics()}


def profile_space(supernet: nn.Module, settings: ProfileSettings, fidelity_samples: int = 8, seed: int = 0,
                  interpolate: bool = False, max_error: float = math.inf, max_attempts: int = 1,
                  cache_dir: Path | None = None) -> Profile:
    """Measure, calibrate and check a table (`measure_table`); measure again while its held-out mean
    relative error exceeds `max_error`, or while sustained contention slowed its reference workload
    (`contention`), at most `max_attempts` times in all.

    The first table within `max_error` measured without sustained contention is returned. If every
    attempt saw contention, the best one within `max_error` is returned with a warning that names
    what was seen; if none is within `max_error`, `UnstableProfileError` names `profile.max_error`
    with the best attempt's error, drift, spread and contention, and no table is returned. So a
    table over the threshold is never used, and one measured beside a neighbour never silently.
    With `cache_dir` (one folder per device), units resume from and are appended to a `UnitCache`
    of this measurement context; a bad or contended attempt discards it, so the next one re-times
    every unit.
    """
    cache = UnitCache(cache_dir, cache_context(supernet, settings)) if cache_dir is not None else None
    best: Profile | None = None
    usable: Profile | None = None  # the best attempt within max_error (all of them contended)
    fastest: float | None = None  # the fastest reference any attempt timed: what slowdowns compare with
    for attempt in range(1, max_attempts + 1):
        result = measure_table(supernet, settings, fidelity_samples, seed, interpolate, cache=cache,
                               fastest_ms=fastest)
        result.attempts = attempt
        seen = result.contention
        known = [x for x in (fastest, seen.fastest_ms) if x]
        fastest = min(known) if known else None
        figures = (f"held-out mean error {result.error:.1%} (max {result.held_out.rel_error.max():.1%}), "
                   f"in-sample {result.metrics()['lut_in_sample_mean_abs_error']:.1%}, reference drift "
                   f"{result.reference_drift:.2f}x, unit repeat spread {result.unit_repeat_spread:.2f}x; "
                   f"{seen.describe()}")
        within = result.error <= max_error
        if within and not seen.sustained:
            log.info("profile: attempt %d/%d: %s", attempt, max_attempts, figures)
            return result
        why = "sustained contention" if within else f"above profile.max_error {max_error:.1%}"
        log.warning("profile: attempt %d/%d: %s: %s%s", attempt, max_attempts, figures, why,
                    ": measuring again" if attempt < max_attempts else "")
        if cache is not None:  # its units made a bad table, or were timed beside a neighbour: never reuse them
            log.warning("profile: discarded %d cached unit(s) of the attempt (%s)", cache.discard(), cache.path)
        if within and (usable is None or result.error < usable.error):
            usable = result
        if best is None or result.error < best.error:
            best = result
    if usable is not None:
        log.warning("profile: every attempt saw sustained contention; using attempt %d, whose held-out mean error "
                    "%.1f%% is within profile.max_error %.1f%%; %s: profile on a quiet machine for a table to trust",
                    usable.attempts, 100 * usable.error, 100 * max_error, usable.contention.describe())
        return usable
    assert best is not None  # max_attempts >= 1
    raise UnstableProfileError(
        f"profile.max_error: the latency table's mean error on {len(best.held_out)} held-out networks was "
        f"{best.error:.1%} (max {best.held_out.rel_error.max():.1%}) at best in {max_attempts} attempt(s), above "
        f"{max_error:.1%}; {best.contention.describe()}, reference drift {best.reference_drift:.2f}x (1.00 = "
        f"steady), unit repeat spread p90/p10 {best.unit_repeat_spread:.2f}x: the machine was probably busy; "
        f"profile on a quiet machine, raise profile.repeats / profile.network_repeats, or raise profile.max_error; "
        f"no table was written")


def measure_table(supernet: nn.Module, settings: ProfileSettings, fidelity_samples: int = 8, seed: int = 0,
                  interpolate: bool = False, cache: UnitCache | None = None,
                  fastest_ms: float | None = None) -> Profile:
    """Measure every reachable unit, calibrate the table, and check it against measured networks.

    1. The space's units (`enumerate_layers`) are timed in network-sized rotation groups, each group
       followed by a burst of the full network (`reference_runner`), and rescaled to the
       reference's overall speed (`time_units`).
    2. Calibration networks (full, smallest, the width ladder, a few random:
       `calibration_architectures`) and held-out networks (`fidelity_samples` random ones, none of
       them a calibration network) are measured together, in one rotation (`network_timings`; each with its
       bootstrap 95% interval, `spread`).
    3. The table is rescaled from the reference's speed to the full network's speed in that
       rotation, and `measured = scale * table sum + n_units * offset + constant` is fitted by least
       squares over the calibration networks (`fit_calibration`); the table's entries are multiplied
       by `scale`. A unit timed alone pays a per-call cost that a network pays less of; the offset
       takes that out per unit and the scale corrects the rest in proportion, so neither the full
       network nor the narrowest (both in the fit) is mis-estimated. All comparisons are then at one
       machine speed.
    4. Every measured network is compared with its estimate; those of the fit are marked `in_fit`,
       since their error is optimistic.

    Units in `cache` are not timed again (`time_units`). The reference's medians, over the fastest
    reference known (`fastest_ms`, an earlier attempt's; the cached groups'), and the OS's figures
    say whether a neighbour stayed while units were timed (`contention`).
    """
    space = supernet.space()
    reference = reference_runner(supernet, settings)
    watch = MachineWatch()
    units = time_units(enumerate_layers(supernet), settings, group_size=max(1, len(supernet.layers(space))),
                       reference=reference, seed=seed, cache=cache, watch=watch)
    cached = units.group_reference_ms[:len(units.group_reference_ms) - max(len(units.references_ms) - 1, 0)]
    known = [r for r in [*cached, fastest_ms] if r]
    contention = watch.contention(units.references_ms, min(known) if known else None)
    calibration = calibration_architectures(space)
    fitted = {a.widths_json() for _, a in calibration}
    held_out = held_out_architectures(space, fidelity_samples, seed, exclude=fitted)
    checked = calibration + held_out
    timings = dict(zip((a.widths_json() for _, a in checked),
                       network_timings(supernet, [a for _, a in checked], settings, seed)))
    measured = {arch: rounds.median for arch, rounds in timings.items()}
    context = TableContext.current(settings.backend, settings.threads, settings.batch_size,
                                   (settings.command or CommandSettings()).template)
    at_speed = _rescaled_table(units.rows, measured[space.widths_json()] / units.reference_ms, context, interpolate)
    fit_scale, offset, constant = fit_calibration(
        [at_speed.estimate_layers(supernet.layers(a)) for _, a in calibration],
        [len(supernet.layers(a)) for _, a in calibration], [measured[a.widths_json()] for _, a in calibration])
    table = _rescaled_table(units.rows, fit_scale, context, interpolate, constant, offset)
    log.info("latency table: %d units, scale %.3f, offset %.5f ms per unit, constant %.4f ms (fitted on %d "
             "networks)", len(table), fit_scale, table.unit_offset_ms, table.constant_ms, len(calibration))
    report = []
    for name, arch in checked:
        estimated, real = table.estimate_layers(supernet.layers(arch)), measured[arch.widths_json()]
        spread = median_interval(timings[arch.widths_json()])
        report.append({"network": name, "in_fit": arch.widths_json() in fitted, "estimated_ms": estimated,
                       "measured_ms": real, "measured_ci95_low_ms": spread.low, "measured_ci95_high_ms": spread.high,
                       "rel_error": abs(estimated - real) / real, "arch": arch.widths_json()})
    profile = Profile(table, pd.DataFrame(report), units.drift, units.repeat_spread,
                      units_measured=units.measured, units_from_cache=units.from_cache, contention=contention)
    table.held_out_error = profile.error  # saved with it: a later stage refuses it over profile.max_error
    return profile


def _rescaled_table(rows: list[dict], factor: float, context: TableContext, interpolate: bool,
                    constant: float = 0.0, offset: float = 0.0) -> LatencyTable:
    """Multiply every time of `rows` by `factor`, in place, and make a table of them.

    `measure_table` rescales the same rows twice, first to the full network's speed, then by the
    fitted scale: in place, each calibrated time is (time * speed) * fit scale, rounded in that
    order, and the units' repeat spread is read from the calibrated rows."""
    for row in rows:
        for key in TIME_FIELDS:
            row[key] *= factor
    return LatencyTable(context, pd.DataFrame(rows, columns=KEY_FIELDS + TIME_FIELDS), constant, interpolate, offset)
