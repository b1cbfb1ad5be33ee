"""Resource budget and reduction schedule.

The budget is a fraction of the base network's resource (default) or an absolute value in the
metric's unit. Iteration t asks for a cut of dR_t = initial_reduction * base * decay**t, with the
last step clipped so the target never goes below the budget.

A budget is refused before the search starts when the space cannot reach it (below the smallest
network) or when it asks for nothing: an absolute budget at or above the base network's resource
(the value was most likely meant in another unit, or as a fraction). A relative budget of 1 is
allowed and means "the base network": the search scores it and stops after 0 iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from netadapt.errors import NetAdaptError
from netadapt.resources.spread import Interval


class BudgetError(NetAdaptError):
    """A budget the search space cannot reach."""


class OverBudget(NetAdaptError):
    """The final network measures over its budget (raised only when asked: `evaluate.fail_over_budget`)."""

    exit_code = 3


def absolute_budget(budget: float, budget_type: str, base: float) -> float:
    """The budget in the metric's unit: a fraction of `base` (relative) or the value itself."""
    return budget * base if budget_type == "relative" else budget


MET, MISSED, UNDECIDED = "met", "missed", "undecided"


def interval_verdict(low: float, high: float, limit: float) -> str:
    """`met` when the whole interval is within `limit`, `missed` when all of it is above, else
    `undecided` (it straddles the limit: the timings cannot tell, within their noise)."""
    return MET if high <= limit else (MISSED if low > limit else UNDECIDED)


@dataclass(frozen=True)
class BudgetCheck:
    """The final network's resource as measured (latency on the device now, or exact MACs/params)
    against the budget on the same scale: a relative latency budget is a fraction of the base
    network measured beside it, so machine-speed drift since profiling cancels out.

    A latency carries its bootstrap 95% interval (`low`, `high`, in the unit, `spread`; for a
    relative budget the interval of the ratio to the base, times the base): the budget is met when
    all of it is within budget * (1 + tolerance), missed when all of it is above, and undecided
    within noise when it straddles that limit. An undecided check (after `timings` timings, pooled)
    counts as met: nothing measured shows the network over its budget; its message says undecided
    and names the interval. `base`: the base network's measured latency, for a relative budget."""

    metric: str
    unit: str
    measured: float
    budget: float
    tolerance: float
    low: float | None = None  # None: exact (the measured value itself)
    high: float | None = None
    base: float | None = None
    timings: int = 1

    @property
    def ratio(self) -> float:
        return self.measured / self.budget

    @property
    def verdict(self) -> str:
        """`met`, `missed`, or `undecided` (the interval straddles budget * (1 + tolerance))."""
        low = self.measured if self.low is None else self.low
        high = self.measured if self.high is None else self.high
        return interval_verdict(low, high, self.budget * (1.0 + self.tolerance))

    @property
    def met(self) -> bool:
        """Not missed: an undecided check counts as met (see the class)."""
        return self.verdict != MISSED

    def describe(self) -> str:
        """The check in words, the interval named and the tolerance stated wherever it decides:
        `measured latency 0.29 ms is within the budget 0.305 ms (0.951 of it): met (tolerance 5%)`,
        `... is over the budget ... (1.040 of it) but within its 5% tolerance: met`, `... is OVER the
        budget ... (1.154 of it), beyond its 5% tolerance: missed`, `measured latency 0.412 [0.405,
        0.43] of the base (1.23 ms beside 2.99 ms) straddles the budget 0.4 of the base (1.030 of it)
        with its 5% tolerance: undecided within noise after 3 timings, counted as met`."""
        low = self.measured if self.low is None else self.low
        high = self.measured if self.high is None else self.high
        if self.base:  # a relative budget: on the budget's scale, a fraction of the base
            shown = Interval(self.measured / self.base, low / self.base, high / self.base)
            head = (f"measured {self.metric} {self._figure(shown)} of the base ({self.measured:.4g} {self.unit} "
                    f"beside {self.base:.4g} {self.unit})")
            budget = f"the budget {self.budget / self.base:.6g} of the base ({self.ratio:.3f} of it)"
        else:
            head = f"measured {self.metric} {self._figure(Interval(self.measured, low, high))} {self.unit}"
            budget = f"the budget {self.budget:.6g} {self.unit} ({self.ratio:.3f} of it)"
        timed = f"after {self.timings} timing{'s' if self.timings != 1 else ''}"
        if self.verdict == UNDECIDED:
            return (f"{head} straddles {budget} with its {self.tolerance:.0%} tolerance: undecided within noise "
                    f"{timed}, counted as met")
        if not self.tolerance:
            return f"{head} is {'within' if self.met else 'OVER'} {budget}: {'met' if self.met else 'missed'} " \
                   f"(exact, no tolerance)"
        if self.ratio <= 1.0 and self.met:
            return f"{head} is within {budget}: met (tolerance {self.tolerance:.0%})"
        if self.met:
            return f"{head} is over {budget} but within its {self.tolerance:.0%} tolerance: met"
        spread = f", all of its interval, {timed}" if low < high else ""
        return f"{head} is OVER {budget}, beyond its {self.tolerance:.0%} tolerance{spread}: missed"

    @staticmethod
    def _figure(interval: Interval) -> str:
        """A point as before (6 significant digits), an interval as `0.412 [0.405, 0.43]`."""
        return f"{interval.value:.6g}" if interval.low == interval.high else str(interval)


