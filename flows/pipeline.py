"""The NetAdapt pipeline as Prefect 3 flows composing the tasks of `netadapt_tasks.pipeline`: a task per
stage, a task per search iteration, and candidate evaluations mapped over the flow's task runner
(threads by default; a Dask runner scales them out).

Up to date: a stage is up to date when its stamp (`netadapt.stamps`) for its current key exists and
its outputs are as the stamp recorded, whoever ran it: this flow or the stage CLI that `dvc repro`
runs. An up-to-date stage comes back Cached with the metrics its stamp recorded (the stamp seeds
Prefect's cache record for the key); any other stage runs, whatever Prefect's cache holds for it.
In a DVC project, with `dvc.yaml`'s folders and `params.yaml`'s params, the flow then records the
stages it ran in `dvc.lock` (`dvc commit`), so `dvc status` has nothing to do.

A search iteration's key is the search identity (super-network, table, settings without the
budget, seed), the iteration, its starting architecture and its first target: a new budget finds
every unclipped iteration it shares with an earlier run Cached, and the result equals a fresh
run's. Results are persisted under `$PREFECT_HOME` (the CLI puts it in the project's `.prefect/`), as
plain JSON (`netadapt_tasks.pipeline.RESULT_SERIALIZER`), and read back only if they are exactly that
(`netadapt_tasks.pipeline.guard_result_storage`): a cache entry can carry wrong numbers, never code.

Devices: after the shared stages, each named device of the params (`devices`) runs as a subflow,
`netadapt-device` (run name: the device), with its own profile, search, finetune and evaluate from the
one super-network, each with its own stamps: a change to one device's budget re-runs only that
device's search, finetune and evaluate; the other devices come back Cached. Candidate scores do not
depend on the device (super-network weights on holdout), so devices share them through the cache.

The flow holds the project's lock (`netadapt.lock`, re-entrant: `netadapt flow` took it already) for
its whole run, and each stage starts by removing what interrupted writes left behind
(`netadapt.io.clean_stale`).

The run publishes a markdown summary, the search trajectory as a table, and (tracking on) a link
to its MLflow run as Prefect artifacts; the library's log lines (logger `netadapt`) go to the UI.
The API is ephemeral unless `PREFECT_API_URL` points at a server (`netadapt serve` starts one).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from netadapt import stages, stamps
from netadapt.config import Config, load_config, to_dict
from netadapt.errors import NetAdaptError
from netadapt.io import clean_stale
from netadapt.layout import DEVICE_STAGES, STAGES, SUMMARY_METRICS, UPSTREAM, Paths
from netadapt.lock import project_lock
from netadapt.search import Proposal
import netadapt_tracking as tracking
from netadapt_tasks.pipeline import (RESULT_SERIALIZER, candidate_task, dvc_commit_task, dvc_project,
                                     folder_paths, guard_result_storage, iteration_task, proposal_from_data,
                                     read_result, seed_stage_cache, stage_config, stage_task)
from netadapt_tracking import stage_run


def candidate_runner(task_runner: str = "threads", dask_address: str = "") -> TaskRunner:
    """The task runner of a search's candidate evaluations: `threads` (a thread pool in the flow's
    process), or `dask` through `prefect_dask.DaskTaskRunner` at `dask_address`: a running scheduler
    (`tcp://HOST:PORT`) or `local:N`, a `distributed.LocalCluster` of N worker processes of one thread
    each, started for the search and closed after it. A Dask runner's workers import `netadapt_tasks`
    and read the super-network and holdout from their paths (`evaluate_candidate`); `candidate_task`
    pins torch to one thread on a worker."""
    if task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=2)
    if task_runner != "dask":
        raise NetAdaptError(f"task_runner {task_runner!r}: expected threads or dask")
    from prefect_dask import DaskTaskRunner

    from netadapt_flows.cli import DEFAULT_DASK_ADDRESS, parse_dask_address

    kind, where = parse_dask_address(dask_address or DEFAULT_DASK_ADDRESS)
    if kind == "scheduler":
        return DaskTaskRunner(address=where)
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={"n_workers": where, "env": worker_env()})


# What a Dask nanny sets in the worker processes it spawns (`distributed.nanny.pre-spawn-environ`), less
# MALLOC_TRIM_THRESHOLD_: setting it turns off glibc's dynamic mmap threshold, so every large torch
# buffer is mmap'ed and unmapped again: candidate evaluation ran 2-3x slower (mostly system time).
WORKER_THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def local_cluster(n_workers: int, env: dict[str, str] | None = None, **kwargs: Any):
    """A `distributed.LocalCluster` of `n_workers` worker processes of one thread each, with
    `WORKER_THREADS_ENV` (+ `env`) set in the workers only: the nanny's pre-spawn environment (which it
    would also write into this process's) is emptied, its malloc setting dropped."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            env={**WORKER_THREADS_ENV, **(env or {})}, **kwargs)


