"""The console's budget messages say what the figures say: the tolerance wherever it decides a
verdict, "over" for an answer that measures over (never "met the budget" after it), and the counts
the metrics report (`reused_iterations`, `candidates_evaluated`)."""

from __future__ import annotations

import logging

import pytest

from netadapt.schedule import BudgetCheck
from tests.netadapt.test_search import Counting, offset_device, run_measured


@pytest.mark.parametrize("measured, budget, tolerance, wording", [
    (0.29, 0.305, 0.05, "is within the budget 0.305 ms (0.951 of it): met (tolerance 5%)"),
    (0.317, 0.305, 0.05, "is over the budget 0.305 ms (1.039 of it) but within its 5% tolerance: met"),
    (0.352, 0.305, 0.05, "is OVER the budget 0.305 ms (1.154 of it), beyond its 5% tolerance: missed"),
])
def test_the_budget_check_states_the_tolerance_that_decides_it(measured, budget, tolerance, wording):
    check = BudgetCheck("latency", "ms", measured, budget, tolerance)
    text = check.describe()
    assert text == f"measured latency {measured:g} ms {wording}"
    assert f"({measured / budget:.3f} of it)" in text, "the ratio printed is the figures'"
    assert text.endswith("met" if check.met else "missed") or text.endswith("(tolerance 5%)")
    assert ("missed" in text) is (not check.met)


def test_an_exact_count_has_no_tolerance_and_says_so():
    assert BudgetCheck("macs", "MACs", 90, 100, 0.0).describe().endswith("(0.900 of it): met (exact, no tolerance)")
    over = BudgetCheck("macs", "MACs", 101, 100, 0.0).describe()
    assert over.endswith("is OVER the budget 100 MACs (1.010 of it): missed (exact, no tolerance)")


def test_an_answer_that_stays_over_is_reported_over_with_the_metrics_counts(caplog):
    """The device never gets faster: every check measures 1.0 against 0.5. The search's last word
    says over (it used to say "met the budget ... measured 1 against 0.5"), and its counts are the
    whole search's, as the metrics report them (not the last continuation's)."""
    evaluate = Counting()
    with caplog.at_level(logging.INFO, logger="netadapt"):
        result, checks = run_measured(0.5, lambda arch: 1.0, rounds=2, evaluate=evaluate)
    assert not checks[-1].met and len(checks) == 3
    assert "met the budget" not in result.message
    assert result.message.endswith("the answer measures 1 against a budget of 0.5 (2.000 of it): over it after "
                                   "2 continuation(s)")
    assert f"in {result.iterations} iterations ({result.reused_iterations} reused, " \
           f"{result.candidates_evaluated} candidates evaluated)" in result.message
    assert result.candidates_evaluated == evaluate.calls and result.reused_iterations == 0
    lines = [r.getMessage() for r in caplog.records if "the answer measures" in r.getMessage()]
    assert len(lines) == 3 and all(line.endswith(": over") and "(2.000 of it;" in line for line in lines)


def test_an_answer_searched_on_until_within_says_within_with_the_metrics_counts(caplog):
    evaluate = Counting()
    with caplog.at_level(logging.INFO, logger="netadapt"):
        result, checks = run_measured(0.5, offset_device(0.08), evaluate=evaluate)
    last = checks[-1]
    assert last.met and len(checks) >= 2
    assert result.message.endswith(f"the answer measures {last.measured:.4g} against a budget of 0.5 "
                                   f"({last.measured / 0.5:.3f} of it): within it after {len(checks) - 1} "
                                   f"continuation(s)")
    assert f"({result.reused_iterations} reused, {result.candidates_evaluated} candidates evaluated)" in result.message
    assert result.candidates_evaluated == evaluate.calls
    lines = [r.getMessage() for r in caplog.records if "the answer measures" in r.getMessage()]
    assert lines[0].endswith(": over") and lines[-1].endswith(": within it")
