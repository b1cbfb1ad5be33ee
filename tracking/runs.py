"""A stage's run: opened (with the pipeline's parent run) before the stage starts, filled in when it
finishes, closed FINISHED, FAILED or KILLED (the policy is in the `netadapt_tracking` docstring)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from netadapt.config import Config, flatten
from netadapt.errors import NetAdaptError
from netadapt.layout import STAGE_PARAMS, Paths
from netadapt.orphan import dvc_parent
from netadapt.verdict import verdict_name
from netadapt_tracking.contents import (DEVICE_TAG, MAX_TAG, PIPELINE_TAG, ROLE_TAG, STAGE_TAG, log_contents,
                                        log_params, log_partial, section_params, update_parent)
from netadapt_tracking.registry import describe_model_version, log_model
from netadapt_tracking.store import enabled, open_store, patience, quiet_store, retry_while_locked, tracking_uri

log = logging.getLogger("netadapt")

_PROCESS_PIPELINE = f"run-{uuid.uuid4().hex[:12]}"


def pipeline_id() -> str:
    """The id shared by all stages of one pipeline execution (see the `netadapt_tracking` docstring)."""
    if os.environ.get("NETADAPT_PIPELINE_ID"):
        return os.environ["NETADAPT_PIPELINE_ID"]
    dvc = dvc_parent()
    return f"dvc-{dvc.pid}-{int(dvc.create_time())}" if dvc is not None else _PROCESS_PIPELINE


def pipeline_name(cfg: Config, budget_met: bool | None = None, pid: str = "") -> str:
    """A parent run's name, verdict first (`netadapt.verdict`): `latency ≤ 50% · pending · mobilenet_v2 ·
    fashion-mnist · onnxruntime-cpu · dvc`; evaluate renames it MET or MISSED (`update_parent`)."""
    return verdict_name(cfg, budget_met, pid)


class StageRun:
    """A stage's child run, open while the stage runs (a no-op when tracking is off).

    `finish(metrics)` logs what the stage returned and wrote; an error while logging is a warning
    (kept in `logging_error`), never an exception.
    """

    def __init__(self, stage: str, cfg: Config, paths: Paths, client: Any = None, run_id: str | None = None,
                 parent_id: str | None = None, pipeline: str | None = None, experiment_id: str | None = None):
        self.stage, self.cfg, self.paths = stage, cfg, paths
        self.client, self.run_id, self.parent_id = client, run_id, parent_id
        self.pipeline, self.experiment_id = pipeline, experiment_id
        self.started = time.time()
        self.logging_error: str | None = None

    @property
    def tracked(self) -> bool:
        return self.run_id is not None

    def finish(self, metrics: dict) -> None:
        """Log the finished stage: params are already there; metrics, curves, artifacts and the rest."""
        if not self.tracked:
            return
        try:
            with quiet_store():
                _log_finished(self, metrics)
        except Exception as exc:  # noqa: BLE001 - the stage's work is done and written: never lose it
            self.logging_error = _one_line(exc)[:300]
            log.warning("tracking: %s finished and its outputs are written, but logging it to MLflow failed: %s "
                        "(run %s is incomplete)", self.stage, self.logging_error, self.run_id)


@contextmanager
def stage_run(stage: str, cfg: Config, paths: Paths) -> Iterator[StageRun]:
    """The stage's child run, open for the duration of the block (see the `netadapt_tracking` docstring)."""
    if not enabled():
        yield StageRun(stage, cfg, paths)
        return
    run = _open(stage, cfg, paths)
    try:
        yield run
    except Exception as exc:
        _close(run, "FAILED", exc)
        raise
    except BaseException as exc:  # KeyboardInterrupt, Prefect's TerminationSignal, CancelledError
        _close(run, "KILLED", exc)
        raise
    else:
        _close(run, "FINISHED")


def log_stage(stage: str, cfg: Config, paths: Paths, metrics: dict) -> str | None:
    """Record an already finished stage; its run then spans only the logging. Prefer `stage_run`."""
    with stage_run(stage, cfg, paths) as run:
        run.finish(metrics)
    return run.run_id


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).split(" [SQL: ")[0]  # SQLAlchemy's statement and parameters: noise
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open(stage: str, cfg: Config, paths: Paths) -> StageRun:
    """Open the stage's run, before the stage does any work: a store another writer holds locked is
    retried (`netadapt_tracking.store.retry_while_locked`); any other failure (and a lock held
    longer) raises `NetAdaptError` before the stage starts."""
    with quiet_store():
        return retry_while_locked(lambda: _open_once(stage, cfg, paths))


def _open_once(stage: str, cfg: Config, paths: Paths) -> StageRun:
    uri = tracking_uri()
    try:
        client, experiment_id = open_store(uri, cfg.tracking.experiment)
        pid = pipeline_id()
        parent = _parent(client, experiment_id, pid, cfg)
        device = {DEVICE_TAG: paths.device} if paths.device else {}
        child = client.create_run(experiment_id, run_name=f"{stage}@{paths.device}" if paths.device else stage,
                                  tags=_run_tags({PIPELINE_TAG: pid, STAGE_TAG: stage, "mlflow.parentRunId": parent,
                                                  **device}))
        run = StageRun(stage, cfg, paths, client, child.info.run_id, parent, pid, experiment_id)
        log_params(client, run.run_id, section_params(cfg, list(STAGE_PARAMS.get(stage, ()))))
    except Exception as exc:  # noqa: BLE001 - any store problem: stop before the stage does any work
        waited = f"; {patience(uri)}" if patience(uri) else ""
        raise NetAdaptError(f"tracking: cannot open an MLflow run in {uri}: {_one_line(exc)[:300]} "
                            f"(check MLFLOW_TRACKING_URI, or set NETADAPT_TRACKING=off{waited})") from exc
    return run


def _close(run: StageRun, status: str, exc: BaseException | None = None) -> None:
    """End the stage's run and its parent as `status`; a store another writer holds locked is waited
    for (`retry_while_locked`), so that no run is left RUNNING; any failure is one warning line."""
    try:
        with quiet_store():
            retry_while_locked(lambda: _close_once(run, status, exc))
    except Exception as err:  # noqa: BLE001 - never mask the stage's own outcome
        log.warning("tracking: could not close the MLflow run %s of %s as %s: %s", run.run_id, run.stage, status,
                    _one_line(err)[:300])


def _close_once(run: StageRun, status: str, exc: BaseException | None) -> None:
    client = run.client
    if exc is not None:
        client.set_tag(run.run_id, "netadapt.error", _one_line(exc)[:MAX_TAG])
        if status == "FAILED":
            log_partial(run)
    if run.logging_error:
        client.set_tag(run.run_id, "netadapt.tracking_error", run.logging_error[:MAX_TAG])
        status = "FAILED" if status == "FINISHED" else status  # the record is incomplete, not the stage
    client.set_terminated(run.run_id, status)
    client.set_terminated(run.parent_id, status)


def _run_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags `mlflow.start_run` adds (user, source, git commit), plus ours."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(tags)


def _parent(client, experiment_id: str, pid: str, cfg: Config) -> str:
    """The pipeline's parent run (found by its pipeline id, else created with every param), running."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{pid}' "
                                                              f"and tags.`{ROLE_TAG}` = 'pipeline'",
                               max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    s = cfg.search
    name = pipeline_name(cfg, None, pid)
    run = client.create_run(experiment_id, run_name=name, tags=_run_tags({
        PIPELINE_TAG: pid, ROLE_TAG: "pipeline", "netadapt.dataset": cfg.data.name, "netadapt.model": cfg.model.name,
        "netadapt.budget": f"{s.metric} {s.budget:g} ({s.budget_type})", "netadapt.backend": cfg.profile.backend,
        "mlflow.note.content": f"Pipeline {pid}: {name}. One child run per stage."}))
    log_params(client, run.info.run_id, flatten(cfg))
    return run.info.run_id


def _log_finished(run: StageRun, metrics: dict) -> None:
    """Everything a finished stage's run holds, then its parent's totals and the registry."""
    log_contents(run, metrics)
    if run.stage == "finetune":
        log_model(run)
    update_parent(run, metrics)
    if run.stage == "evaluate":
        describe_model_version(run, metrics)
