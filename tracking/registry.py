"""The model registry: finetune logs the final network and registers it as `netadapt-<dataset>-<model>`
(`-<device>` for a named device), its version tagged with the model file's digest; evaluate finds
that version by digest, tags it with what a reviewer asks of it and describes it."""

from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from netadapt.config import Config
from netadapt.io import content_digest
from netadapt.models.source import model_reference
from netadapt_tracking.contents import DEVICE_TAG, PIPELINE_TAG, dataset_digest

if TYPE_CHECKING:
    from netadapt_tracking.runs import StageRun

log = logging.getLogger("netadapt")

MODEL_DIGEST_TAG = "netadapt.model_digest"
PROJECT = Path(__file__).resolve().parents[1]  # the checkout this code runs from (its git commit)


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


def log_model(run: StageRun) -> None:
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
    model, arch = load_network(paths.final, model_reference(cfg.model))
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


def describe_model_version(run: StageRun, metrics: dict) -> None:
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
