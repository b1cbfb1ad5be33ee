"""MLflow tracking for stage runs: one parent run per pipeline execution, one child run per stage.

Both front ends (the stage CLI that `dvc.yaml` runs, and the Prefect tasks) wrap a stage in
`stage_run`, which opens the stage's child run before the stage starts and closes it when it ends:

    with stage_run(stage, cfg, paths) as run:   # after config validation; imports MLflow only here
        metrics = stage_fn(cfg, paths)
        run.finish(metrics)                     # params, metrics, curves, artifacts, model, registry

- Status: FINISHED when the block ends, FAILED when the stage raises an `Exception` (the error is
  tagged `netadapt.error`; metrics and artifacts the stage wrote before failing are logged),
  KILLED on a `BaseException` that is not an `Exception` (Ctrl-C, Prefect cancellation). The
  exception always propagates. The parent run takes the status of its latest stage.
- Failure policy. A run that cannot be *opened* (bad URI, unreachable store) raises `NetAdaptError`
  before the stage does any work: nothing is lost and the user fixes it or sets
  `NETADAPT_TRACKING=off`. A failure while *logging* a finished stage is a warning, the run is
  closed with a `netadapt.tracking_error` tag where the store still answers, and the stage succeeds:
  its outputs, `metrics/<stage>.json` and its report are written, and failing it would make `dvc
  repro` leave it out of `dvc.lock` and Prefect not cache it, so hours of work would run again for a
  record.
- Parent run: named after dataset, model, budget and backend; holds every param, `total_seconds`
  (the stages' own `seconds`, summed over its latest child per stage) and, once evaluate is
  logged, the headline metrics (`test_acc`, `latency_measured_ms`, `latency_ratio`, `budget_met`).
- Registry: finetune logs the model (`mlflow.pytorch.log_model`) and registers it as
  `netadapt-<dataset>-<model>` (a named device's: `netadapt-<dataset>-<model>-<device>`), its version
  tagged with the model file's digest. Evaluate finds
  that version by digest and tags it with the budget, test accuracy, latency, backend, dataset
  digest and git commit, and writes its description.
- Datasets: supernet and finetune (context `training`) and evaluate (`testing`) log the prepared
  data as an MLflow dataset input named `data.name`, digest `netadapt.io.content_digest`.
- Devices: a named device's stage run (`Paths.for_device`) is named `<stage>@<device>` and tagged
  `netadapt.device`; its evaluate logs its headline metrics to the parent as `<device>/<metric>`.
- The search run holds `search/candidates.json` (`mlflow.log_table`): every evaluated candidate.
- The experiment is tagged `mlflow.experimentKind = custom_model_development`, so the MLflow UI
  opens it in the model-training view rather than the GenAI one.
- Tracking URI: `MLFLOW_TRACKING_URI`, default a SQLite file in the working directory (`mlflow.db`).
- Pipeline id: `NETADAPT_PIPELINE_ID` when set (the flow sets it), else the `dvc repro` process
  that started the stage, else one per process (all stages of `netadapt run` share a parent run).
- `NETADAPT_TRACKING=off` turns tracking off; `stage_run` then yields a run that logs nothing and
  MLflow is never imported.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from netadapt.config import Config, flatten
from netadapt.errors import NetAdaptError
from netadapt.io import content_digest
from netadapt.layout import RESULT_METRICS, STAGE_PARAMS, Paths

log = logging.getLogger("netadapt")

PIPELINE_TAG, STAGE_TAG, ROLE_TAG = "netadapt.pipeline_id", "netadapt.stage", "netadapt.role"
DEVICE_TAG = "netadapt.device"  # a named device's runs and model versions (`Config.devices`)
MODEL_DIGEST_TAG = "netadapt.model_digest"
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
CANDIDATES_TABLE = "search/candidates.json"
DATASET_CONTEXT = {"supernet": "training", "finetune": "training", "evaluate": "testing"}
PROJECT = Path(__file__).resolve().parents[1]
_MAX_TAG = 5000
_PROCESS_PIPELINE = f"run-{uuid.uuid4().hex[:12]}"


def enabled() -> bool:
    return os.environ.get("NETADAPT_TRACKING", "on").lower() not in ("off", "0", "false", "no")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def pipeline_id() -> str:
    """The id shared by all stages of one pipeline execution (see the module docstring)."""
    if os.environ.get("NETADAPT_PIPELINE_ID"):
        return os.environ["NETADAPT_PIPELINE_ID"]
    try:
        import psutil

        for parent in psutil.Process().parents():
            if any(Path(part).name == "dvc" for part in parent.cmdline()[:2]):
                return f"dvc-{parent.pid}-{int(parent.create_time())}"
    except Exception:  # noqa: BLE001 - no process information: a run of its own
        pass
    return _PROCESS_PIPELINE


def pipeline_name(cfg: Config) -> str:
    """A parent run's name: `fashion-mnist · mobilenet_v2 · latency ≤ 50% · onnxruntime-cpu`."""
    s = cfg.search
    unit = {"latency": " ms", "macs": " MACs", "params": " params"}.get(s.metric, "")
    budget = f"{s.budget * 100:g}%" if s.budget_type == "relative" else f"{s.budget:g}{unit}"
    return f"{cfg.data.name} · {cfg.model.name} · {s.metric} ≤ {budget} · {cfg.profile.backend}"


