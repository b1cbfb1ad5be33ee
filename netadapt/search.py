"""The search loop shared by both algorithms (NetAdapt's Algorithm 1, NetAdaptV2's MCD):

    while the network's resource is over the budget:
        propose candidates that each cut iteration t's reduction dR_t   (`propose_iteration`)
        score them on holdout                                          (a `ScoreCandidates`)
        keep the best                                                  (`conclude_iteration`)

Every iteration t is seeded from (seed, t), so the same inputs give the same history (every
candidate of every iteration: `history.COLUMNS`). Handed an earlier history over the same
super-network, table and settings but another budget, the loop replays it (`history.Replay`): a
tighter budget continues from the last reusable iterate, a looser one stops at the first recorded
iterate that meets it, and the result always equals a fresh run. `search_measured` then times the
answer on the device and goes on to a tightened budget while it measures over.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError
from netadapt.history import COLUMNS, Replay
from netadapt.mcd import Candidate, generate_candidates
from netadapt.resources import ResourceModel
from netadapt.resources.spread import Interval
from netadapt.schedule import MeasuredCheck, Schedule

log = logging.getLogger("netadapt")

ScoreCandidates = Callable[[list[Architecture]], list[tuple[float, float]]]  # -> (holdout accuracy, seconds) each


class SearchStopped(NetAdaptError):
    """No candidate could make the cut even after halving it; carries the history so far."""

    def __init__(self, message: str, history: pd.DataFrame):
        super().__init__(message)
        self.history = history


class CandidateGenerator(Protocol):
    """An algorithm's proposals for one attempt of an iteration: candidates from `current` that meet
    `target` (MCD: J multi-layer cuts; NetAdapt V1: one cut per dimension)."""

    def __call__(self, current: Architecture, current_resource: float, target: float,
                 rng: np.random.Generator) -> list[Candidate]: ...


@dataclass(frozen=True)
class SearchSettings:
    seed: int
    selection: str = "accuracy"  # or "accuracy_per_resource"
    max_halvings: int = 4


@dataclass
class SearchResult:
    chosen: Architecture
    history: pd.DataFrame
    schedule: Schedule
    iterations: int
    candidates_evaluated: int
    reused_iterations: int
    holdout_acc: float
    resource_estimated: float
    message: str


def mcd_candidates(resource: ResourceModel, candidates: int, layers: int, split: str = "capacity"
                   ) -> CandidateGenerator:
    """NetAdaptV2's generator: `candidates` cuts, each shared among `layers` random dimensions."""
    return lambda current, r, target, rng: generate_candidates(current, r, target, resource, candidates, layers, rng,
                                                               split)


def _select(rows: list[dict], selection: str, start_acc: float, start_resource: float) -> int:
    if selection == "accuracy_per_resource":
        cost = [(start_acc - r["holdout_acc"]) / max(start_resource - r["resource_estimated"], 1e-12) for r in rows]
        return min(range(len(rows)), key=lambda i: (cost[i], rows[i]["resource_estimated"]))
    return max(range(len(rows)), key=lambda i: (rows[i]["holdout_acc"], -rows[i]["resource_estimated"]))


@dataclass(frozen=True)
class Proposal:
    """One iteration's candidates and how they were asked for (before any evaluation)."""

    iteration: int
    start: Architecture
    target: float
    cut: float
    halvings: int
    clipped: bool  # the first attempt's target was clipped to the budget
    candidates: list[Candidate]


def propose_iteration(t: int, current: Architecture, current_resource: float, schedule: Schedule,
                      generate: CandidateGenerator, settings: SearchSettings) -> Proposal:
    """Candidates for iteration t, seeded from (seed, t); the cut is halved while none can make it
    (no candidates after `max_halvings` halvings means the search must stop)."""
    reduction = schedule.reduction(t)
    clipped = current_resource - reduction < schedule.budget
    for halvings in range(settings.max_halvings + 1):
        cut = reduction / 2 ** halvings
        target = schedule.target(current_resource, cut)
        candidates = generate(current, current_resource, target, np.random.default_rng([settings.seed, t, halvings]))
        if candidates:
            break
        log.info("search: iteration %d: no candidate cuts %.6g; halving the cut", t, cut)
    return Proposal(t, current, target, cut, halvings, clipped, candidates)


