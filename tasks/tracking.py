"""MLflow tracking for stage runs: one parent run per pipeline execution, one child run per stage.

Used by both front ends (the stage CLI that `dvc.yaml` runs, and the Prefect flow). After a stage
function returns, its child run gets the params of the sections the stage reads (flattened, as
`-S` spells them), its metrics, its per-epoch or per-iteration curves with `step`, and its
artifacts; the final model is logged with `mlflow.pytorch.log_model` and registered.

- Tracking URI: `MLFLOW_TRACKING_URI`, default a SQLite file in the project (`mlflow.db`).
- Pipeline id: `NETADAPT_PIPELINE_ID` when set (the flow sets it), else the `dvc repro` process
  that started the stage, else a new one: all stages of one `dvc repro` share a parent run.
- `NETADAPT_TRACKING=off` turns tracking off (tests that do not look at it).
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from netadapt.config import Config, flatten
from netadapt.stages import STAGE_PARAMS, Paths

PIPELINE_TAG, STAGE_TAG = "netadapt.pipeline_id", "netadapt.stage"


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
    return f"run-{uuid.uuid4().hex[:12]}"


def _params(cfg: Config, sections: list[str]) -> dict[str, Any]:
    flat = flatten(cfg)
    return {k: v for k, v in flat.items() if k.split(".")[0] in sections}


def _numbers(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def _parent(client, experiment_id: str, pid: str, cfg: Config) -> str:
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{pid}' "
                                                              f"and tags.`netadapt.role` = 'pipeline'",
                               max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"pipeline {pid}",
                            tags={PIPELINE_TAG: pid, "netadapt.role": "pipeline"})
    for key, value in flatten(cfg).items():
        client.log_param(run.info.run_id, key, value)
    return run.info.run_id


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


def _log_model(cfg: Config, paths: Paths) -> None:
    """Log (and register) the final network in MLflow's "pt2" format, servable on any batch size.

    "pt2" (`torch.export`) loads without unpickling code, unlike "pickle", which MLflow refuses to
    load unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is set. MLflow exports with `Dim.AUTO` on each
    `-1` of the input signature, and `torch.export` specializes a size-1 dimension to a constant: so
    the signature says batch `-1` and the example has a batch of 2 (a batch-1 example gives a model
    that only accepts batch 1).
    """
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from netadapt.finetune import load_network

    model, arch = load_network(paths.final)
    example = torch.zeros(2, *arch.model.input_shape)
    with torch.no_grad():
        output = model(example)
    # infer_signature marks axis 0 of numpy arrays as -1: input [-1, C, H, W] float32, output [-1, classes]
    signature = infer_signature(example.numpy(), output.numpy())
    name = f"netadapt-{cfg.data.name}-{arch.model.name}".replace(":", "-").replace("/", "-")
    mlflow.pytorch.log_model(model, name="model", input_example=example.numpy(), signature=signature,
                             serialization_format="pt2", pip_requirements=["torch==2.13.0"],
                             registered_model_name=name if cfg.tracking.register_model else None)


def log_stage(stage: str, cfg: Config, paths: Paths, metrics: dict) -> str | None:
    """Record a finished stage as a child run of its pipeline's parent run; returns its run id."""
    if not enabled():
        return None
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.set_experiment(cfg.tracking.experiment)
    client = MlflowClient()
    pid = pipeline_id()
    parent = _parent(client, experiment.experiment_id, pid, cfg)
    with mlflow.start_run(run_name=stage, parent_run_id=parent, tags={PIPELINE_TAG: pid, STAGE_TAG: stage}) as run:
        mlflow.log_params(_params(cfg, list(STAGE_PARAMS.get(stage, ()))))
        mlflow.log_metrics(_numbers(metrics))
        for step, values in _curves(stage, paths):
            mlflow.log_metrics(_numbers(values), step=step)
        for path, folder in _artifacts(stage, paths):
            mlflow.log_artifact(str(path), artifact_path=folder)
        if stage == "finetune":
            _log_model(cfg, paths)
        run_id = run.info.run_id
    client.set_terminated(parent)
    return run_id


__all__ = ["log_stage", "pipeline_id", "tracking_uri", "enabled"]
