"""Prefect tasks over the library: a task per pipeline stage, a task per search iteration, a task
per candidate evaluation, each with a cache key built from what determines its result, and the task
that records the flow's stages in `dvc.lock` (`netadapt_tasks.dvc`).

- A stage task's key: its stamp key (`netadapt.stamps.stage_key`: the code version (the user's model
  code's too, for the stages that build the model), the params sections the stage reads, and the
  content digests of its input artifacts). A stage task runs the
  stage as the stage CLI that `dvc repro` runs does (`netadapt.run_stage`), stamp included; the flow
  asks the stamp, not Prefect's cache, whether a stage is up to date (`seed_stage_cache`).
  A named device's stage task (`device`) runs that device's config and paths (`Config.for_device`,
  `Paths.for_device`) and is named `<stage>@<device>`; its stamp key includes the device.
- A search iteration's key: the search identity (super-network, table, settings without the
  budget, seed), the iteration, its starting architecture and its first target.
- A candidate's key: its architecture, the super-network, holdout and train digests, the evaluation
  settings and the library's code version. The user's model code is in the super-network's digest:
  its checkpoint records the key it was trained under, model code included (`stages.supernet`), so
  keying a candidate looks up no model file.
- One search history for both front ends: the history on disk (`history.json`, whoever wrote it:
  the stage `dvc repro` ran, or an earlier flow) seeds the cache of each iteration it recorded that
  replays exactly (`netadapt.history.Replay`, the rule the stage CLI replays by) and of its
  candidates (`seed_iteration_cache`), as an up-to-date stamp seeds a stage's: those tasks come back
  Cached with the recorded proposal and scores.

Every task persists plain JSON (`netadapt_tasks.results.RESULT_SERIALIZER`) and returns plain data:
a proposal as `proposal_to_data`, a score as a list.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from prefect import task
from prefect.context import TaskRunContext
from prefect.runtime import task_run as current_task_run

from netadapt import stamps
from netadapt.arch import Architecture
from netadapt.checkpoints import load_supernet
from netadapt.config import Config, parse_config
from netadapt.errors import NetAdaptError
from netadapt.evaluation import evaluate_candidate
from netadapt.history import Replay, load_history
from netadapt.io import code_version, content_digest
from netadapt.mcd import Candidate
from netadapt.layout import Paths
from netadapt.models.source import model_reference
from netadapt.resources.metric import resource_model
from netadapt.run_stage import run_stage
from netadapt.schedule import Schedule
from netadapt.search import Proposal, propose_iteration
from netadapt_tasks.dvc import commit_changed, dvc_project
from netadapt_tasks.results import RESULT_SERIALIZER
from netadapt_tracking import stage_run


def proposal_to_data(proposal: Proposal) -> dict:
    """A proposal as plain JSON data (architectures as their JSON descriptions)."""
    return {"iteration": proposal.iteration, "start": proposal.start.to_dict(), "target": proposal.target,
            "cut": proposal.cut, "halvings": proposal.halvings, "clipped": proposal.clipped,
            "candidates": [{"arch": c.arch.to_dict(), "resource": c.resource} for c in proposal.candidates]}


def proposal_from_data(data: dict) -> Proposal:
    return Proposal(int(data["iteration"]), Architecture.from_dict(data["start"]), float(data["target"]),
                    float(data["cut"]), int(data["halvings"]), bool(data["clipped"]),
                    [Candidate(Architecture.from_dict(c["arch"]), float(c["resource"])) for c in data["candidates"]])


# -- tasks -------------------------------------------------------------------------------------------

def folder_paths(folders: dict[str, str], device: str = "") -> Paths:
    """The stages' paths for the flow's folders; a named device's view (`Paths.for_device`) when given."""
    return Paths.from_folders(folders, device)


def stage_config(params: dict, device: str = ""):
    """The config a stage reads: the params, or a named device's (`Config.for_device`)."""
    cfg = parse_config(params)
    return cfg.for_device(device) if device else cfg


def stage_cache_key(stage: str, key: str) -> str:
    """Prefect's cache key of a stage task: its stamp key."""
    return f"stage-{stage}-{key}"


def _stage_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    stage, key, device = parameters["stage"], parameters.get("key"), parameters.get("device", "")
    if not key:
        key = stamps.stage_key(stage, stage_config(parameters["params"], device),
                               folder_paths(parameters["folders"], device))
    return stage_cache_key(stage, key)