def conclude_iteration(proposal: Proposal, scores: list[tuple[float, float]], current_acc: float,
                       current_resource: float, settings: SearchSettings) -> list[dict]:
    """History rows of an evaluated proposal, the selected candidate marked `kept`."""
    rows = [dict(iteration=proposal.iteration, candidate=j, resource_estimated=c.resource, holdout_acc=acc,
                 seconds=sec, kept=False, target=proposal.target, reduction=proposal.cut,
                 halvings=proposal.halvings, clipped=proposal.clipped, start=proposal.start.widths_json(),
                 arch=c.arch.widths_json())
            for j, (c, (acc, sec)) in enumerate(zip(proposal.candidates, scores))]
    rows[_select(rows, settings.selection, current_acc, current_resource)]["kept"] = True
    return rows


ProposeIteration = Callable[[int, Architecture, float, Schedule, CandidateGenerator, SearchSettings], Proposal]


def _base_row(space: Architecture, schedule: Schedule, score: ScoreCandidates) -> dict:
    """Iteration -1: the base network, scored."""
    (acc, seconds), = score([space])
    return dict(iteration=-1, candidate=0, resource_estimated=schedule.base, holdout_acc=acc, seconds=seconds,
                kept=True, target=schedule.base, reduction=0.0, halvings=0, clipped=False, start=space.widths_json(),
                arch=space.widths_json())


def search(space: Architecture, resource: ResourceModel, score: ScoreCandidates, generate: CandidateGenerator,
           schedule: Schedule, settings: SearchSettings, previous: pd.DataFrame | None = None,
           previous_budget: float | None = None, propose: ProposeIteration | None = None,
           on_iteration: Callable[[pd.DataFrame], None] | None = None) -> SearchResult:
    """Shrink `space`'s largest network until its estimated resource meets `schedule.budget`,
    replaying what it can of `previous` (the history of a search for `previous_budget`).

    `score` and `propose` (default `propose_iteration`) may be wrapped by an orchestrator, to map
    evaluations over workers and cache iterations; they must compute the same thing. `on_iteration`
    gets the history after every newly evaluated iteration (to persist it: a killed search handed
    that history back replays it and goes on from there).
    """
    propose = propose or propose_iteration
    replay = Replay.of(previous, previous_budget)
    recorded_start = replay.start_row()
    rows = [recorded_start or _base_row(space, schedule, score)]
    evaluated, reused = (0 if recorded_start else 1), 0
    current, current_resource, current_acc = space, schedule.base, float(rows[0]["holdout_acc"])
    if schedule.met_by_base:
        message = (f"budget {schedule.budget:.6g} is at or above the base network's {schedule.base:.6g}: "
                   f"nothing to search, the base network is the answer")
        log.info("search: %s", message)
        return SearchResult(space, pd.DataFrame(rows, columns=COLUMNS), schedule, 0, evaluated, 0, current_acc,
                            schedule.base, message)

    t = 0
    while current_resource > schedule.budget:
        unclipped = current_resource - schedule.reduction(t) >= schedule.budget
        new = replay.iteration(t, current, unclipped, schedule.budget)
        if new is not None:
            rows += new
            reused += 1
        else:
            proposal = propose(t, current, current_resource, schedule, generate, settings)
            if not proposal.candidates:
                raise SearchStopped(
                    f"search: iteration {t}: no candidate could cut the resource from {current_resource:.6g} "
                    f"even after {settings.max_halvings} halvings (budget {schedule.budget:.6g}); "
                    f"stopping with the last iterate", pd.DataFrame(rows, columns=COLUMNS))
            log.info("search: iteration %d: scoring %d candidates for target %.6g %s", t, len(proposal.candidates),
                     proposal.target, getattr(resource, "unit", ""))
            new = conclude_iteration(proposal, score([c.arch for c in proposal.candidates]), current_acc,
                                     current_resource, settings)
            rows += new
            evaluated += len(new)
            if on_iteration is not None:
                on_iteration(pd.DataFrame(rows, columns=COLUMNS))
        kept = next(r for r in new if r["kept"])
        current = space.with_widths(json.loads(kept["arch"]))
        current_resource, current_acc = float(kept["resource_estimated"]), float(kept["holdout_acc"])
        log.info("search: iteration %d: resource %.6g (budget %.6g), holdout acc %.4f", t, current_resource,
                 schedule.budget, current_acc)
        t += 1
    history = pd.DataFrame(rows, columns=COLUMNS)
    message = searched_message(schedule.budget, t, reused, evaluated)
    return SearchResult(current, history, schedule, t, evaluated, reused, current_acc, current_resource, message)


