"""The model registry: finetune logs the final network as a pyfunc model that scores images as users
hold them (uint8 or float pixels in [0, 255], the training normalization inside: `scoring.py`) and
registers it as `netadapt-<dataset>-<model>` (`-<device>` for a named device), its version tagged
with the model file's digest; evaluate finds that version by digest, tags it with what a reviewer
asks of it, describes it, and points the budget's alias (`best-b050`) at it when it is the best
budget-met version for that budget."""

from __future__ import annotations

import functools
import json
import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from netadapt.config import Config
from netadapt.io import content_digest
from netadapt.layout import Paths
from netadapt.models.source import model_reference
from netadapt.verdict import verdict_name
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


SCORING_CODE = Path(__file__).with_name("scoring.py")  # the pyfunc model's code (MLflow "models from code")


def input_description(paths: Paths, shape: tuple[int, int, int]) -> dict:
    """What the registered model eats: images of `shape` (the network's C, H, W) under the training
    normalization of the prepared data (`meta.json`'s `mean` / `std`; empty: 0.5, i.e. [-1, 1])."""
    from netadapt.data.prepared import load_info

    info = load_info(paths.prepared) if (paths.prepared / "meta.json").is_file() else None
    return {"shape": [int(n) for n in shape], "mean": info.mean if info else [], "std": info.std if info else [],
            "classes": info.classes if info else []}


def input_text(spec: dict) -> str:
    """The registered model's input, in words (its description and MLmodel metadata)."""
    c, h, w = spec["shape"]
    mean, std = spec["mean"] or [0.5], spec["std"] or [0.5]
    return (f"Input: images with pixel values in [0, 255], uint8 or float, shape [N, {c}, {h}, {w}] (NCHW) or "
            f"[N, {h}, {w}, {c}] (NHWC); the model applies the training normalization (x / 255 - mean) / std "
            f"itself (mean {mean}, std {std}). Output: float32 logits [N, classes]; argmax is the class.")


def _exported(network, spec: dict, path: Path) -> None:
    """`network` behind the training normalization, exported (`torch.export`, batch size free) to `path`."""
    import torch

    from netadapt.data.view import InputView

    class Normalized(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network, self.view = network, InputView(tuple(spec["mean"]), tuple(spec["std"]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: float32 [N, C, H, W] in [0, 255]
            return self.network(self.view.normalize(x.clone()))

    # torch.export specializes a size-1 dimension to a constant: a batch of 2 keeps the batch free
    example = torch.zeros(2, *spec["shape"])
    program = torch.export.export(Normalized().eval(), (example,),
                                  dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, str(path))


def log_model(run: StageRun) -> None:
    """Log (and register) the final network as a pyfunc model that scores images as users hold them
    (`scoring.py`): uint8 or float pixels in [0, 255], NCHW or NHWC, the training normalization
    applied inside, by the exported network (`torch.export`: loads without unpickling code).

    The signature declares the output (float32 logits [-1, classes]) and leaves the input open, as
    MLflow's signature holds one dtype and one layout and refuses the others before the model sees
    them; the input is documented in the version's description and the model's metadata, and the
    input example is a uint8 batch. The registered version is tagged with the model file's digest (so
    evaluate finds it), the pipeline, the dataset digest and the git commit.
    """
    import tempfile

    import mlflow
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec

    from netadapt.checkpoints import load_network

    cfg, paths = run.cfg, run.paths
    model, arch = load_network(paths.final, model_reference(cfg.model))
    spec = input_description(paths, arch.model.input_shape)
    name = model_name(cfg, paths.device)
    signature = ModelSignature(outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, arch.model.num_classes))]))
    with tempfile.TemporaryDirectory() as tmp:
        _exported(model.eval(), spec, Path(tmp) / "network.pt2")
        (Path(tmp) / "input.json").write_text(json.dumps(spec))
        info = Model.log(None,  # `mlflow.pyfunc.log_model` takes no run_id, and the stage's run is not active
            name="model", flavor=mlflow.pyfunc, python_model=str(SCORING_CODE), signature=signature,
            artifacts={"network": str(Path(tmp) / "network.pt2"), "input": str(Path(tmp) / "input.json")},
            input_example=np.zeros((2, *spec["shape"]), dtype=np.uint8), metadata={"input": input_text(spec)},
            pip_requirements=["torch==2.13.0", f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"],
            registered_model_name=name if cfg.tracking.register_model else None, run_id=run.run_id)
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
        f"{run.pipeline}. {input_text(spec)} Not evaluated yet: the evaluate stage adds test accuracy and "
        f"measured latency."))


def budget_alias(cfg: Config) -> str:
    """The alias of the best budget-met version for this budget: `best-b050` for a relative latency
    budget of 0.5 (`best-macs-b050` for MACs), `best-latency-3p5ms` for an absolute 3.5 ms."""
    s = cfg.search
    if s.budget_type == "relative":
        whole, _, fraction = f"{s.budget * 100:g}".partition(".")
        value = "b" + whole.zfill(3) + (f"p{fraction}" if fraction else "")
        label = value if s.metric == "latency" else f"{s.metric}-{value}"
    else:
        unit = {"latency": "ms"}.get(s.metric, "")
        label = f"{s.metric}-{s.budget:g}{unit}".replace(".", "p").replace("+", "")
    return f"best-{label}"


def _point_alias(client, name: str, version: str, cfg: Config, test_acc: float | None) -> str | None:
    """Point this budget's alias at `version` unless the version it points at scored a higher test
    accuracy; returns the alias when it now points here. `test_acc` None (the budget missed): the
    alias leaves `version` if it pointed there (a re-evaluation found it over), else stays."""
    alias = budget_alias(cfg)
    try:
        current = client.get_model_version_by_alias(name, alias)
    except Exception:  # noqa: BLE001 - MLflow raises when the alias is not set yet
        current = None
    here = current is not None and str(current.version) == version
    if test_acc is None:
        if here:
            client.delete_registered_model_alias(name, alias)
        return None
    if current is not None and not here:
        try:
            if float(current.tags.get("test_acc", "nan")) > test_acc:
                return None
        except ValueError:
            pass
    client.set_registered_model_alias(name, alias, version)
    return alias


def describe_model_version(run: StageRun, metrics: dict) -> None:
    """Tag the registered version of the evaluated model (found by its file's digest) with what a
    reviewer asks of it, and describe it."""
    from netadapt.checkpoints import load_network

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
    test_acc = metrics.get("test_acc")
    met = budget_met is True and isinstance(test_acc, (int, float))
    alias = _point_alias(client, name, version, cfg, float(test_acc) if met else None)
    aliased = f" Alias @{alias}: the best budget-met version for this budget." if alias else ""
    spec = input_description(paths, load_network(paths.final, model_reference(cfg.model))[1].model.input_shape)
    client.update_model_version(name, version, description=(
        f"{verdict_name(cfg, budget_met)}. {cfg.model.name} on {cfg.data.name}, searched by {s.algorithm} to "
        f"{s.metric} ≤ {budget} (budget {over}). Test accuracy {number('test_acc')}; latency "
        f"{number('latency_measured_ms')} ms measured on {cfg.profile.backend}"
        f"{f' (device {paths.device})' if paths.device else ''}, {number('latency_ratio')} × the base network's."
        f"{aliased} {input_text(spec)} "
        f"Dataset digest {tags['dataset_digest']}, git commit {tags['git_commit']}, pipeline {run.pipeline}."))