def _stage_name() -> str:
    """A stage task run's name: `<stage>`, or `<stage>@<device>` for a named device."""
    parameters = current_task_run.parameters
    device = parameters.get("device", "")
    return f"{parameters['stage']}@{device}" if device else parameters["stage"]


def _transient(task, task_run, state) -> bool:
    """Retry on what may pass (a worker or file system hiccup), never on bad input or data."""
    try:
        state.result()
    except NetAdaptError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


@task(cache_key_fn=_stage_key, persist_result=True, result_serializer=RESULT_SERIALIZER, task_run_name=_stage_name)
def stage_task(stage: str, params: dict, folders: dict[str, str], key: str | None = None, device: str = "") -> dict:
    """Run one pipeline stage (the same function as its CLI), record it in MLflow and write its
    stamp. `key` is its stamp key as computed before it ran (computed here when not given); `device`
    a named device of the params (its config and paths), "" for the plain pipeline's stage."""
    cfg, p = stage_config(params, device), folder_paths(folders, device)
    key = key or stamps.stage_key(stage, cfg, p)  # (the flow cleaned the folders before it took the key)
    return run_stage(stage, cfg, p, key, track=stage_run, by="prefect")


def seed_stage_cache(stage: str, key: str, metrics: dict) -> None:
    """Make Prefect's cache agree with an up-to-date stamp (call it inside the flow): the stage task
    for `key` then comes back Cached with the metrics the stamp recorded, whoever ran the stage
    (`dvc repro` or an earlier flow) and whatever Prefect's cache held for that key before."""
    from prefect.results import get_result_store

    store = get_result_store().update_for_task(stage_task, _sync=True)
    store.write(obj=metrics, key=stage_cache_key(stage, key))


def _iteration_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    parts = [parameters["identity"], parameters["t"], parameters["start"], repr(parameters["first_target"])]
    return "iteration-" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@task(cache_key_fn=_iteration_key, persist_result=True, result_serializer=RESULT_SERIALIZER,
      task_run_name="it{t}-propose")
def iteration_task(t: int, start: str, first_target: float, identity: str, current, current_resource: float,
                   schedule, step, settings) -> dict:
    """One search iteration's proposal (candidates for its target), keyed by what determines it, as
    plain data (`proposal_from_data` rebuilds it)."""
    return proposal_to_data(propose_iteration(t, current, current_resource, schedule, step, settings))


def recorded_search(cfg: Config, p: Paths, identity: str) -> Replay:
    """The search history on disk for this search identity, whoever wrote it, checked as the search
    stage checks it (`load_history`: digest, columns, every row's resource); empty when there is none
    or it is another identity's. Read it before the search starts: a running search rewrites it."""
    if not (p.search / "history.json").is_file():
        return Replay()
    supernet, _ = load_supernet(p.supernet, model_reference(cfg.model))
    saved = load_history(p.search, identity, supernet.space(), resource_model(cfg, supernet, p.lut))
    return Replay.of(saved.history, saved.budget)


def recorded_proposal(replay: Replay, t: int, current: Architecture, current_resource: float,
                      schedule: Schedule) -> tuple[Proposal, list[list[float]]] | None:
    """Iteration t's proposal and its candidates' [accuracy, seconds] as `replay` recorded them, when
    they are what `propose_iteration` gives for this key (start, first target): the iteration replays
    exactly (`Replay.iteration`) and its recorded cut and target follow from this schedule (a history's
    later rows may come from a measured search's tightened budget)."""
    unclipped = current_resource - schedule.reduction(t) >= schedule.budget
    rows = replay.iteration(t, current, unclipped, schedule.budget)
    if not rows:
        return None
    first = rows[0]
    cut, halvings = float(first["reduction"]), int(first["halvings"])
    same_cut = cut * 2 ** halvings == schedule.reduction(t)  # (exact: scaled by a power of two)
    if not same_cut or float(first["target"]) != schedule.target(current_resource, cut) or \
            bool(first["clipped"]) == unclipped:
        return None
    rows = sorted(rows, key=lambda r: int(r["candidate"]))
    candidates = [Candidate(current.with_widths(json.loads(r["arch"])), float(r["resource_estimated"])) for r in rows]
    proposal = Proposal(t, current, float(first["target"]), cut, halvings, bool(first["clipped"]), candidates)
    return proposal, [[float(r["holdout_acc"]), float(r["seconds"])] for r in rows]


