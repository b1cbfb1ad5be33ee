"""Prefect tasks over the library: a task per pipeline stage, a task per search iteration, a task
per candidate evaluation, each with a cache key built from what determines its result.

- A stage task's key: the code version, the params sections the stage reads, and the content
  digests of its input artifacts.
- A search iteration's key: the search identity (super-network, table, settings without the
  budget, seed), the iteration, its starting architecture and its first target.
- A candidate's key: its architecture, the super-network and holdout digests, the evaluation
  settings and the code version.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from netadapt import stages
from netadapt.config import Config, parse_config
from netadapt.evaluation import evaluate_candidate
from netadapt.io import code_version, content_digest
from netadapt.search import Proposal, propose_iteration
from tasks.tracking import log_stage

def folder_paths(folders: dict[str, str]) -> stages.Paths:
    return stages.Paths(**{k: Path(v) for k, v in folders.items()})


def stage_inputs(stage: str, cfg: Config, p: stages.Paths) -> list[Path]:
    return {
        "prepare": [Path(cfg.data.root)],
        "profile": [p.prepared / "meta.json"],
        "supernet": [p.prepared / "train.pt", p.prepared / "holdout.pt", p.prepared / "meta.json"],
        "finetune": [p.prepared / "train.pt", p.prepared / "holdout.pt", p.supernet, p.search / "arch.json",
                     p.v1_network],
        "evaluate": [p.prepared / "test.pt", p.final, p.supernet, p.lut],
    }[stage]


def stage_outputs(stage: str, p: stages.Paths) -> list[Path]:
    return {
        "prepare": [p.prepared / f"{s}.pt" for s in ("train", "holdout", "test")] + [p.prepared / "meta.json"],
        "profile": [p.lut, p.lut.with_suffix(".json")],
        "supernet": [p.supernet],
        "finetune": [p.final],
        "evaluate": [p.metrics_file("evaluate")],
    }[stage]


def _stage_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    stage, cfg, p = parameters["stage"], parse_config(parameters["params"]), folder_paths(parameters["folders"])
    parts = [stage, code_version(), cfg.section_digest(*stages.STAGE_PARAMS[stage]),
             content_digest(stage_inputs(stage, cfg, p))]
    return "stage-" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@task(cache_key_fn=_stage_key, persist_result=True, task_run_name="{stage}")
def stage_task(stage: str, params: dict, folders: dict[str, str]) -> dict:
    """Run one pipeline stage (the same function as its CLI) and record it in MLflow."""
    cfg, p = parse_config(params), folder_paths(folders)
    metrics = getattr(stages, stage)(cfg, p)
    log_stage(stage, cfg, p, metrics)
    return metrics


def _iteration_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    parts = [parameters["identity"], parameters["t"], parameters["start"], repr(parameters["first_target"])]
    return "iteration-" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@task(cache_key_fn=_iteration_key, persist_result=True, task_run_name="search-iteration-{t}")
def iteration_task(t: int, start: str, first_target: float, identity: str, current, current_resource: float,
                   schedule, step, settings) -> Proposal:
    """One search iteration's proposal (candidates for its target), keyed by what determines it."""
    return propose_iteration(t, current, current_resource, schedule, step, settings)


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, mtime: float) -> str:
    return content_digest([Path(path)])


def _candidate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    kwargs = parameters["kwargs"]
    files = [kwargs["supernet_path"], str(Path(kwargs["prepared_path"]) / "holdout.pt")]
    digests = [_file_digest(f, Path(f).stat().st_mtime) for f in files]
    settings = {k: v for k, v in kwargs.items() if not k.endswith("_path")}
    parts = [parameters["arch_json"], digests, settings, code_version()]
    return "candidate-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@task(cache_key_fn=_candidate_key, persist_result=True, task_run_name="evaluate-candidate")
def candidate_task(arch_json: str, kwargs: dict) -> tuple[float, float]:
    return evaluate_candidate(arch_json, **kwargs)
