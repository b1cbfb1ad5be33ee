"""Stage functions: one per pipeline stage, called by both front ends (the stage CLI that
`dvc.yaml` runs, and the Prefect task). Each reads its inputs from paths, writes its artifacts
atomically, writes `metrics/<stage>.json` and returns those metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from netadapt.arch import ModelSpec
from netadapt.config import Config
from netadapt.data import load_info, load_split, prepare_data
from netadapt.io import atomic_path, write_json
from netadapt.models import build_supernet
from netadapt.resources.profiling import ProfileSettings, plot_fidelity, profile_space
from netadapt.supernet import history_rows, save_supernet, train_supernet
from netadapt.training import resolve_device


@dataclass(frozen=True)
class Paths:
    """Where stages read and write, relative to the project root (as in dvc.yaml)."""

    artifacts: Path = Path("artifacts")
    metrics: Path = Path("metrics")
    plots: Path = Path("plots")

    @property
    def prepared(self) -> Path:
        return self.artifacts / "prepared"

    @property
    def lut(self) -> Path:
        return self.artifacts / "profile" / "lut.csv"

    @property
    def supernet(self) -> Path:
        return self.artifacts / "supernet" / "supernet.pt"

    def metrics_file(self, stage: str) -> Path:
        return self.metrics / f"{stage}.json"


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def prepare(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int | str]:
    """Read the raw dataset, carve holdout (and test if needed), write prepared tensors."""
    start = time.perf_counter()
    info = prepare_data(cfg.data, cfg.seed, paths.prepared)
    metrics = {**info.counts, "classes": len(info.classes), "dataset": info.dataset,
               "seconds": round(time.perf_counter() - start, 3)}
    write_json(paths.metrics_file("prepare"), metrics)
    return metrics


def model_spec(cfg: Config, prepared: Path) -> ModelSpec:
    """The super-network's spec: the model section plus the prepared data's shape and classes."""
    info = load_info(prepared)
    return ModelSpec(cfg.model.name, info.input_shape, len(info.classes), cfg.model.width_mult,
                     cfg.model.granularity)


def supernet(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int]:
    """Train the super-network with ordered dropout; checkpoint, training curve, metrics."""
    start = time.perf_counter()
    spec = model_spec(cfg, paths.prepared)
    train, holdout = load_split(paths.prepared, "train"), load_split(paths.prepared, "holdout")
    device = resolve_device(cfg.supernet.device)
    torch.manual_seed(cfg.seed)
    model = build_supernet(spec)
    history = train_supernet(model, train, holdout, cfg.supernet, cfg.seed, device)
    save_supernet(paths.supernet, model, cfg.section_digest("seed", "model", "supernet"))
    write_csv(paths.plots / "supernet.csv", history_rows(history))
    last = history[-1] if history else None
    metrics = {"epochs": cfg.supernet.epochs, "seconds": round(time.perf_counter() - start, 3),
               "holdout_acc_largest": last.holdout_acc_largest if last else 0.0,
               "holdout_acc_smallest": last.holdout_acc_smallest if last else 0.0,
               "loss": last.loss if last else 0.0, "dimensions": len(model.space().dims)}
    write_json(paths.metrics_file("supernet"), metrics)
    return metrics


def profile_settings(cfg: Config) -> ProfileSettings:
    p = cfg.profile
    return ProfileSettings(p.backend, p.threads, p.batch_size, p.warmup, p.repeats, p.network_repeats)


def profile(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int | str]:
    """Measure the latency lookup table on the target backend, calibrate it, check its fidelity."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build_supernet(model_spec(cfg, paths.prepared)).eval()  # latency does not depend on weights
    result = profile_space(model, profile_settings(cfg), cfg.profile.fidelity_samples, cfg.seed,
                           cfg.profile.interpolate)
    table, check = result.table, result.fidelity
    table.save(paths.lut)
    write_csv(paths.plots / "fidelity.csv", check.to_dict("records"))
    plot_fidelity(check, paths.plots / "fidelity.png",
                  f"{model.spec.name} on {cfg.profile.backend}: lookup table vs measured")
    base = check[check.network == "base"].iloc[0]
    metrics = {"backend": cfg.profile.backend, "entries": len(table),
               "seconds": round(time.perf_counter() - start, 3), "constant_ms": table.constant_ms,
               "unit_offset_ms": table.unit_offset_ms,
               "base_latency_measured_ms": float(base.measured_ms),
               "base_latency_estimated_ms": float(base.estimated_ms),
               "lut_mean_abs_error": float(check.rel_error.mean()),
               "lut_max_abs_error": float(check.rel_error.max()), "fidelity_networks": len(check)}
    write_json(paths.metrics_file("profile"), metrics)
    return metrics