def worker_env() -> dict[str, str]:
    """The environment of a local cluster's workers: this process's Prefect API (a server, or the
    temporary one of an ephemeral run), so that workers report their task runs to it instead of each
    starting a temporary API of its own (~10 s and a process per worker); their Prefect console lines
    (a "Finished in state Completed()" per candidate) stay in the UI, as the flow's own do."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {"PREFECT_API_URL": str(client.api_url).rstrip("/"),
                "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}


@flow(name="netadapt-search", persist_result=True, result_serializer=RESULT_SERIALIZER)
def search_flow(params: dict, folders: dict[str, str], key: str | None = None, device: str = "") -> dict:
    """The search stage with a task per iteration and candidate evaluation mapped over workers;
    writes the search stamp for `key` (its stamp key before it ran) when it succeeds. `device`: a
    named device's search ("": the plain pipeline's)."""
    guard_result_storage()
    cfg, p = stage_config(params, device), folder_paths(folders, device)
    key = key or stamps.stage_key("search", cfg, p)
    identity = stages.search_identity(cfg, p)
    kwargs = {k: str(Path(v).resolve()) if k.endswith("_path") else v  # absolute: a worker's cwd may differ
              for k, v in stages.candidate_settings(cfg, p).items()}   # (not in the key: the files' digests are)
    iteration_states: list[str] = []
    candidate_states: list[str] = []
    iteration = [-1]  # the iteration being scored (-1: the unpruned network), to name candidate runs

    def propose(t, current, current_resource, schedule, step, settings) -> Proposal:
        iteration[0] = t
        first_target = schedule.target(current_resource, schedule.reduction(t))
        state = iteration_task(t, current.widths_json(), first_target, identity, current, current_resource,
                               schedule, step, settings, return_state=True)
        iteration_states.append(state.name)
        return proposal_from_data(state.result())

    def evaluate_candidates(arch_jsons: list[str]) -> list[tuple[float, float]]:
        futures = candidate_task.map(arch_jsons, unmapped(kwargs), unmapped(iteration[0]), range(len(arch_jsons)))
        results = [tuple(map(float, f.result())) for f in futures]  # [accuracy, seconds] each
        candidate_states.extend(f.state.name for f in futures)
        return results

    mcd = cfg.search.algorithm == "mcd"  # V1 carries weights between iterations: it runs in-process
    with stage_run("search", cfg, p) as run:
        metrics = stages.search(cfg, p, propose=propose if mcd else None,
                                evaluate_candidates=evaluate_candidates if mcd else None, reuse_history=not mcd)
        run.finish(metrics)
    stamps.write_stamp("search", key, p, metrics, by="prefect")
    return {**metrics, "iteration_states": iteration_states,
            "candidates_cached": candidate_states.count("Cached"), "candidates_run": len(candidate_states)}



def _run_stage(stage: str, cfg: Config, params: dict, folders: dict[str, str], wait_for: list,
               device: str = "", runner: dict | None = None) -> State:
    """Run a stage unless its stamp says it is up to date; then its task comes back Cached with the
    stamp's metrics. The search runs as a subflow (iterations, mapped candidates over `runner`: the
    `candidate_runner` parameters; threads by default) when it runs. Starts
    by removing what interrupted writes left behind (the flow holds the project's lock). `cfg` is the
    stage's config (a named device's for `device`)."""
    runner = runner or {}
    p = folder_paths(folders, device)
    clean_stale([p.artifacts, p.metrics, p.plots])
    key = stamps.stage_key(stage, cfg, p)
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
        done[stage] = _run_stage(stage, cfg, params, folders, wait_for, device, runner)
        states[stage] = done[stage].name
        results[stage] = done[stage].result()
    results["search"] = {"iteration_states": [], "candidates_cached": 0, "candidates_run": 0, **results["search"]}
    return {"states": states, "metrics": results}


def _route_library_logs() -> None:
    """The library's progress lines (logger `netadapt`) reach the Prefect UI, however the flow was
    started (`PREFECT_LOGGING_EXTRA_LOGGERS=netadapt` attaches the same handler)."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger("netadapt")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        logger.addHandler(APILogHandler())