def model_name(cfg: Config, device: str = "") -> str:
    """The registered model's name: `netadapt-<dataset>-<model>`, `-<device>` for a named device."""
    name = f"netadapt-{cfg.data.name}-{cfg.model.name}" + (f"-{device}" if device else "")
    return name.replace(":", "-").replace("/", "-")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """`git rev-parse HEAD` of the checkout this code runs from, or "unknown"."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dataset_digest(paths: Paths) -> str:
    """Content digest of the prepared splits (`netadapt.io.content_digest`), cached by size and mtime."""
    files = sorted(p for p in paths.prepared.rglob("*") if p.is_file()) if paths.prepared.is_dir() else []
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _digest(str(paths.prepared.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _digest(folder: str, stamp: tuple) -> str:
    return content_digest([Path(folder)])


# -- the run ---------------------------------------------------------------------------------------


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
            _log_finished(self, metrics)
        except Exception as exc:  # noqa: BLE001 - the stage's work is done and written: never lose it
            self.logging_error = _one_line(exc)
            log.warning("tracking: %s finished and its outputs are written, but logging it to MLflow failed: %s "
                        "(run %s is incomplete)", self.stage, self.logging_error, self.run_id)


@contextmanager
def stage_run(stage: str, cfg: Config, paths: Paths) -> Iterator[StageRun]:
    """The stage's child run, open for the duration of the block (see the module docstring)."""
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
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_STORE_RETRY_SECONDS = 60.0  # how long a stage waits for a SQLite store another writer holds locked


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI (None for any other store, or in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    name = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(name).resolve() if name and name != ":memory:" else None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock (flock) around the first use of a SQLite store in this process: MLflow creates
    and migrates a new database's schema when a store is first opened, and two processes doing it at
    once crashed one (`duplicate column name: step`). The lock file lives in the temp folder, named
    after the database, so the project gets no extra file; other stores are not locked."""
    db = _sqlite_file(uri)
    if db is None:
        yield
        return
    import fcntl
    import hashlib
    import tempfile

    name = f"netadapt-mlflow-init-{hashlib.sha256(str(db).encode()).hexdigest()[:16]}.lock"
    with open(Path(tempfile.gettempdir()) / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _locked(exc: BaseException) -> bool:
    """A SQLite store that another writer holds ("database is locked" / "database is busy")."""
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return "database is locked" in text or "database is busy" in text


def _open(stage: str, cfg: Config, paths: Paths) -> StageRun:
    """Open the stage's run, before the stage does any work: a store another writer holds locked is
    retried for up to `_STORE_RETRY_SECONDS`; any other failure (and a lock held longer) raises
    `NetAdaptError` before the stage starts."""
    deadline, wait = time.monotonic() + _STORE_RETRY_SECONDS, 0.2
    while True:
        try:
            return _open_once(stage, cfg, paths)
        except NetAdaptError as exc:
            if not _locked(exc.__cause__ or exc) or time.monotonic() + wait > deadline:
                raise
            log.info("tracking: the MLflow store is locked by another writer; retrying in %.1f s", wait)
            time.sleep(wait)
            wait = min(2 * wait, 5.0)


_READY: set[str] = set()  # the SQLite stores this process has opened once (schema created or checked)


def _open_once(stage: str, cfg: Config, paths: Paths) -> StageRun:
    uri = tracking_uri()
    try:
        import mlflow
        from mlflow.tracking import MlflowClient

        # the store (and a new database's schema) is created here: one process at a time
        with _store_lock(uri) if uri not in _READY else contextlib.nullcontext():
            mlflow.set_tracking_uri(uri)
            client = MlflowClient(uri)
            experiment_id = _experiment(client, cfg.tracking.experiment)
        _READY.add(uri)
        mlflow.set_experiment(experiment_id=experiment_id)  # where log_model puts its LoggedModel
        pid = pipeline_id()
        parent = _parent(client, experiment_id, pid, cfg)
        device = {DEVICE_TAG: paths.device} if paths.device else {}
        child = client.create_run(experiment_id, run_name=f"{stage}@{paths.device}" if paths.device else stage,
                                  tags=_run_tags({PIPELINE_TAG: pid, STAGE_TAG: stage, "mlflow.parentRunId": parent,
                                                  **device}))
        run = StageRun(stage, cfg, paths, client, child.info.run_id, parent, pid, experiment_id)
        _log_params(client, run.run_id, _params(cfg, list(STAGE_PARAMS.get(stage, ()))))
    except Exception as exc:  # noqa: BLE001 - any store problem: stop before the stage does any work
        raise NetAdaptError(f"tracking: cannot open an MLflow run in {uri}: {_one_line(exc)[:300]} "
                            f"(check MLFLOW_TRACKING_URI, or set NETADAPT_TRACKING=off)") from exc
    return run


def _close(run: StageRun, status: str, exc: BaseException | None = None) -> None:
    client = run.client
    try:
        if exc is not None:
            client.set_tag(run.run_id, "netadapt.error", _one_line(exc)[:_MAX_TAG])
            if status == "FAILED":
                _log_partial(run)
        if run.logging_error:
            client.set_tag(run.run_id, "netadapt.tracking_error", run.logging_error[:_MAX_TAG])
        client.set_terminated(run.run_id, status)
        client.set_terminated(run.parent_id, status)
    except Exception as err:  # noqa: BLE001 - never mask the stage's own outcome
        log.warning("tracking: could not close the MLflow run %s of %s as %s: %s", run.run_id, run.stage, status,
                    _one_line(err))


def _run_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags `mlflow.start_run` adds (user, source, git commit), plus ours."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(tags)


def _experiment(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # never override a kind the user chose
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _parent(client, experiment_id: str, pid: str, cfg: Config) -> str:
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{pid}' "
                                                              f"and tags.`{ROLE_TAG}` = 'pipeline'",
                               max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    s = cfg.search
    run = client.create_run(experiment_id, run_name=pipeline_name(cfg), tags=_run_tags({
        PIPELINE_TAG: pid, ROLE_TAG: "pipeline", "netadapt.dataset": cfg.data.name, "netadapt.model": cfg.model.name,
        "netadapt.budget": f"{s.metric} {s.budget:g} ({s.budget_type})", "netadapt.backend": cfg.profile.backend,
        "mlflow.note.content": f"Pipeline {pid}: {pipeline_name(cfg)}. One child run per stage."}))
    _log_params(client, run.info.run_id, flatten(cfg))
    return run.info.run_id


# -- what a run holds ------------------------------------------------------------------------------


def _params(cfg: Config, sections: list[str]) -> dict[str, Any]:
    flat = flatten(cfg)
    return {k: v for k, v in flat.items() if k.split(".")[0] in sections}


def _numbers(metrics: dict) -> dict[str, float]:
    """Numeric metrics as floats; booleans as 1.0 / 0.0; non-finite values left out."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def _log_params(client, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def _log_metrics(client, run_id: str, values: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, v, now, step) for k, v in values.items()]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i:i + 1000])


def _curves(stage: str, paths: Paths) -> list[tuple[int, dict[str, float]]]:
    """Per-step metrics of a stage, read back from what it wrote."""
    if stage == "supernet" and (paths.plots / "supernet.csv").is_file():
        df = pd.read_csv(paths.plots / "supernet.csv")
        return [(int(r.epoch), {"epoch_loss": r.loss, "epoch_holdout_acc_largest": r.holdout_acc_largest,
                                "epoch_holdout_acc_smallest": r.holdout_acc_smallest}) for r in df.itertuples()]
    if stage == "finetune" and (paths.plots / "finetune.csv").is_file():
        df = pd.read_csv(paths.plots / "finetune.csv")
        return [(int(r.epoch), {"epoch_loss": r.loss, "epoch_holdout_acc": r.holdout_acc}) for r in df.itertuples()]
    if stage == "search" and (paths.search / "history.csv").is_file():
        h = pd.read_csv(paths.search / "history.csv")
        h = h[h.iteration >= 0]
        steps = []
        for t, it in h.groupby("iteration"):
            kept = it[it.kept.astype(bool)].iloc[0]
            steps.append((int(t), {"iteration_holdout_acc": kept.holdout_acc,
                                   "iteration_resource_estimated": kept.resource_estimated,
                                   "iteration_candidates": len(it), "iteration_seconds": float(it.seconds.sum())}))
        return steps
    return []


def _artifacts(stage: str, paths: Paths) -> list[tuple[Path, str]]:
    files = {
        "profile": [(paths.lut, "lookup_table"), (paths.lut.with_suffix(".json"), "lookup_table"),
                    (paths.plots / "fidelity.png", "plots"), (paths.plots / "fidelity.csv", "plots")],
        "supernet": [(paths.plots / "supernet.csv", "plots")],
        "search": [(paths.search / "history.csv", "search"), (paths.search / "arch.json", "search"),
                   (paths.plots / "search.png", "plots")],
        "finetune": [(paths.final.with_suffix(".onnx"), "onnx"), (paths.plots / "finetune.csv", "plots")],
        "evaluate": [(paths.plots / "tradeoff.png", "plots")],
    }.get(stage, [])
    return [(path, folder) for path, folder in files if path.is_file()]


def candidates_table(paths: Paths) -> pd.DataFrame:
    """Every candidate the search evaluated (`history.csv`), one row each, for `mlflow.log_table`.

    Iteration -1 is the starting (largest) network; `widths` is the candidate's architecture."""
    h = pd.read_csv(paths.search / "history.csv")
    # object, not pandas 3's "str" dtype: MLflow's image check selects object columns and warns on str
    table = pd.DataFrame({"iteration": h.iteration.astype(int), "candidate": h.candidate.astype(int),
                          "widths": h.arch.astype(str).astype(object),
                          "resource_estimated": h.resource_estimated.astype(float),
                          "holdout_acc": h.holdout_acc.astype(float), "kept": h.kept.astype(bool)})
    for column in ("target", "seconds"):
        if column in h:
            table[column] = h[column].astype(float)
    return table


def _log_finished(run: StageRun, metrics: dict) -> None:
    from mlflow.entities import RunTag

    client, rid, stage, cfg, paths = run.client, run.run_id, run.stage, run.cfg, run.paths
    _log_metrics(client, rid, _numbers(metrics))
    texts = [RunTag(k, str(v)[:_MAX_TAG]) for k, v in metrics.items() if isinstance(v, str)]
    if texts:  # e.g. backend, algorithm: tags, as MLflow metrics are numbers
        client.log_batch(rid, tags=texts)
    for step, values in _curves(stage, paths):
        _log_metrics(client, rid, _numbers(values), step=step)
    for path, folder in _artifacts(stage, paths):
        client.log_artifact(rid, str(path), artifact_path=folder)
    if stage == "search" and (paths.search / "history.csv").is_file():
        client.log_table(rid, candidates_table(paths), CANDIDATES_TABLE)
    if stage in DATASET_CONTEXT and paths.prepared.is_dir():
        _log_dataset(run, DATASET_CONTEXT[stage])
    if stage == "finetune":
        _log_model(run)
    _update_parent(run, metrics)
    if stage == "evaluate":
        _describe_model_version(run, metrics)


def _log_partial(run: StageRun) -> None:
    """What a failed stage wrote before failing (e.g. evaluate's metrics over budget, a stopped
    search's history): metrics and artifacts written since the run opened."""
    def fresh(path: Path) -> bool:
        return path.is_file() and path.stat().st_mtime >= run.started - 1

    report = run.paths.report(run.stage)  # every metric; `metrics/<stage>.json` holds the headline ones
    if fresh(report):
        _log_metrics(run.client, run.run_id, _numbers(json.loads(report.read_text())))
    for path, folder in _artifacts(run.stage, run.paths):
        if fresh(path):
            run.client.log_artifact(run.run_id, str(path), artifact_path=folder)


def _log_dataset(run: StageRun, context: str) -> None:
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    source = get_dataset_source_from_json(json.dumps({"uri": str(run.paths.prepared.resolve())}), "local")
    dataset = MetaDataset(source, name=run.cfg.data.name, digest=dataset_digest(run.paths))
    run.client.log_inputs(run.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                             tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])


