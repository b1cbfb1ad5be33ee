"""Measured latencies state their uncertainty: a bootstrap 95% interval of the median over timing
rounds (`spread`), a budget check that compares that interval with the budget (met / missed /
undecided within noise, timed again up to a bound), and two timings of one network in one run that
agree within the intervals they report. Timings come from synthetic rounds or from the fake device
(`tests/fake_device.py`) with seeded noise: no wall clock."""

from __future__ import annotations

import pytest

from netadapt.arch import ModelSpec
from netadapt.config import parse_config
from netadapt.models import build_supernet
from netadapt.resources import backends, metric
from netadapt.resources.metric import SideBySide, network_times, time_until_decided
from netadapt.resources.spread import Interval, Rounds, median_interval, ratio_interval
from netadapt.schedule import MISSED, UNDECIDED, BudgetCheck, MeasuredCheck, final_budget_check
from tests.presets import FAKE_DEVICE


def rounds(*bursts: tuple[float, ...]) -> Rounds:
    return Rounds(tuple(bursts))


def test_a_point_has_a_zero_width_interval_and_noise_a_seeded_one():
    assert median_interval(Rounds.point(2.0)) == Interval(2.0, 2.0, 2.0) and str(Interval.point(2.0)) == "2"
    noisy = rounds(*[(1.0 + 0.01 * ((7 * r) % 11), 1.0 + 0.013 * ((3 * r) % 7), 0.98 + 0.005 * r) for r in range(12)])
    interval = median_interval(noisy)
    assert interval.low < interval.value == noisy.median < interval.high
    assert median_interval(noisy) == interval, "seeded: the same timings give the same interval"
    assert str(interval).startswith(f"{interval.value:.4g} [")


def test_a_ratio_resamples_paired_rounds_so_drift_that_slows_both_cancels():
    """Round r runs at speed 1 + r/10 for both networks: each median's interval is wide, their
    ratio (always 0.5) has none."""
    base = rounds(*[(1.0 * (1 + r / 10),) for r in range(10)])
    final = rounds(*[(0.5 * (1 + r / 10),) for r in range(10)])
    assert median_interval(base).high / median_interval(base).low > 1.3
    assert ratio_interval(final, base) == Interval(0.5, 0.5, 0.5)


@pytest.mark.parametrize("low, high, verdict, met", [
    (0.38, 0.41, "met", True),  # all within 0.4 * 1.05 = 0.42
    (0.43, 0.45, "missed", False),  # all above it
    (0.40, 0.45, "undecided", True),  # straddles: counts as met, and says so
])
def test_the_budget_check_compares_the_interval_with_the_budget(low, high, verdict, met):
    metrics = {"latency_measured_ms": 0.412, "base_latency_measured_ms": 1.0, "latency_ratio_ci95_low": low,
               "latency_ratio_ci95_high": high, "latency_timings": 3}
    check = final_budget_check("latency", 0.4, "relative", 0.05, metrics)
    assert check.verdict == verdict and check.met is met
    text = check.describe()
    assert text.startswith(f"measured latency 0.412 [{low:.4g}, {high:.4g}] of the base (0.412 ms beside 1 ms) ")
    assert text.endswith({
        "met": "is over the budget 0.4 of the base (1.030 of it) but within its 5% tolerance: met",
        "missed": "is OVER the budget 0.4 of the base (1.030 of it), beyond its 5% tolerance, all of its interval, "
                  "after 3 timings: missed",
        "undecided": "straddles the budget 0.4 of the base (1.030 of it) with its 5% tolerance: undecided within "
                     "noise after 3 timings, counted as met"}[verdict])


def test_an_absolute_budget_checks_the_final_networks_own_interval_and_old_metrics_still_read():
    metrics = {"latency_measured_ms": 2.0, "base_latency_measured_ms": 5.0, "latency_measured_ms_ci95_low": 1.9,
               "latency_measured_ms_ci95_high": 2.2}
    check = final_budget_check("latency", 2.0, "absolute", 0.05, metrics)
    assert check.verdict == UNDECIDED and check.describe().startswith("measured latency 2 [1.9, 2.2] ms straddles ")
    old = final_budget_check("latency", 2.0, "absolute", 0.05, {"latency_measured_ms": 2.2,
                                                                 "base_latency_measured_ms": 5.0})
    assert old.verdict == MISSED and (old.low, old.high) == (2.2, 2.2), "metrics written before intervals: a point"
    assert BudgetCheck("macs", "MACs", 90, 100, 0.0).describe().endswith("met (exact, no tolerance)")


