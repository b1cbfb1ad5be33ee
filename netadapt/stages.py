"""Stage functions: one per pipeline stage, called by both front ends (the stage CLI that
`dvc.yaml` runs, and the Prefect task). Each reads its inputs from paths, writes its artifacts
atomically, writes `metrics/<stage>.json` and returns those metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from netadapt.config import Config
from netadapt.data import prepare_data
from netadapt.io import write_json


@dataclass(frozen=True)
class Paths:
    """Where stages read and write, relative to the project root (as in dvc.yaml)."""

    artifacts: Path = Path("artifacts")
    metrics: Path = Path("metrics")

    @property
    def prepared(self) -> Path:
        return self.artifacts / "prepared"

    def metrics_file(self, stage: str) -> Path:
        return self.metrics / f"{stage}.json"


def prepare(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int | str]:
    """Read the raw dataset, carve holdout (and test if needed), write prepared tensors."""
    start = time.perf_counter()
    info = prepare_data(cfg.data, cfg.seed, paths.prepared)
    metrics = {**info.counts, "classes": len(info.classes), "dataset": info.dataset,
               "seconds": round(time.perf_counter() - start, 3)}
    write_json(paths.metrics_file("prepare"), metrics)
    return metrics
