"""The NetAdapt pipeline as Prefect 3 flows composing the tasks of `tasks.pipeline`: a task per
stage, a task per search iteration, and candidate evaluations mapped over the flow's task runner
(threads by default; a Dask runner scales them out).

Caching: a stage task's key is the code version, the params sections the stage reads and the
content digests of its input artifacts; results are persisted under `$PREFECT_HOME` (the CLI puts
it in the project's `.prefect/`). When a stage's outputs are missing on disk its cache is
refreshed, so a cache hit never leaves a later stage without its inputs. A search iteration's key
is the search identity (super-network, table, settings without the budget, seed), the iteration,
its starting architecture and its first target: a new budget finds every unclipped iteration it
shares with an earlier run Cached, and the result equals a fresh run's.

The API is ephemeral unless `PREFECT_API_URL` points at a server.
"""

from __future__ import annotations

import os

from prefect import flow, unmapped
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from netadapt import stages
from netadapt.config import load_config, parse_config, to_dict
from netadapt.search import Proposal
from tasks.pipeline import candidate_task, folder_paths, iteration_task, stage_outputs, stage_task
from tasks.tracking import log_stage


@flow(name="netadapt-search")
def search_flow(params: dict, folders: dict[str, str]) -> dict:
    """The search stage with a task per iteration and candidate evaluation mapped over workers."""
    cfg, p = parse_config(params), folder_paths(folders)
    identity = stages.search_identity(cfg, p)
    kwargs = stages.candidate_settings(cfg, p)
    iteration_states: list[str] = []
    candidate_states: list[str] = []

    def propose(t, current, current_resource, schedule, step, settings) -> Proposal:
        first_target = schedule.target(current_resource, schedule.reduction(t))
        state = iteration_task(t, current.widths_json(), first_target, identity, current, current_resource,
                               schedule, step, settings, return_state=True)
        iteration_states.append(state.name)
        return state.result()

    def evaluate_candidates(arch_jsons: list[str]) -> list[tuple[float, float]]:
        futures = candidate_task.map(arch_jsons, unmapped(kwargs))
        results = [f.result() for f in futures]
        candidate_states.extend(f.state.name for f in futures)
        return results

    mcd = cfg.search.algorithm == "mcd"  # V1 carries weights between iterations: it runs in-process
    metrics = stages.search(cfg, p, propose=propose if mcd else None,
                            evaluate_candidates=evaluate_candidates if mcd else None, reuse_history=not mcd)
    log_stage("search", cfg, p, metrics)
    return {**metrics, "iteration_states": iteration_states,
            "candidates_cached": candidate_states.count("Cached"), "candidates_run": len(candidate_states)}


def _run_stage(stage: str, params: dict, folders: dict[str, str], states: dict[str, str]) -> dict:
    refresh = not all(path.exists() for path in stage_outputs(stage, folder_paths(folders)))
    state = stage_task.with_options(refresh_cache=refresh or None)(stage, params, folders, return_state=True)
    states[stage] = state.name
    return state.result()


@flow(name="netadapt", task_runner=ThreadPoolTaskRunner(max_workers=2))
def netadapt_flow(params_file: str = "params.yaml", overrides: list[str] | None = None,
                  artifacts: str = "artifacts", metrics: str = "metrics", plots: str = "plots") -> dict:
    """prepare -> profile -> supernet -> search -> finetune -> evaluate; returns each stage's state
    name (Completed / Cached) and metrics."""
    cfg = load_config(params_file, list(overrides or []))
    params, folders = to_dict(cfg), {"artifacts": artifacts, "metrics": metrics, "plots": plots}
    os.environ["NETADAPT_PIPELINE_ID"] = f"prefect-{flow_run.id}"
    states: dict[str, str] = {}
    results = {stage: _run_stage(stage, params, folders, states) for stage in ("prepare", "profile", "supernet")}
    search_state = search_flow(params, folders, return_state=True)
    states["search"] = search_state.name
    results["search"] = search_state.result()
    for stage in ("finetune", "evaluate"):
        results[stage] = _run_stage(stage, params, folders, states)
    return {"states": states, "metrics": results}