def _log_model(run: StageRun) -> None:
    """Log (and register) the final network in MLflow's "pt2" format, servable on any batch size.

    "pt2" (`torch.export`) loads without unpickling code, unlike "pickle", which MLflow refuses to
    load unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is set. MLflow exports with `Dim.AUTO` on each
    `-1` of the input signature, and `torch.export` specializes a size-1 dimension to a constant: so
    the signature says batch `-1` and the example has a batch of 2 (a batch-1 example gives a model
    that only accepts batch 1). The registered version is tagged with the model file's digest (so
    evaluate finds it), the pipeline, the dataset digest and the git commit.
    """
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from netadapt.checkpoints import load_network

    cfg, paths = run.cfg, run.paths
    model, arch = load_network(paths.final)
    example = torch.zeros(2, *arch.model.input_shape)
    with torch.no_grad():
        output = model(example)
    # infer_signature marks axis 0 of numpy arrays as -1: input [-1, C, H, W] float32, output [-1, classes]
    signature = infer_signature(example.numpy(), output.numpy())
    name = model_name(cfg, paths.device)
    info = mlflow.pytorch.log_model(model, name="model", input_example=example.numpy(), signature=signature,
                                    serialization_format="pt2", pip_requirements=["torch==2.13.0"],
                                    registered_model_name=name if cfg.tracking.register_model else None,
                                    run_id=run.run_id)
    version = getattr(info, "registered_model_version", None)
    if version is None:
        return
    tags = {MODEL_DIGEST_TAG: content_digest([paths.final]), PIPELINE_TAG: run.pipeline or "",
            "dataset": cfg.data.name, "dataset_digest": dataset_digest(paths), "git_commit": git_commit(),
            "netadapt.finetune_run_id": run.run_id, **({DEVICE_TAG: paths.device} if paths.device else {})}
    for key, value in tags.items():
        run.client.set_model_version_tag(name, str(version), key, value)
    run.client.update_model_version(name, str(version), description=(
        f"{cfg.model.name} found by NetAdapt ({cfg.search.algorithm}) for {cfg.data.name}, fine-tuned by pipeline "
        f"{run.pipeline}. Not evaluated yet: the evaluate stage adds test accuracy and measured latency."))