def searched_message(budget: float, iterations: int, reused: int, evaluated: int) -> str:
    """What a search did, in the figures its metrics report (`reused_iterations`, `candidates_evaluated`):
    it reached `budget` by the resource model's estimate, which is not a measurement."""
    return (f"reached the estimated budget {budget:.6g} in {iterations} iterations ({reused} reused, "
            f"{evaluated} candidates evaluated)")


def measured_message(result: SearchResult, checks: Sequence[MeasuredCheck], reused: int, evaluated: int) -> str:
    """`searched_message` with the whole search's counts, then the last measurement's verdict: the
    answer that measures over its limit is said to be over, whatever the estimate met."""
    last = checks[-1]
    verdict = "within it" if last.met else "over it"
    return (f"{searched_message(result.schedule.budget, result.iterations, reused, evaluated)}; the answer measures "
            f"{last.interval} against a budget of {last.limit:.4g} ({last.measured / last.limit:.3f} of it): "
            f"{verdict} after {len(checks) - 1} continuation(s)")


MAX_SECANT_STEP = 3.0  # the line through two checks may cut at most this many times what scaling would


def tightened_budget(checks: Sequence[MeasuredCheck]) -> float:
    """The estimated budget that should measure at the limit. From one check: the estimate scaled by
    limit / measured (the table off by a factor near the answer). From two or more: the line through
    the last two (estimate, measurement) pairs, which also catches an offset the table misses (a
    per-call cost), where scaling alone would creep up on the limit from above; its step is held to
    `MAX_SECANT_STEP` times the scaling's, so two noisy timings of nearly equal networks cannot send
    the search to the smallest network."""
    last = checks[-1]
    scaled = last.resource_estimated * last.limit / last.measured
    if len(checks) >= 2:
        prev = checks[-2]
        de, dm = last.resource_estimated - prev.resource_estimated, last.measured - prev.measured
        if de and dm / de > 0:  # the measurement moves with the estimate
            secant = last.resource_estimated + (last.limit - last.measured) * de / dm
            return max(secant, last.resource_estimated - MAX_SECANT_STEP * (last.resource_estimated - scaled))
    return scaled


@dataclass(frozen=True)
class Searcher:
    """`search` over one space with one algorithm, run to a schedule (the budget changes between
    `search_measured`'s continuations; everything else stays)."""

    space: Architecture
    resource: ResourceModel
    score: ScoreCandidates
    generate: CandidateGenerator
    settings: SearchSettings
    propose: ProposeIteration | None = None
    on_iteration: Callable[[pd.DataFrame], None] | None = None

    def __call__(self, schedule: Schedule, previous: pd.DataFrame | None = None,
                 previous_budget: float | None = None) -> SearchResult:
        return search(self.space, self.resource, self.score, self.generate, schedule, self.settings, previous,
                      previous_budget, self.propose, self.on_iteration)