@flow(name="netadapt", task_runner=ThreadPoolTaskRunner(max_workers=2), persist_result=True,
      result_serializer=RESULT_SERIALIZER)
def netadapt_flow(params_file: str = "params.yaml", overrides: list[str] | None = None,
                  artifacts: str = "artifacts", metrics: str = "metrics", plots: str = "plots",
                  task_runner: str = "threads", dask_address: str = "") -> dict:
    """prepare -> profile -> supernet -> search -> finetune -> evaluate; returns each stage's state
    name (Completed / Cached), its metrics, and what was recorded in dvc.lock. Holds the project's
    lock (`<artifacts>/.lock`) throughout. `task_runner` / `dask_address`: where the searches' candidate
    evaluations run (`candidate_runner`)."""
    guard_result_storage()
    runner = {"task_runner": task_runner, "dask_address": dask_address}
    candidate_runner(**runner)  # a bad runner fails here, before any stage runs
    cfg = load_config(params_file, list(overrides or []))
    params, folders = to_dict(cfg), {"artifacts": artifacts, "metrics": metrics, "plots": plots}
    pid = f"prefect-{flow_run.id}"
    os.environ["NETADAPT_PIPELINE_ID"] = pid
    _route_library_logs()
    states: dict[str, str] = {}
    results: dict[str, dict] = {}
    done: dict[str, State] = {}
    with project_lock(artifacts, f"netadapt flow run {flow_run.name or flow_run.id}"):
        for stage in STAGES:
            wait_for = [done[upstream] for upstream in UPSTREAM.get(stage, ())]
            done[stage] = _run_stage(stage, cfg, params, folders, wait_for, runner=runner)
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
    _publish(result, cfg, folder_paths(folders), pid)
    return result


def _record_in_dvc(params: dict, folders: dict[str, str]) -> dict:
    root, reason = dvc_project(params, folders)
    if root is None:
        return {"committed": [], "skipped": reason}
    state = dvc_commit_task(params, folders, return_state=True)
    if state.is_completed():
        return state.result()
    return {"committed": [], "skipped": f"dvc commit failed: {state.message}"}


# -- what a run shows: console summary, Prefect artifacts -------------------------------------------



def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _headline(stage: str, metrics: dict) -> str:
    return "  ".join(f"{k}={_number(metrics[k])}" for k in SUMMARY_METRICS.get(stage, ()) if k in metrics)


def _dvc_line(dvc: dict) -> str | None:
    if dvc.get("committed"):
        return "recorded in dvc.lock: " + ", ".join(dvc["committed"])
    if dvc.get("skipped") == "not a DVC project":
        return None
    return f"dvc.lock not updated: {dvc['skipped']}" if dvc.get("skipped") else "dvc.lock: up to date"