def final_budget_check(metric: str, budget: float, budget_type: str, tolerance: float, metrics: dict) -> BudgetCheck:
    """The final network (evaluate's `metrics`) against `search.budget`, in the search metric,
    measured where it can be: latency on the device beside the base network (within `tolerance`,
    with its interval: the ratio's for a relative budget, `latency_ratio_ci95_*`, else the final
    network's, `latency_measured_ms_ci95_*`), MACs and parameters exactly."""
    if metric == "latency":
        final, base = metrics["latency_measured_ms"], metrics["base_latency_measured_ms"]
        if budget_type == "relative":
            ratio = final / base
            low, high = (metrics.get(f"latency_ratio_ci95_{end}", ratio) * base for end in ("low", "high"))
        else:
            low, high = (metrics.get(f"latency_measured_ms_ci95_{end}", final) for end in ("low", "high"))
        return BudgetCheck("latency", "ms", final, absolute_budget(budget, budget_type, base), tolerance, low, high,
                           base if budget_type == "relative" else None, int(metrics.get("latency_timings", 1)))
    base = metrics["base_macs"] if metric == "macs" else metrics["base_params"]
    return BudgetCheck(metric, metric, metrics[metric], absolute_budget(budget, budget_type, base), 0.0)


@dataclass(frozen=True)
class MeasuredCheck:
    """The search's answer measured on the device, on the budget's own scale (a fraction of the base
    network measured beside it, or ms), with its bootstrap 95% interval (`measured_low`,
    `measured_high`; None in checks recorded before intervals: the measurement alone): the lookup
    table's estimate is only a model of that. Met unless all of the interval is over the limit (an
    undecided check, straddling it, counts as met, as evaluate's does)."""

    arch: str  # the answer's widths JSON
    resource_estimated: float  # its estimate by the resource model
    measured: float  # its measurement, on the budget's scale
    limit: float  # the budget, on the same scale
    measured_low: float | None = None
    measured_high: float | None = None

    @classmethod
    def of(cls, arch: str, resource_estimated: float, measured: Interval | float, limit: float) -> "MeasuredCheck":
        """A check of a measurement with its interval (a bare figure: a point, as an exact device gives)."""
        if not isinstance(measured, Interval):
            measured = Interval.point(float(measured))
        return cls(arch, resource_estimated, measured.value, limit, measured.low, measured.high)

    @property
    def interval(self) -> Interval:
        low, high = self.measured_low, self.measured_high
        return Interval(self.measured, self.measured if low is None else low, self.measured if high is None else high)

    @property
    def verdict(self) -> str:
        return interval_verdict(self.interval.low, self.interval.high, self.limit)

    @property
    def met(self) -> bool:
        return self.verdict != MISSED

    @classmethod
    def from_records(cls, records: Sequence[dict]) -> list["MeasuredCheck"]:
        """The checks as a history or progress file recorded them (`asdict` of each); a record of
        other fields or types is a `ValueError` naming it, for the caller to name the file."""
        checks = []
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        for record in records:
            try:
                check = cls(**record)
            except TypeError as exc:
                raise ValueError(f"not a measured check: {record!r} ({exc})") from None
            if not isinstance(check.arch, str) or not all(number(getattr(check, f)) for f in
                                                          ("resource_estimated", "measured", "limit")) or \
                    not all(getattr(check, f) is None or number(getattr(check, f))
                            for f in ("measured_low", "measured_high")):
                raise ValueError(f"not a measured check: {record!r} (arch must be a string, the rest numbers)")
            checks.append(check)
        return checks


@dataclass(frozen=True)
class Schedule:
    base: float  # resource of the base (largest) network
    budget: float  # absolute, in the metric's unit
    initial_reduction: float
    decay: float

    @classmethod
    def from_settings(cls, base: float, smallest: float, budget: float, budget_type: str,
                      initial_reduction: float, decay: float, unit: str) -> "Schedule":
        absolute = absolute_budget(budget, budget_type, base)
        if budget_type == "absolute" and absolute >= base:
            raise BudgetError(f"search.budget: {absolute:.6g} {unit} is at or above the base network's {base:.6g} "
                              f"{unit}: there is nothing to search; give a budget below {base:.6g} {unit}, or "
                              f"search.budget_type: relative with a fraction of the base (1 = the base network)")
        if absolute < smallest:
            raise BudgetError(f"search.budget: {absolute:.6g} {unit} is below the smallest network of the "
                              f"space ({smallest:.6g} {unit} = {smallest / base:.3f} of the base network's "
                              f"{base:.6g} {unit}); the smallest achievable budget is {smallest:.6g} {unit}")
        return cls(base, absolute, initial_reduction, decay)

    @property
    def met_by_base(self) -> bool:
        return self.base <= self.budget

    def reduction(self, iteration: int) -> float:
        """dR_t before any halving."""
        return self.initial_reduction * self.base * self.decay ** iteration

    def target(self, current: float, reduction: float) -> float:
        """The resource the next iterate must meet: one cut below `current`, never below the budget."""
        return max(current - reduction, self.budget)
