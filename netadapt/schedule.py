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


class BudgetError(NetAdaptError):
    """A budget the search space cannot reach."""


class OverBudget(NetAdaptError):
    """The final network measures over its budget (raised only when asked: `evaluate.fail_over_budget`)."""

    exit_code = 3


def absolute_budget(budget: float, budget_type: str, base: float) -> float:
    """The budget in the metric's unit: a fraction of `base` (relative) or the value itself."""
    return budget * base if budget_type == "relative" else budget


@dataclass(frozen=True)
class BudgetCheck:
    """The final network's resource as measured (latency on the device now, or exact MACs/params)
    against the budget on the same scale: a relative latency budget is a fraction of the base
    network measured beside it, so machine-speed drift since profiling cancels out."""

    metric: str
    unit: str
    measured: float
    budget: float
    tolerance: float

    @property
    def ratio(self) -> float:
        return self.measured / self.budget

    @property
    def met(self) -> bool:
        return self.ratio <= 1.0 + self.tolerance

    def describe(self) -> str:
        """The check in words, the tolerance stated wherever it decides: `... is within the budget ...
        (0.951 of it)`, `... is over the budget ... (1.040 of it) but within its 5% tolerance: met`,
        `... is OVER the budget ... (1.154 of it), beyond its 5% tolerance: missed`."""
        head = f"measured {self.metric} {self.measured:.6g} {self.unit}"
        budget = f"the budget {self.budget:.6g} {self.unit} ({self.ratio:.3f} of it)"
        if not self.tolerance:
            return f"{head} is {'within' if self.met else 'OVER'} {budget}: {'met' if self.met else 'missed'} " \
                   f"(exact, no tolerance)"
        if self.ratio <= 1.0:
            return f"{head} is within {budget}: met (tolerance {self.tolerance:.0%})"
        if self.met:
            return f"{head} is over {budget} but within its {self.tolerance:.0%} tolerance: met"
        return f"{head} is OVER {budget}, beyond its {self.tolerance:.0%} tolerance: missed"


def final_budget_check(metric: str, budget: float, budget_type: str, tolerance: float, metrics: dict) -> BudgetCheck:
    """The final network (evaluate's `metrics`) against `search.budget`, in the search metric,
    measured where it can be: latency on the device beside the base network (within `tolerance`),
    MACs and parameters exactly."""
    if metric == "latency":
        return BudgetCheck("latency", "ms", metrics["latency_measured_ms"],
                           absolute_budget(budget, budget_type, metrics["base_latency_measured_ms"]), tolerance)
    base = metrics["base_macs"] if metric == "macs" else metrics["base_params"]
    return BudgetCheck(metric, metric, metrics[metric], absolute_budget(budget, budget_type, base), 0.0)


@dataclass(frozen=True)
class MeasuredCheck:
    """The search's answer measured on the device, on the budget's own scale (a fraction of the base
    network measured beside it, or ms): the lookup table's estimate is only a model of that."""

    arch: str  # the answer's widths JSON
    resource_estimated: float  # its estimate by the resource model
    measured: float  # its measurement, on the budget's scale
    limit: float  # the budget, on the same scale

    @property
    def met(self) -> bool:
        return self.measured <= self.limit

    @classmethod
    def from_records(cls, records: Sequence[dict]) -> list["MeasuredCheck"]:
        """The checks as a history or progress file recorded them (`asdict` of each); a record of
        other fields or types is a `ValueError` naming it, for the caller to name the file."""
        checks = []
        for record in records:
            try:
                check = cls(**record)
            except TypeError as exc:
                raise ValueError(f"not a measured check: {record!r} ({exc})") from None
            if not isinstance(check.arch, str) or not all(isinstance(getattr(check, f), (int, float)) and
                                                          not isinstance(getattr(check, f), bool)
                                                          for f in ("resource_estimated", "measured", "limit")):
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