def _stage_rows(result: dict) -> list[tuple[str, str, str, dict]]:
    """(label, stage, state, metrics) of every stage: the plain pipeline's, then each device's
    (labelled `<stage>@<device>`)."""
    rows = [(stage, stage, state, result["metrics"].get(stage, {})) for stage, state in result["states"].items()]
    for name, branch in result.get("devices", {}).items():
        rows += [(f"{stage}@{name}", stage, state, branch["metrics"].get(stage, {}))
                 for stage, state in branch["states"].items()]
    return rows


def summary_lines(result: dict) -> list[str]:
    """One line per stage (state and headline metrics; a named device's as `<stage>@<device>`), then
    what was recorded in dvc.lock."""
    lines = []
    rows = _stage_rows(result)
    width = max([9] + [len(label) for label, *_ in rows])
    for label, stage, state, metrics in rows:
        line = f"{label:<{width}} {state:<9} {_headline(stage, metrics)}"
        if stage == "search" and metrics.get("iteration_states"):
            its = metrics["iteration_states"]
            line += (f"  [iterations: {its.count('Cached')} cached, {len(its) - its.count('Cached')} run; "
                     f"candidates: {metrics['candidates_cached']} cached, "
                     f"{metrics['candidates_run'] - metrics['candidates_cached']} run]")
        lines.append(line.rstrip())
    if (dvc := _dvc_line(result.get("dvc", {}))) is not None:
        lines.append(dvc)
    return lines


def summary_markdown(result: dict, cfg: Config) -> str:
    s, m = cfg.search, result["metrics"]
    ev = m.get("evaluate", {})
    lines = [f"# NetAdapt: {cfg.data.name} · {cfg.model.name} · {s.metric} budget {s.budget:g} ({s.budget_type})", ""]
    if ev:
        lines += [f"- **test accuracy** {_number(ev.get('test_acc'))}",
                  f"- **latency** {_number(ev.get('latency_measured_ms'))} ms measured, "
                  f"{_number(ev.get('latency_estimated_ms'))} ms estimated, "
                  f"{_number(ev.get('latency_ratio'))} of the base network's ({cfg.profile.backend})",
                  f"- **MACs** {_number(ev.get('macs'))}, **parameters** {_number(ev.get('params'))}"]
    if "search" in m:
        lines.append(f"- **search** {m['search'].get('algorithm')}: {m['search'].get('iterations')} iterations, "
                     f"{m['search'].get('candidates_evaluated')} candidates, holdout accuracy "
                     f"{_number(m['search'].get('holdout_acc'))}")
    for name, branch in result.get("devices", {}).items():
        dev, device = branch["metrics"].get("evaluate", {}), cfg.for_device(name)
        lines.append(f"- **device {name}** ({device.profile.backend}, budget {device.search.budget:g}): test accuracy "
                     f"{_number(dev.get('test_acc'))}, latency {_number(dev.get('latency_measured_ms'))} ms measured, "
                     f"{_number(dev.get('latency_ratio'))} of the base network's")
    lines += ["", "| stage | state | metrics |", "| --- | --- | --- |"]
    lines += [f"| {label} | {state} | {_headline(stage, metrics).replace('  ', ', ')} |"
              for label, stage, state, metrics in _stage_rows(result)]
    if (dvc := _dvc_line(result.get("dvc", {}))) is not None:
        lines += ["", dvc]
    return "\n".join(lines) + "\n"