def test_a_search_check_is_over_only_when_all_of_its_interval_is():
    straddling = MeasuredCheck.of("a", 100.0, Interval(0.52, 0.48, 0.55), 0.5)
    over = MeasuredCheck.of("a", 100.0, Interval(0.56, 0.53, 0.6), 0.5)
    assert straddling.met and straddling.verdict == UNDECIDED and not over.met
    recorded = MeasuredCheck.from_records([{"arch": "a", "resource_estimated": 1.0, "measured": 0.6, "limit": 0.5}])
    assert recorded[0].interval == Interval.point(0.6) and not recorded[0].met, "a check recorded before intervals"
    with pytest.raises(ValueError, match="the rest numbers"):
        MeasuredCheck.from_records([{"arch": "a", "resource_estimated": 1.0, "measured": 0.6, "limit": 0.5,
                                     "measured_low": "low"}])


def timings_of(*ratios_by_call: list[float]):
    """A `time_once` whose n-th call times the base at 1 ms (per round) and the final network at the
    n-th list's figures, one a round; it counts its calls."""
    calls = []

    def time_once() -> list[Rounds]:
        figures = ratios_by_call[min(len(calls), len(ratios_by_call) - 1)]
        calls.append(1)
        return [rounds(*[(1.0,)] * len(figures)), rounds(*[(f,) for f in figures])]
    return time_once, calls


def test_an_undecided_timing_is_timed_again_pooled_up_to_the_bound():
    decided, calls = timings_of([0.30, 0.31, 0.32, 0.30])
    assert time_until_decided(decided, True, 0.42, 2).timings == 1 and len(calls) == 1, "decided: timed once"
    straddling, calls = timings_of([0.38, 0.46, 0.40, 0.44])
    timed = time_until_decided(straddling, True, 0.42, 2)
    assert len(calls) == 3 and timed.timings == 3 and len(timed.final.bursts) == 12, "two more timings, pooled"
    assert timed.ratio().low <= 0.42 <= timed.ratio().high, "still undecided: the bound holds"
    settles, calls = timings_of([0.38, 0.46, 0.40, 0.44], [0.30] * 20)
    assert time_until_decided(settles, True, 0.42, 5).timings == 2, "a second, quiet timing decides it"
    assert time_until_decided(straddling, True, 0.42, 0).timings == 1, "0: never timed again"


@pytest.fixture
def noisy_device(tmp_path, monkeypatch):
    """The fake device with 8% seeded noise per invocation (numbered in a file of this test's own)."""
    monkeypatch.setenv("FAKE_DEVICE_CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("FAKE_DEVICE_NOISE", "0.08")
    backends.command_overhead_ms.cache_clear()  # timed on this device, not one of an earlier test
    yield parse_config({"profile": {**FAKE_DEVICE, "network_repeats": 40}}).profile
    backends.command_overhead_ms.cache_clear()


def test_two_timings_of_one_network_in_one_run_agree_within_their_intervals(noisy_device):
    supernet = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3)).eval()
    space = supernet.space()
    first, second = (SideBySide(*network_times(noisy_device, supernet, [space, space.narrowest()], seed=0))
                     for _ in range(2))
    assert first.final.median != second.final.median, "the noise is there: two timings differ"
    for a, b in ((first.base_ms(), second.base_ms()), (first.final_ms(), second.final_ms()),
                 (first.ratio(), second.ratio())):
        assert a.low < a.value < a.high and a.high / a.low < 1.2, "an interval the noise (8%) explains"
        assert a.low <= b.value <= a.high and b.low <= a.value <= b.high, (a, b)


def test_the_search_measures_its_answer_with_an_interval_on_the_budgets_scale(noisy_device):
    supernet = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3)).eval()
    cfg = parse_config({"profile": {**FAKE_DEVICE, "network_repeats": 40}, "search": {"budget": 0.5}})
    measure, limit = metric.measured_budget(cfg, supernet)
    measured = measure(supernet.space().narrowest())
    assert limit == 0.5 and measured.low < measured.value < measured.high < 1.0


@pytest.mark.parametrize("value, message", [(-1, "must be >= 0, got -1"), (1.5, "must be an integer, got 1.5"),
                                            (101, "must be <= 100, got 101")])
def test_the_retiming_bound_is_checked_with_the_config(value, message):
    from netadapt.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^search.undecided_retimings: {message}$"):
        parse_config({"search": {"undecided_retimings": value}})
    assert parse_config({}).search.undecided_retimings == 2
