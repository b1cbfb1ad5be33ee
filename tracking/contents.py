"""What a stage's run holds: its params, metrics (and per-step curves), text tags, artifacts, the
search's candidates table and the dataset it used; and what its parent run sums up over them."""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from netadapt.config import Config, flatten
from netadapt.history import read_history_csv
from netadapt.io import content_digest
from netadapt.layout import RESULT_METRICS, Paths
from netadapt.verdict import verdict_name, verdict_word

if TYPE_CHECKING:
    from netadapt_tracking.runs import StageRun

PIPELINE_TAG, STAGE_TAG, ROLE_TAG = "netadapt.pipeline_id", "netadapt.stage", "netadapt.role"
BUDGET_MET_TAG, VERDICT_TAG = "netadapt.budget_met", "netadapt.verdict"  # the parent's, set by evaluate
DEVICE_TAG = "netadapt.device"  # a named device's runs and model versions (`Config.devices`)
CANDIDATES_TABLE = "search/candidates.json"
DATASET_CONTEXT = {"supernet": "training", "finetune": "training", "evaluate": "testing"}
MAX_TAG = 5000  # MLflow's limit on a tag's value


def dataset_digest(paths: Paths) -> str:
    """Content digest of the prepared splits (`netadapt.io.content_digest`), cached by size and mtime."""
    files = sorted(p for p in paths.prepared.rglob("*") if p.is_file()) if paths.prepared.is_dir() else []
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _digest(str(paths.prepared.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _digest(folder: str, stamp: tuple) -> str:
    return content_digest([Path(folder)])


def section_params(cfg: Config, sections: list[str]) -> dict[str, Any]:
    """The flattened params (`data.name`, ...) of the config's `sections`."""
    flat = flatten(cfg)
    return {k: v for k, v in flat.items() if k.split(".")[0] in sections}


def numbers(metrics: dict) -> dict[str, float]:
    """Numeric metrics as floats; booleans as 1.0 / 0.0; non-finite values left out."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def log_params(client, run_id: str, params: dict[str, Any]) -> None:
    """Log `params` (values as strings) in batches of 100."""
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
        h = read_history_csv(paths.search / "history.csv")
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
    h = read_history_csv(paths.search / "history.csv")
    # object, not pandas 3's "str" dtype: MLflow's image check selects object columns and warns on str
    table = pd.DataFrame({"iteration": h.iteration.astype(int), "candidate": h.candidate.astype(int),
                          "widths": h.arch.astype(str).astype(object),
                          "resource_estimated": h.resource_estimated.astype(float),
                          "holdout_acc": h.holdout_acc.astype(float), "kept": h.kept.astype(bool)})
    for column in ("target", "seconds"):
        if column in h:
            table[column] = h[column].astype(float)
    return table


def log_contents(run: StageRun, metrics: dict) -> None:
    """What a finished stage returned and wrote: metrics (strings as tags), per-step curves,
    artifacts, the search's candidates table and the dataset it trained or tested on."""
    from mlflow.entities import RunTag

    client, rid, stage, paths = run.client, run.run_id, run.stage, run.paths
    _log_metrics(client, rid, numbers(metrics))
    texts = [RunTag(k, str(v)[:MAX_TAG]) for k, v in metrics.items() if isinstance(v, str)]
    if texts:  # e.g. backend, algorithm: tags, as MLflow metrics are numbers
        client.log_batch(rid, tags=texts)
    for step, values in _curves(stage, paths):
        _log_metrics(client, rid, numbers(values), step=step)
    for path, folder in _artifacts(stage, paths):
        client.log_artifact(rid, str(path), artifact_path=folder)
    if stage == "search" and (paths.search / "history.csv").is_file():
        client.log_table(rid, candidates_table(paths), CANDIDATES_TABLE)
    if stage in DATASET_CONTEXT and paths.prepared.is_dir():
        _log_dataset(run, DATASET_CONTEXT[stage])


def log_partial(run: StageRun) -> None:
    """What a failed stage wrote before failing (e.g. evaluate's metrics over budget, a stopped
    search's history): metrics and artifacts written since the run opened."""
    def fresh(path: Path) -> bool:
        return path.is_file() and path.stat().st_mtime >= run.started - 1

    report = run.paths.report(run.stage)  # every metric; `metrics/<stage>.json` holds the headline ones
    if fresh(report):
        _log_metrics(run.client, run.run_id, numbers(json.loads(report.read_text())))
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


def update_parent(run: StageRun, metrics: dict) -> None:
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
        values.update({prefix + k: v for k, v in numbers(metrics).items() if k in RESULT_METRICS})
        if not run.paths.device and isinstance(metrics.get("budget_met"), bool):
            _name_verdict(run, metrics["budget_met"])
    _log_metrics(run.client, run.parent_id, values)


def _name_verdict(run: StageRun, budget_met: bool) -> None:
    """The parent run renamed verdict first (`latency ≤ 40% · MISSED · ...`) and tagged
    `netadapt.budget_met` / `netadapt.verdict`, so the runs list alone tells which run met its budget."""
    from mlflow.entities import RunTag

    run.client.update_run(run.parent_id, name=verdict_name(run.cfg, budget_met, run.pipeline or ""))
    run.client.log_batch(run.parent_id, tags=[RunTag(BUDGET_MET_TAG, str(budget_met).lower()),
                                              RunTag(VERDICT_TAG, verdict_word(budget_met))])