def trajectory_rows(p: Paths) -> list[dict]:
    """The search trajectory: the network kept at each iteration (-1: the unpruned one)."""
    path = p.search / "history.csv"
    if not path.is_file():
        return []
    history = pd.read_csv(path)
    rows = []
    for t, it in history.groupby("iteration", sort=True):
        kept = it[it.kept.astype(bool)]
        if not len(kept):
            continue
        row = kept.iloc[0]
        values = {"iteration": int(t), "resource_estimated": float(row.resource_estimated),
                  "holdout_acc": float(row.holdout_acc), "target": float(row.target),
                  "halvings": int(row.halvings), "candidates": int(len(it)), "seconds": float(it.seconds.sum())}
        rows.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})
    return rows


def mlflow_ui_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of a run: the tracking server itself, or `mlflow ui`'s default address for a
    local store (sqlite, files)."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_pipeline_link(pid: str, experiment: str, client: Any = None) -> str | None:
    """The MLflow UI link of this pipeline's parent run, if tracking is on and a stage logged one."""
    if not tracking.enabled():
        return None
    if client is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking.tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{tracking.PIPELINE_TAG}` = '{pid}' and "
                                                                   f"tags.`{tracking.ROLE_TAG}` = 'pipeline'",
                              max_results=1)
    return mlflow_ui_link(tracking.tracking_uri(), found.experiment_id, runs[0].info.run_id) if runs else None


def _publish(result: dict, cfg: Config, p: Paths, pid: str) -> None:
    """The run's Prefect artifacts: summary (markdown), search trajectory (table; a named device's
    as `search-trajectory-<device>`), MLflow run (link)."""
    create_markdown_artifact(key="netadapt-summary", markdown=summary_markdown(result, cfg),
                             description="NetAdapt: headline metrics and each stage's state")
    if rows := trajectory_rows(p):
        create_table_artifact(key="search-trajectory", table=rows,
                              description="Search: the network kept at each iteration (-1: unpruned)")
    for name in result.get("devices", {}):
        if rows := trajectory_rows(p.for_device(name)):  # (an artifact key allows no `_`)
            create_table_artifact(key=f"search-trajectory-{name.replace('_', '-')}", table=rows,
                                  description=f"Search for device {name}: the network kept at each iteration")
    try:
        link = mlflow_pipeline_link(pid, cfg.tracking.experiment)
    except Exception as exc:  # noqa: BLE001 - a missing link never fails a finished pipeline
        logging.getLogger("netadapt").warning("mlflow: no link to the run: %s", exc)
        link = None
    if link:
        create_link_artifact(key="mlflow-run", link=link, link_text="MLflow run of this pipeline",
                             description=f"Tracking URI {tracking.tracking_uri()} (a local store: open it with "
                                         f"`mlflow ui --backend-store-uri <uri>`)")


# -- serving -----------------------------------------------------------------------------------------


def serve(name: str, parameters: dict, cron: str | None = None, interval: float | None = None,
          once: bool = False) -> tuple[str, dict | None] | None:
    """Serve `netadapt_flow` as the deployment `netadapt/<name>` (with `parameters`, on a cron or an
    interval schedule) until interrupted. The runner executes each run in a subprocess with this
    process's environment: the same PREFECT_HOME (so the same cache) and working directory.

    `once`: create the deployment, start one run of it now, execute it as the served runner would,
    and return its final state's name and result instead of serving on."""
    from prefect.types.entrypoint import EntrypointType

    if not once:
        netadapt_flow.serve(name=name, cron=cron, interval=interval, parameters=parameters,
                            entrypoint_type=EntrypointType.MODULE_PATH,
                            limit=1)  # the runs share `netadapt serve`'s project lock: one at a time
        return None
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.runner import Runner

    runner = Runner(name=f"{name}-once")
    deployment_id = runner.add_flow(netadapt_flow, name=name, parameters=parameters,
                                    entrypoint_type=EntrypointType.MODULE_PATH)
    run = run_deployment(deployment_id, timeout=0)  # scheduled now; the runner picks it up
    asyncio.run(runner.start(run_once=True))
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    result = read_result(state) if state is not None and state.is_completed() else None
    return (state.name if state is not None else "Unknown"), result