SearchRun = Callable[[Schedule, "pd.DataFrame | None", "float | None"], SearchResult]  # (schedule, previous, its budget)


def search_measured(run: SearchRun, schedule: Schedule, smallest: float, measure: Callable[[Architecture], Interval | float] | None,
                    limit: float, rounds: int, previous: pd.DataFrame | None = None,
                    previous_budget: float | None = None, recorded: Sequence[MeasuredCheck] = (),
                    on_check: Callable[[list[MeasuredCheck]], None] | None = None,
                    ) -> tuple[SearchResult, list[MeasuredCheck]]:
    """Search by the resource model, then measure the answer; while it measures over `limit`, go on
    from it to a budget tightened by what the measurements say (`tightened_budget`), at most
    `rounds` times. Each continuation replays the history so far, so only the new iterations cost.

    A rerun of the same search (`previous` recorded for the same budget: an interrupted or repeated
    run) replays `recorded` checks instead of measuring again while they are about the same answers,
    so it retraces the recorded path (a measurement is noisy; V1's restored weights are those of the
    path's end). `measure` None: no checks (the metric is exact, or the user trusts the table).
    """
    same = previous is not None and previous_budget == schedule.budget
    replay = list(recorded) if same else []
    result = run(schedule, previous, previous_budget)
    checks: list[MeasuredCheck] = []
    if measure is None:
        return result, checks
    evaluated, reused = result.candidates_evaluated, result.reused_iterations
    stopped = False
    for r in range(rounds + 1):
        arch = result.chosen.widths_json()
        check = replay[r] if r < len(replay) and replay[r].arch == arch else \
            MeasuredCheck.of(arch, result.resource_estimated, measure(result.chosen), limit)
        checks.append(check)
        if on_check is not None:
            on_check(checks)
        log.info("search: the answer measures %s against a budget of %.4g (%.3f of it; estimated %.6g): %s",
                 check.interval, limit, check.measured / limit, check.resource_estimated,
                 {"met": "within it", "missed": "over", "undecided": "undecided within noise, counted as within it"}
                 [check.verdict])
        if check.met or r == rounds or stopped:
            break
        budget = max(tightened_budget(checks), smallest)
        if budget >= result.resource_estimated:
            log.warning("search: the answer measures over the budget but the space has nothing smaller to go to")
            break
        log.info("search: going on to an estimated budget of %.6g (%.1f%% tighter)", budget,
                 100 * (1 - budget / schedule.budget))
        schedule = replace(schedule, budget=budget)
        before = result.iterations
        try:
            result = run(schedule, previous if same else result.history, budget)
        except SearchStopped as stop:  # every iterate so far meets the table's budget: keep the last
            kept = stop.history[stop.history.kept.astype(bool)].iloc[-1]
            log.warning("search: %s; keeping the last iterate", stop)
            evaluated += int((stop.history.iteration >= before).sum())
            if kept.arch == arch:  # no iteration of the continuation finished: the answer stands as measured
                break
            result = replace(result, chosen=result.chosen.with_widths(json.loads(kept.arch)), history=stop.history,
                             schedule=schedule, iterations=int(kept.iteration) + 1, holdout_acc=float(kept.holdout_acc),
                             resource_estimated=float(kept.resource_estimated))
            stopped = True  # measured once more, then no further continuation
            continue
        evaluated += result.candidates_evaluated
        reused += result.reused_iterations - before  # the iterations it replayed from this run don't count
    reused = max(reused, 0)
    return replace(result, candidates_evaluated=evaluated, reused_iterations=reused,
                   message=measured_message(result, checks, reused, evaluated)), checks


def score_archs(score_jsons: Callable[[list[str]], list[tuple[float, float]]],
                archs: list[Architecture]) -> list[tuple[float, float]]:
    """A `ScoreCandidates` from a scorer of architecture JSONs (what crosses a process or task boundary)."""
    return score_jsons([a.to_json() for a in archs])