def seed_iteration_cache(identity: str, first_target: float, proposal: Proposal, scores: list[list[float]],
                         kwargs: dict) -> None:
    """Make Prefect's cache agree with an iteration the history on disk recorded (call it inside the
    search subflow): its `iteration_task` and its candidates' `candidate_task` (evaluated with `kwargs`)
    then come back Cached with the recorded proposal and scores."""
    from prefect.results import get_result_store

    store = get_result_store().update_for_task(iteration_task, _sync=True)
    key = _iteration_key(None, {"identity": identity, "t": proposal.iteration,
                                "start": proposal.start.widths_json(), "first_target": first_target})
    store.write(obj=proposal_to_data(proposal), key=key)
    seed_candidate_cache([c.arch.to_json() for c in proposal.candidates], scores, kwargs)


def seed_candidate_cache(arch_jsons: list[str], scores: list[list[float]], kwargs: dict) -> None:
    """Make Prefect's cache hold these recorded scores ([accuracy, seconds]) of candidates evaluated
    with `kwargs` (call it inside a flow)."""
    from prefect.results import get_result_store

    store = get_result_store().update_for_task(candidate_task, _sync=True)
    for arch_json, score in zip(arch_jsons, scores):
        store.write(obj=[float(x) for x in score], key=_candidate_key(None, {"arch_json": arch_json, "kwargs": kwargs}))


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, mtime: float) -> str:
    return content_digest([Path(path)])


def _candidate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    kwargs = parameters["kwargs"]
    files = [kwargs["supernet_path"], *(str(Path(kwargs["prepared_path"]) / f"{s}.pt") for s in ("holdout", "train"))]
    digests = [_file_digest(f, Path(f).stat().st_mtime) for f in files]
    settings = {k: v for k, v in kwargs.items() if not k.endswith("_path")}
    parts = [parameters["arch_json"], digests, settings, code_version()]
    return "candidate-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _candidate_name() -> str:
    """`it<t>-cand<j>`: candidate j of search iteration t; `base` for the unpruned network."""
    parameters = current_task_run.parameters
    t = parameters.get("iteration", -1)
    return "base" if t < 0 else f"it{t}-cand{parameters.get('index', 0)}"


def on_dask_worker() -> bool:
    """Whether this code runs in a Dask worker (never imports Dask: a process that has not imported
    `distributed` is no worker)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def pin_worker_threads() -> None:
    """One torch thread per Dask worker thread. Torch's intra-op pool is per process and defaults to one
    thread per core: N worker processes on N cores would each run N threads (N*N threads fighting for N
    cores: slower than N workers of one thread, and timings nobody can reason about). The scheduler's
    workers are the parallelism here; each evaluation runs single-threaded. A Dask nanny already sets
    OMP_NUM_THREADS=1 in the workers it spawns (`distributed.nanny.pre-spawn-environ`); this also holds
    for workers started without one (`dask worker --no-nanny`) or with other settings. A worker of k
    threads runs k evaluations at once, still one torch thread each. Outside a worker: no change (the
    thread runner shares the flow's process and its settings)."""
    if on_dask_worker() and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@task(cache_key_fn=_candidate_key, persist_result=True, result_serializer=RESULT_SERIALIZER,
      task_run_name=_candidate_name, retries=2, retry_delay_seconds=2, retry_condition_fn=_transient)
def candidate_task(arch_json: str, kwargs: dict, iteration: int = -1, index: int = 0) -> list[float]:
    """Score one architecture with the super-network's weights on holdout: [accuracy, seconds].
    Retried twice on a worker failure (not on bad input); `iteration` and `index` only name the run
    (not in the cache key). On a Dask worker, torch is pinned to one thread first (`pin_worker_threads`)."""
    pin_worker_threads()
    return [float(x) for x in evaluate_candidate(arch_json, **kwargs)]


@task(name="dvc-commit", task_run_name="dvc-commit", retries=2, retry_delay_seconds=5, timeout_seconds=300,
      retry_condition_fn=_transient, result_serializer=RESULT_SERIALIZER)
def dvc_commit_task(params: dict, folders: dict[str, str]) -> dict:
    """Record in `dvc.lock` the stages whose outputs DVC sees as changed (the ones the flow ran), as
    `dvc repro` records a stage it ran: `dvc status` then has nothing to do. Call it only after every
    stage succeeded (each has an up-to-date stamp). Retried when DVC's repository lock is busy."""
    root, reason = dvc_project(params, folders)
    if root is None:
        return {"committed": [], "skipped": reason}
    return {"committed": commit_changed(root, params), "skipped": ""}
