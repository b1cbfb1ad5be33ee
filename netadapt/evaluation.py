"""Sub-network evaluation with super-network weights and no fine-tuning.

The sub-network is extracted (physically slim, so it runs at its own cost), optionally has its
batch-norm statistics re-estimated on a few batches (shared statistics were accumulated over many
widths), then is scored. The super-network itself is never modified.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.eta import progress_bar
from netadapt.checkpoints import load_supernet
from netadapt.config import Config, to_dict
from netadapt.data import Split, load_split
from netadapt.io import code_version, content_digest
from netadapt.layout import Paths
from netadapt.models import extract
from netadapt.models.source import model_reference
from netadapt.training import accuracy, batches, resolve_device


@torch.no_grad()
def recalibrate_bn(model: nn.Module, split: Split, num_batches: int, batch_size: int,
                   device: torch.device) -> None:
    """Replace running BN statistics with their average over the first `num_batches` batches of
    `split` (in its fixed class-mixed order), each batch weighted by its number of samples."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if num_batches <= 0 or not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
    model.train()
    seen = 0
    for inputs, _ in batches(split, batch_size, None, device, num_batches):
        seen += len(inputs)
        for m in norms:  # running = running + (n_k / seen) * (batch - running): a sample-weighted mean
            m.momentum = len(inputs) / seen
        model(inputs)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def evaluate_subnet(supernet: nn.Module, arch: Architecture, holdout: Split, *, batch_size: int = 256,
                    bn_recalibration_batches: int = 0, eval_batches: int = 0,
                    device: torch.device = torch.device("cpu"), calibration: Split | None = None) -> float:
    """Holdout top-1 accuracy of `arch` with the super-network's weights.

    BN statistics are re-estimated on `bn_recalibration_batches` batches of `calibration` (default:
    the holdout itself) when > 0; `eval_batches` > 0 scores on that many batches only.
    """
    model = extract(supernet, arch).to(device)
    recalibrate_bn(model, calibration if calibration is not None else holdout, bn_recalibration_batches,
                   batch_size, device)
    return accuracy(model, holdout, batch_size, device, limit=eval_batches)[1]


@functools.lru_cache(maxsize=4)
def _supernet(path: str, mtime: float, model_name: str) -> nn.Module:
    return load_supernet(Path(path), model_name)[0]


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@functools.lru_cache(maxsize=4)
def _split(prepared: str, name: str, mtime: float) -> Split:
    return load_split(Path(prepared), name)


def evaluate_candidate(arch_json: str, *, supernet_path: str, prepared_path: str, bn_recalibration_batches: int,
                       batch_size: int, eval_batches: int = 0, device: str = "cpu",
                       model_name: str = "") -> tuple[float, float]:
    """Holdout accuracy and seconds of one candidate, from paths alone (so callers can map it over
    workers); the super-network and splits are loaded once per process and never modified. BN
    statistics are re-estimated on train batches (a fixed class-mixed order): the holdout that ranks
    candidates is only scored, never seen by the statistics.
    `model_name`: the run's `model.name`, the only non-built-in model the checkpoint may name."""
    start = time.perf_counter()
    supernet = _supernet(supernet_path, Path(supernet_path).stat().st_mtime, model_name)
    holdout, train = (_split(prepared_path, name, _mtime(Path(prepared_path) / f"{name}.pt"))
                      for name in ("holdout", "train"))
    acc = evaluate_subnet(supernet, Architecture.from_json(arch_json), holdout, batch_size=batch_size,
                          bn_recalibration_batches=bn_recalibration_batches, eval_batches=eval_batches,
                          device=torch.device(device), calibration=train)
    return acc, time.perf_counter() - start


def search_identity(cfg: Config, paths: Paths) -> str:
    """What a search history depends on besides the budget: super-network, holdout, table, settings,
    seed, and what computes the scores: the library's and the model's code, torch's version and the device."""
    inputs = [paths.supernet, paths.prepared / "holdout.pt", paths.prepared / "train.pt"] + ([paths.lut] if cfg.search.metric == "latency" else [])
    settings = {k: v for k, v in to_dict(cfg.search).items() if k not in ("budget", "budget_type")}
    scorer = [code_version(cfg.model.name, cfg.model.path), torch.__version__, str(resolve_device(cfg.supernet.device))]
    payload = [content_digest(inputs), settings, cfg.seed, scorer]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def candidate_settings(cfg: Config, paths: Paths) -> dict:
    """Keyword arguments of `evaluation.evaluate_candidate` for this config (paths, BN, batches, device,
    the model name the super-network checkpoint may name)."""
    s = cfg.search
    return dict(supernet_path=str(paths.supernet), prepared_path=str(paths.prepared),
                bn_recalibration_batches=s.bn_recalibration_batches, batch_size=s.batch_size,
                eval_batches=s.eval_batches, device=str(resolve_device(cfg.supernet.device)),
                model_name=model_reference(cfg.model))


def score_here(settings: dict, arch_jsons: list[str]) -> list[tuple[float, float]]:
    """Score candidates one after the other in this process (`candidate_settings`)."""
    return [evaluate_candidate(j, **settings)
            for j in progress_bar(arch_jsons, total=len(arch_jsons), desc="search candidates", unit="candidates")]
