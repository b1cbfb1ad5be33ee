"""The NetAdapt pipeline as Prefect 3 flows composing the tasks of `netadapt_tasks.pipeline`: a task per
stage, a task per search iteration, and candidate evaluations mapped over the flow's task runner
(threads by default; a Dask runner scales them out: `netadapt_flows.runners`).

Up to date: a stage is up to date when its stamp (`netadapt.stamps`) for its current key exists and
its outputs are as the stamp recorded, whoever ran it: this flow or the stage CLI that `dvc repro`
runs. An up-to-date stage comes back Cached with the metrics its stamp recorded (the stamp seeds
Prefect's cache record for the key); any other stage runs, whatever Prefect's cache holds for it,
as the CLI runs it (`netadapt.run_stage`). In a DVC project, with `dvc.yaml`'s folders and
`params.yaml`'s params, the flow then records the stages it ran in `dvc.lock` (`dvc commit`), so
`dvc status` has nothing to do.

A search iteration's key is the search identity (super-network, table, settings without the
budget, seed), the iteration, its starting architecture and its first target: a new budget finds
every unclipped iteration it shares with an earlier run Cached, and the result equals a fresh
run's. One history for both front ends: the iterations the history on disk recorded (`dvc repro`'s
search, or an earlier flow's) come back Cached too, when they replay exactly as the stage CLI would
replay them (`netadapt_tasks.pipeline.recorded_proposal`). Results are persisted under
`$PREFECT_HOME` (the CLI puts it in the project's `.prefect/`), as
plain JSON (`netadapt_tasks.results.RESULT_SERIALIZER`), and read back only if they are exactly that
(`netadapt_tasks.results.guard_result_storage`): a cache entry can carry wrong numbers, never code.

Devices: after the shared stages, each named device of the params (`devices`) runs as a subflow,
`netadapt-device` (run name: the device), with its own profile, search, finetune and evaluate from the
one super-network, each with its own stamps: a change to one device's budget re-runs only that
device's search, finetune and evaluate; the other devices come back Cached. Candidate scores do not
depend on the device (super-network weights on holdout), so devices share them through the cache.

The flow holds the project's lock (`netadapt.lock`, re-entrant: `netadapt flow` took it already) for
its whole run, and each stage starts by removing what interrupted writes left behind
(`netadapt.run_stage.fresh_key`).

Verdict first: a flow run is named `latency ≤ 40% · pending · <model> · <data> · <backend>` when it
starts and renamed `... · MET · ...` or `... · MISSED · ...` (tags `budget-met` / `budget-missed`) at
the end; a run whose final network (or a named device's) misses its budget beyond
`evaluate.budget_tolerance` ends in the Failed state `BudgetMissed` with the result as its data (read
it with `return_state=True` and `state.result(raise_on_failure=False)`), never a green Completed.
The run publishes its summary and search trajectory to the Prefect UI (`netadapt_flows.reporting`).
The API is ephemeral unless `PREFECT_API_URL` points at a server (`netadapt serve` starts one).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, unmapped
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from netadapt import evaluation, stages, stamps
from netadapt.arch import Architecture
from netadapt.config import Config, load_config, to_dict
from netadapt.eta import progress_bar
from netadapt.history import Replay
from netadapt.layout import DEVICE_STAGES, STAGES, UPSTREAM, Paths
from netadapt.lock import project_lock
from netadapt.run_stage import fresh_key, run_stage
from netadapt.search import Proposal
from netadapt_flows.reporting import (BUDGET_MISSED, flow_run_name, flow_verdict, name_flow_run, publish,
                                     route_library_logs)
from netadapt_flows.runners import candidate_runner
from netadapt_tasks.dvc import dvc_project, dvc_writes
from netadapt_tasks.pipeline import (candidate_task, dvc_commit_task, folder_paths, iteration_task,
                                     proposal_from_data, recorded_proposal, recorded_search, seed_candidate_cache,
                                     seed_iteration_cache, seed_stage_cache, stage_config, stage_task)
from netadapt_tasks.results import RESULT_SERIALIZER, guard_result_storage
from netadapt_tracking import stage_run


@dataclass
class SearchRecorder:
    """Drives `stages.search`'s hooks from the search subflow and records what they did: `propose`
    runs an iteration's proposal as a task, `evaluate_candidates` maps its candidates over the task
    runner (each named after the iteration being scored: -1, the unpruned network, before the first
    proposal), and the task states and each iteration's wall time are kept for the flow's result
    (`counts`). What the history on disk (`recorded`) holds for an iteration is seeded into the cache
    first, so that it comes back Cached."""

    identity: str  # the search identity (`evaluation.search_identity`): part of each iteration's key
    kwargs: dict  # the candidates' evaluation settings (`evaluation.candidate_settings`, absolute paths)
    recorded: Replay = field(default_factory=Replay)  # the history on disk before the search started
    iteration: int = -1
    iteration_states: list[str] = field(default_factory=list)
    candidate_states: list[str] = field(default_factory=list)
    iteration_seconds: dict[str, float] = field(default_factory=dict)  # wall time per iteration ("-1": base)
    started: float | None = None

    def propose(self, t, current, current_resource, schedule, step, settings) -> Proposal:
        self.iteration, self.started = t, time.perf_counter()
        first_target = schedule.target(current_resource, schedule.reduction(t))
        if (found := recorded_proposal(self.recorded, t, current, current_resource, schedule)) is not None:
            seed_iteration_cache(self.identity, first_target, *found, self.kwargs)
        state = iteration_task(t, current.widths_json(), first_target, self.identity, current, current_resource,
                               schedule, step, settings, return_state=True)
        self.iteration_states.append(state.name)
        return proposal_from_data(state.result())

    def evaluate_candidates(self, arch_jsons: list[str]) -> list[tuple[float, float]]:
        started = self.started if self.started is not None else time.perf_counter()
        base = self.recorded.start_row()
        if self.iteration == -1 and base is not None and \
                [Architecture.from_json(a).widths_json() for a in arch_jsons] == [base["arch"]]:
            seed_candidate_cache(arch_jsons, [[base["holdout_acc"], base["seconds"]]], self.kwargs)  # the base network
        futures = candidate_task.map(arch_jsons, unmapped(self.kwargs), unmapped(self.iteration),
                                     range(len(arch_jsons)))
        with progress_bar(total=len(futures), desc="search candidates", unit="candidates") as bar:
            for _ in as_completed(futures):  # as the CLI's loop does: the ETA of an iteration's candidates
                bar.update()
        results = [tuple(map(float, f.result())) for f in futures]  # [accuracy, seconds] each
        self.candidate_states.extend(f.state.name for f in futures)
        self.iteration_seconds[str(self.iteration)] = round(time.perf_counter() - started, 3)
        self.started = None
        return results

    def counts(self) -> dict:
        """The iterations' task states and wall times, and how many candidates came from the cache of how many."""
        return {"iteration_states": self.iteration_states, "iteration_seconds": self.iteration_seconds,
                "candidates_cached": self.candidate_states.count("Cached"),
                "candidates_run": len(self.candidate_states)}


