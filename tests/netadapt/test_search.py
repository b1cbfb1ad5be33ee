"""Schedule, MCD candidates, the search loop, history reuse: on a tiny space with a synthetic score."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from netadapt.arch import ModelSpec
from netadapt.mcd import generate_candidates
from netadapt.models import build_supernet
from netadapt.resources.analytic import MacsModel
from netadapt.schedule import BudgetError, Schedule
from netadapt.search import SearchSettings, SearchStopped, mcd_candidates, search, search_measured, tightened_budget

MODEL = build_supernet(ModelSpec("mobilenet_v2", (1, 28, 28), 10))
SPACE = MODEL.space()
MACS = MacsModel(MODEL)
BASE, SMALLEST = MACS.estimate(SPACE), MACS.estimate(SPACE.smallest())


def score(arch) -> float:
    """A deterministic stand-in for holdout accuracy: grows with every width, unevenly per dimension."""
    return sum(math.log1p(w) * (1 + i % 3) for i, w in enumerate(arch.widths.values())) / 100


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, archs):
        self.calls += len(archs)
        return [(score(a), 0.0) for a in archs]


def schedule(budget: float) -> Schedule:
    return Schedule.from_settings(BASE, SMALLEST, budget, "relative", 0.1, 0.9, "MACs")


def run(budget: float, previous=None, previous_budget=None, evaluate=None, seed: int = 0):
    return search(SPACE, MACS, evaluate or Counting(), mcd_candidates(MACS, 6, 2), schedule(budget),
                  SearchSettings(seed), previous, previous_budget)


def test_schedule_arithmetic_and_last_step_clipping():
    s = Schedule.from_settings(100.0, 10.0, 0.5, "relative", 0.1, 0.8, "ms")
    assert s.budget == 50.0
    assert [round(s.reduction(t), 6) for t in range(3)] == [10.0, 8.0, 6.4]
    assert s.target(80.0, s.reduction(0)) == 70.0
    assert s.target(55.0, s.reduction(2)) == 50.0, "clipped to the budget"
    assert Schedule.from_settings(100.0, 10.0, 30.0, "absolute", 0.1, 0.8, "ms").budget == 30.0


def test_unreachable_budget_fails_before_searching_naming_the_smallest():
    with pytest.raises(BudgetError, match=rf"search.budget: .* is below the smallest network .*"
                                          rf"smallest achievable budget is {SMALLEST:.6g} MACs"):
        schedule(0.5 * SMALLEST / BASE)


def test_budget_at_or_above_the_base_finishes_at_once():
    evaluate = Counting()
    result = run(1.0, evaluate=evaluate)
    assert result.iterations == 0 and result.chosen == SPACE and "nothing to search" in result.message
    assert evaluate.calls == 1, "only the base network is scored"


def test_every_candidate_meets_its_target():
    rng = np.random.default_rng(0)
    target = BASE * 0.85
    candidates = generate_candidates(SPACE, BASE, target, MACS, 20, 2, rng)
    assert len(candidates) >= 5
    for c in candidates:
        assert c.resource == MACS.estimate(c.arch) <= target
        changed = [k for k, v in c.arch.widths.items() if v != SPACE.widths[k]]
        assert 1 <= len(changed)


def test_search_meets_the_budget_and_keeps_the_best_of_each_iteration():
    result = run(0.5)
    h = result.history
    assert result.resource_estimated <= 0.5 * BASE and result.iterations >= 3
    assert MACS.estimate(result.chosen) == result.resource_estimated
    for t in range(result.iterations):
        it = h[h.iteration == t]
        assert (it.resource_estimated <= it.target + 1e-9).all()
        kept = it[it.kept.astype(bool)]
        assert len(kept) == 1 and kept.holdout_acc.iloc[0] == it.holdout_acc.max()


def test_same_inputs_same_history_and_the_seed_matters():
    a, b, c = run(0.5), run(0.5), run(0.5, seed=1)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert not a.history.arch.equals(c.history.arch)


@pytest.mark.parametrize("first,second", [(0.7, 0.5), (0.5, 0.7), (0.5, 0.62)])
def test_reusing_an_earlier_history_equals_a_fresh_run(first, second):
    earlier = run(first)
    evaluate = Counting()
    reused = run(second, earlier.history, schedule(first).budget, evaluate=evaluate)
    fresh = run(second)
    assert reused.chosen == fresh.chosen and reused.iterations == fresh.iterations
    pd.testing.assert_frame_equal(reused.history.reset_index(drop=True), fresh.history.reset_index(drop=True),
                                  check_dtype=False)
    assert reused.reused_iterations >= 1
    assert evaluate.calls == reused.candidates_evaluated < fresh.candidates_evaluated


def test_a_looser_budget_met_by_a_recorded_unclipped_step_needs_no_evaluation():
    earlier = run(0.5)
    kept = earlier.history[earlier.history.kept.astype(bool) & (earlier.history.iteration >= 0)]
    unclipped = kept[~kept.clipped.astype(bool)]
    looser = float(unclipped.resource_estimated.iloc[-1]) / BASE  # exactly met by a recorded iterate
    evaluate = Counting()
    result = run(looser, earlier.history, schedule(0.5).budget, evaluate=evaluate)
    assert evaluate.calls == 0 and result.candidates_evaluated == 0
    assert result.resource_estimated == float(unclipped.resource_estimated.iloc[-1])


def test_no_candidate_can_cut_halves_then_stops_with_the_history():
    def never(current, r, target, rng):
        return []

    with pytest.raises(SearchStopped, match=r"iteration 0: no candidate could cut .* after 4 halvings") as stop:
        search(SPACE, MACS, Counting(), never, schedule(0.5), SearchSettings(0))
    assert list(stop.value.history.iteration) == [-1], "the base evaluation is kept"


def test_each_iteration_says_what_it_scores_before_scoring(caplog):
    """Iterations take minutes on real data: a line before the scoring, one after."""
    caplog.set_level("INFO", logger="netadapt")
    result = run(0.7)
    before = [r.message for r in caplog.records if "scoring" in r.message]
    after = [r.message for r in caplog.records if "holdout acc" in r.message]
    assert len(before) == len(after) == result.iterations >= 2
    assert before[0].startswith("search: iteration 0: scoring ") and "candidates for target" in before[0]


def test_capacity_split_keeps_candidates_near_the_current_network():
    """dR split in absolute resource asked most small blocks for more than they had, taking them to
    their minimum; each dimension giving a fraction of what it can give mostly cuts partially."""
    target = BASE * 0.9
    to_min = {}
    for split in ("capacity", "absolute"):
        moved = minimum = 0
        for seed in range(15):
            for c in generate_candidates(SPACE, BASE, target, MACS, 5, 2, np.random.default_rng(seed), split):
                assert c.resource <= target and c.resource == MACS.estimate(c.arch)
                changed = [d for d in SPACE.dims if c.arch.dim(d.name).width != d.width]
                moved += len(changed)
                minimum += sum(c.arch.dim(d.name).width == d.min_width and d.min_width > 0 for d in changed)
        to_min[split] = minimum / moved
    assert to_min["capacity"] < 0.25 * to_min["absolute"], to_min


def test_an_unknown_split_names_the_key():
    with pytest.raises(ValueError, match="search.split: unknown 'even'"):
        generate_candidates(SPACE, BASE, BASE * 0.9, MACS, 1, 2, np.random.default_rng(0), "even")


# -- the answer measured on the device: going on while it is over --------------------------------------

def offset_device(offset: float, counter: list | None = None):
    """A device the table misses a per-call cost on: the measured fraction of the base is the
    estimated one plus `offset` (the calibration's residual on a narrow network)."""
    def measure(arch) -> float:
        if counter is not None:
            counter.append(arch)
        return MACS.estimate(arch) / BASE + offset
    return measure


def run_measured(budget: float, measure, rounds: int = 3, evaluate=None, **kwargs):
    evaluate = evaluate or Counting()

    def once(sched, previous, previous_budget):
        return search(SPACE, MACS, evaluate, mcd_candidates(MACS, 6, 2), sched, SearchSettings(0), previous,
                      previous_budget)
    return search_measured(once, schedule(budget), SMALLEST, measure, budget, rounds, **kwargs)


def test_an_answer_measured_over_the_budget_is_searched_on_until_it_measures_within():
    plain = run(0.5)
    evaluate = Counting()
    result, checks = run_measured(0.5, offset_device(0.08), evaluate=evaluate)
    assert checks[0].arch == plain.chosen.widths_json() and not checks[0].met, "the table's answer is over"
    assert checks[-1].met and len(checks) >= 2 and checks[-1].arch == result.chosen.widths_json()
    assert offset_device(0.08)(result.chosen) <= 0.5
    # it went on from the table's answer: the first search's history is a prefix of the final one
    first = plain.history.reset_index(drop=True)
    pd.testing.assert_frame_equal(result.history.iloc[:len(first)].reset_index(drop=True), first,
                                  check_dtype=False)
    assert result.iterations > plain.iterations and result.schedule.budget < 0.5 * BASE
    new_rows = result.history[result.history.iteration >= plain.iterations]
    assert evaluate.calls == plain.candidates_evaluated + len(new_rows), "no iteration scored twice"
    assert result.candidates_evaluated == evaluate.calls


def test_the_second_correction_catches_an_offset_that_scaling_creeps_up_on():
    """Scaling by limit / measured under-corrects a constant offset; the line through two checks
    lands on it (one round of scaling alone stays over)."""
    _, scaled_once = run_measured(0.5, offset_device(0.1), rounds=1)
    _, checks = run_measured(0.5, offset_device(0.1), rounds=2)
    assert len(checks) == 3 and not scaled_once[-1].met and checks[-1].met
    # the line through the two checks has slope 1 here: it asks for exactly the offset less
    expected = checks[1].resource_estimated - (checks[1].measured - 0.5) * BASE
    assert tightened_budget(checks[:2]) == pytest.approx(expected, rel=1e-9)
    assert tightened_budget(checks[:1]) > expected, "scaling alone asks for less"


def test_a_rerun_replays_its_recorded_checks_without_measuring_or_scoring():
    result, checks = run_measured(0.5, offset_device(0.08))
    measured, evaluate = [], Counting()
    again, replayed = run_measured(0.5, offset_device(0.08, measured), evaluate=evaluate,
                                   previous=result.history, previous_budget=0.5 * BASE, recorded=checks)
    assert measured == [] and evaluate.calls == 0 and replayed == checks
    assert again.chosen == result.chosen and again.reused_iterations == again.iterations


def test_an_answer_within_the_budget_is_kept_and_no_measure_means_no_check():
    plain = run(0.5)
    result, checks = run_measured(0.5, offset_device(-0.05))
    assert result.chosen == plain.chosen and len(checks) == 1 and checks[0].met
    result, checks = run_measured(0.5, None)
    assert result.chosen == plain.chosen and checks == []


def test_rounds_bound_the_continuations_and_the_space_bounds_the_budget():
    result, checks = run_measured(0.5, lambda arch: 1.0, rounds=2)  # a device that never gets faster
    assert len(checks) == 3 and not checks[-1].met
    assert result.schedule.budget >= SMALLEST and result.resource_estimated >= SMALLEST
    _, none = run_measured(0.5, offset_device(0.08), rounds=0)
    assert len(none) == 1 and not none[0].met, "rounds 0: measured and reported, not searched on"


def test_two_noisy_timings_of_nearly_equal_networks_cannot_send_the_search_far():
    """A flat line through two checks (the measurement barely moved) would ask for a huge cut: the
    step is held to MAX_SECANT_STEP times what scaling asks for."""
    from netadapt.schedule import MeasuredCheck
    from netadapt.search import MAX_SECANT_STEP

    checks = [MeasuredCheck("a", 100.0, 0.520, 0.5), MeasuredCheck("b", 98.0, 0.519, 0.5)]
    scaled = 98.0 * 0.5 / 0.519
    assert tightened_budget(checks) == pytest.approx(98.0 - MAX_SECANT_STEP * (98.0 - scaled))
    assert tightened_budget(checks[1:]) == pytest.approx(scaled)
    falling = [MeasuredCheck("a", 100.0, 0.50, 0.45), MeasuredCheck("b", 98.0, 0.52, 0.45)]  # noise: no line
    assert tightened_budget(falling) == pytest.approx(98.0 * 0.45 / 0.52)


def test_recorded_checks_read_back_as_written_and_a_foreign_record_is_named():
    from dataclasses import asdict

    from netadapt.schedule import MeasuredCheck

    _, checks = run_measured(0.5, offset_device(0.08))
    assert MeasuredCheck.from_records([asdict(c) for c in checks]) == checks
    for bad in ({"arch": "{}", "measured": 0.5, "limit": 0.5},  # a field missing
                {"arch": "{}", "resource_estimated": 1.0, "measured": "fast", "limit": 0.5},
                {"arch": 3, "resource_estimated": 1.0, "measured": 0.5, "limit": 0.5}):
        with pytest.raises(ValueError, match="not a measured check"):
            MeasuredCheck.from_records([asdict(checks[0]), bad])


def test_a_continuation_that_gets_stuck_keeps_and_measures_its_last_iterate():
    """Going on, the search may reach a network no candidate can cut from: it keeps the last
    iterate (it meets the table's budget too), measures it, and stops there."""
    stuck_below = 0.47 * BASE
    mcd = mcd_candidates(MACS, 6, 2)

    def step(current, resource, target, rng):
        return [] if resource < stuck_below else mcd(current, resource, target, rng)

    def once(sched, previous, previous_budget):
        return search(SPACE, MACS, Counting(), step, sched, SearchSettings(0), previous, previous_budget)
    measured = []
    result, checks = search_measured(once, schedule(0.5), SMALLEST, offset_device(0.1, measured), 0.5, 3)
    assert len(checks) == 2 == len(measured) and not checks[0].met
    assert checks[1].arch == result.chosen.widths_json() and result.resource_estimated < stuck_below
    assert result.resource_estimated > result.schedule.budget, "stopped short of the tightened budget"
    kept = result.history[result.history.kept.astype(bool)]
    assert kept.arch.iloc[-1] == result.chosen.widths_json()


def test_mcd_never_moves_a_fixed_dimension():
    """`model.fixed`: the search meets the budget with every fixed dimension (here each kernel size
    and the first stage's blocks) at its built size, and moves the others."""
    model = build_supernet(ModelSpec("mobilenet_v2", (1, 28, 28), 10, kwargs={"kernel": 5},
                                     fixed=("*.kernel", "b1.*", "b2.*")))
    space, macs = model.space(), MacsModel(model)
    fixed = {d.name for d in space.dims if d.fixed}
    assert fixed == {d.name for d in space.dims if d.name.endswith(".kernel") or d.name[:3] in ("b1.", "b2.")}
    base = macs.estimate(space)
    plan = Schedule.from_settings(base, macs.estimate(space.smallest()), 0.5, "relative", 0.1, 0.9, "MACs")
    result = search(space, macs, Counting(), mcd_candidates(macs, 6, 2), plan, SearchSettings(0))
    assert result.resource_estimated <= 0.5 * base
    chosen = result.chosen.widths
    assert all(chosen[n] == space.dim(n).max_width for n in fixed)
    assert any(chosen[d.name] < d.max_width for d in space.dims if d.name not in fixed)