def _update_parent(run: StageRun, metrics: dict) -> None:
    """`total_seconds` over this pipeline's latest run of each stage; evaluate's headline metrics."""
    children = run.client.search_runs([run.experiment_id], f"tags.`mlflow.parentRunId` = '{run.parent_id}'",
                                      order_by=["attributes.start_time DESC"], max_results=1000)
    latest: dict[Any, Any] = {}
    for child in children:
        latest.setdefault((child.data.tags.get(STAGE_TAG, child.info.run_id), child.data.tags.get(DEVICE_TAG, "")),
                          child)
    seconds = {stage: child.data.metrics.get("seconds") for stage, child in latest.items()}
    values = {"total_seconds": float(sum(s for s in seconds.values() if s is not None)),
              "stages_logged": float(sum(s is not None for s in seconds.values()))}
    if run.stage == "evaluate":
        prefix = f"{run.paths.device}/" if run.paths.device else ""
        values.update({prefix + k: v for k, v in _numbers(metrics).items() if k in RESULT_METRICS})
    _log_metrics(run.client, run.parent_id, values)


def _describe_model_version(run: StageRun, metrics: dict) -> None:
    """Tag the registered version of the evaluated model (found by its file's digest) with what a
    reviewer asks of it, and describe it."""
    cfg, paths, client = run.cfg, run.paths, run.client
    if not paths.final.is_file():
        return
    name, digest = model_name(cfg, paths.device), content_digest([paths.final])
    versions = client.search_model_versions(f"name = '{name}' and tags.`{MODEL_DIGEST_TAG}` = '{digest}'",
                                            max_results=1, order_by=["version_number DESC"])
    if not versions:
        log.info("tracking: no registered version of %s holds %s; nothing to tag", name, paths.final)
        return
    version = str(versions[0].version)
    s = cfg.search

    def number(key: str) -> str:
        value = metrics.get(key)
        return f"{value:.6g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "unknown"

    budget_met = metrics.get("budget_met")
    tags = {"budget": f"{s.budget:g}", "budget_type": s.budget_type, "budget_metric": s.metric,
            "budget_absolute": number("budget"), "budget_met": str(budget_met).lower() if budget_met is not None
            else "unknown", "test_acc": number("test_acc"), "latency_measured_ms": number("latency_measured_ms"),
            "latency_ratio": number("latency_ratio"), "backend": cfg.profile.backend, "dataset": cfg.data.name,
            "dataset_digest": dataset_digest(paths), "git_commit": git_commit(), PIPELINE_TAG: run.pipeline or "",
            "netadapt.evaluate_run_id": run.run_id, **({DEVICE_TAG: paths.device} if paths.device else {})}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    over = "met" if budget_met else ("missed" if budget_met is not None else "not checked")
    budget = f"{s.budget * 100:g}% of the base network's" if s.budget_type == "relative" else f"{s.budget:g}"
    client.update_model_version(name, version, description=(
        f"{cfg.model.name} on {cfg.data.name}, searched by {s.algorithm} to {s.metric} ≤ {budget} "
        f"(budget {over}). Test accuracy {number('test_acc')}; latency {number('latency_measured_ms')} ms "
        f"measured on {cfg.profile.backend}{f' (device {paths.device})' if paths.device else ''}, "
        f"{number('latency_ratio')} × the base network's. "
        f"Dataset digest {tags['dataset_digest']}, git commit {tags['git_commit']}, pipeline {run.pipeline}."))


__all__ = ["StageRun", "stage_run", "log_stage", "pipeline_id", "pipeline_name", "model_name", "tracking_uri",
           "enabled", "candidates_table", "dataset_digest", "git_commit"]