@flow(name="netadapt-search", persist_result=True, result_serializer=RESULT_SERIALIZER)
def search_flow(params: dict, folders: dict[str, str], key: str | None = None, device: str = "") -> dict:
    """The search stage with a task per iteration and candidate evaluation mapped over workers;
    writes the search stamp for `key` (its stamp key before it ran) when it succeeds. `device`: a
    named device's search ("": the plain pipeline's)."""
    guard_result_storage()
    cfg, p = stage_config(params, device), folder_paths(folders, device)
    key = key or stamps.stage_key("search", cfg, p)
    identity = evaluation.search_identity(cfg, p)
    kwargs = {k: str(Path(v).resolve()) if k.endswith("_path") else v  # absolute: a worker's cwd may differ
              for k, v in evaluation.candidate_settings(cfg, p).items()}   # (not in the key: the files' digests are)
    mcd = cfg.search.algorithm == "mcd"  # V1 carries weights between iterations: it runs in-process
    recorder = SearchRecorder(identity, kwargs, recorded_search(cfg, p, identity) if mcd else Replay())
    search = functools.partial(stages.search, propose=recorder.propose if mcd else None,
                               evaluate_candidates=recorder.evaluate_candidates if mcd else None,
                               reuse_history=not mcd)
    metrics = run_stage("search", cfg, p, key, track=stage_run, by="prefect", stage_fn=search)
    return {**metrics, **recorder.counts()}


def _stage_state(stage: str, cfg: Config, params: dict, folders: dict[str, str], wait_for: list,
                 device: str = "", runner: dict | None = None) -> State:
    """Run a stage unless its stamp says it is up to date; then its task comes back Cached with the
    stamp's metrics. The search runs as a subflow (iterations, mapped candidates over `runner`: the
    `candidate_runner` parameters; threads by default) when it runs. Starts
    by removing what interrupted writes left behind (the flow holds the project's lock). `cfg` is the
    stage's config (a named device's for `device`)."""
    runner = runner or {}
    p = folder_paths(folders, device)
    key = fresh_key(stage, cfg, p)
    stamp = stamps.read_stamp(stage, key, p)
    if stamp is not None:
        seed_stage_cache(stage, key, stamp["metrics"])
    elif stage == "search":
        subflow = search_flow if runner.get("task_runner", "threads") == "threads" else \
            search_flow.with_options(task_runner=candidate_runner(**runner))
        return subflow(params, folders, key, device, return_state=True, wait_for=wait_for)
    task = stage_task.with_options(refresh_cache=None if stamp is not None else True)
    return task(stage, params, folders, key, device, return_state=True, wait_for=wait_for)


@flow(name="netadapt-device", flow_run_name="{device}", persist_result=True, result_serializer=RESULT_SERIALIZER)
def device_flow(device: str, params: dict, folders: dict[str, str], runner: dict | None = None) -> dict:
    """A named device's branch, from the shared prepared data and super-network: its profile, search,
    finetune and evaluate (`DEVICE_STAGES`), each skipped (Cached) when its stamp is current.
    `runner`: where its search's candidates run (`candidate_runner`). Returns each stage's state name and
    metrics."""
    guard_result_storage()
    cfg = stage_config(params, device)
    states: dict[str, str] = {}
    results: dict[str, dict] = {}
    done: dict[str, State] = {}
    for stage in DEVICE_STAGES:
        wait_for = [done[upstream] for upstream in UPSTREAM.get(stage, ()) if upstream in done]
        done[stage] = _stage_state(stage, cfg, params, folders, wait_for, device, runner)
        states[stage] = done[stage].name
        results[stage] = done[stage].result()
    results["search"] = {"iteration_states": [], "candidates_cached": 0, "candidates_run": 0, **results["search"]}
    return {"states": states, "metrics": results}


@flow(name="netadapt", flow_run_name=flow_run_name, task_runner=ThreadPoolTaskRunner(max_workers=2),
      persist_result=True, result_serializer=RESULT_SERIALIZER)
def netadapt_flow(params_file: str = "params.yaml", overrides: list[str] | None = None,
                  artifacts: str = "artifacts", metrics: str = "metrics", plots: str = "plots",
                  task_runner: str = "threads", dask_address: str = "") -> dict | State:
    """prepare -> profile -> supernet -> search -> finetune -> evaluate; returns each stage's state
    name (Completed / Cached), its metrics, what was recorded in dvc.lock and the verdict
    (`flow_verdict`): a result whose network missed its budget comes back as the data of a Failed
    `BudgetMissed` state. Holds the project's lock (`<artifacts>/.lock`) throughout. `task_runner` /
    `dask_address`: where the searches' candidate evaluations run (`candidate_runner`)."""
    guard_result_storage()
    runner = {"task_runner": task_runner, "dask_address": dask_address}
    candidate_runner(**runner)  # a bad runner fails here, before any stage runs
    cfg = load_config(params_file, list(overrides or []))
    params, folders = to_dict(cfg), Paths(Path(artifacts), Path(metrics), Path(plots)).folders()
    pid = f"prefect-{flow_run.id}"
    os.environ["NETADAPT_PIPELINE_ID"] = pid
    route_library_logs()
    states: dict[str, str] = {}
    results: dict[str, dict] = {}
    done: dict[str, State] = {}
    with project_lock(artifacts, f"netadapt flow run {flow_run.name or flow_run.id}", guards=(dvc_writes,)):
        for stage in STAGES:
            wait_for = [done[upstream] for upstream in UPSTREAM.get(stage, ())]
            done[stage] = _stage_state(stage, cfg, params, folders, wait_for, runner=runner)
            states[stage] = done[stage].name
            results[stage] = done[stage].result()
        results["search"] = {"iteration_states": [], "candidates_cached": 0, "candidates_run": 0,
                             **results["search"]}
        devices = {}
        for name in cfg.devices:  # one after the other: profiling must not share the CPU
            branch = device_flow(name, params, folders, runner, return_state=True,
                                 wait_for=[done["prepare"], done["supernet"]])
            devices[name] = branch.result()
        dvc = _record_in_dvc(params, folders)
    result = {"states": states, "metrics": results, "dvc": dvc}
    if devices:
        result["devices"] = devices
    result["verdict"] = verdict = flow_verdict(result, cfg)
    name_flow_run(verdict)
    publish(result, cfg, folder_paths(folders), pid)
    if not verdict["met"]:
        return Failed(name=BUDGET_MISSED, data=result,
                      message=f"{verdict['name']}: {', '.join(verdict['missed'])} missed the budget "
                              f"beyond the tolerance; " + " | ".join(verdict["lines"]))
    return result


def _record_in_dvc(params: dict, folders: dict[str, str]) -> dict:
    root, reason = dvc_project(params, folders)
    if root is None:
        return {"committed": [], "skipped": reason}
    state = dvc_commit_task(params, folders, return_state=True)
    if state.is_completed():
        return state.result()
    return {"committed": [], "skipped": f"dvc commit failed: {state.message}"}
