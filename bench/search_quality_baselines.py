"""search_quality.py's cells that are not a search over the super-network: the uniform and random
networks, the plain base itself, and Torch-Pruning of it; plus what every cell records beside its
figures: counts that do not depend on the machine's load, and whether its training curve has plateaued
(`stats.plateau`)."""

from __future__ import annotations

import csv
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from netadapt.arch import Architecture
from netadapt.checkpoints import load_supernet
from netadapt.config import Config
from netadapt.data import load_split
from netadapt.data.prepared import load_info
from netadapt.finetune import train_network
from netadapt.models import extract
from netadapt.models.source import model_reference
from netadapt.resources.lookup_table import LatencyModel
from netadapt.resources.metric import profile_settings
from netadapt.training import accuracy

from stats import plateau_record  # bench/
from torch_pruning_baseline import prune_to_latency, structure

RANDOM_WINDOW = 0.97  # a random network's estimate lies in [RANDOM_WINDOW, 1] x budget
TP_STEPS = 6  # bisection steps below the first ratio of TP_RATIOS that meets the budget


class Infeasible(Exception):
    """The method cannot reach the budget (e.g. below the smallest network): recorded, not retried."""


def uniform_architecture(space: Architecture, latency: LatencyModel, budget: float) -> tuple[Architecture, dict]:
    """The widest uniform width multiplier meeting `budget` (ms); blocks removed evenly first when even
    the narrowest multiplier cannot."""
    blocks = [d.name for d in space.dims if d.bypassable]

    def at(multiplier: float, removed: int) -> Architecture:
        gone = {blocks[int(i)] for i in np.linspace(0, len(blocks) - 1, removed)} if removed else set()
        return space.with_widths({d.name: 0 if d.name in gone else
                                  max(d.narrowest_width, min(d.max_width, d.granularity * round(d.max_width * multiplier / d.granularity)))
                                  for d in space.dims})

    for removed in range(len(blocks) + 1):
        for multiplier in np.arange(1.0, 0.0, -0.005):
            arch = at(float(multiplier), removed)
            if latency.estimate(arch) <= budget:
                return arch, {"width_multiplier": round(float(multiplier), 3), "blocks_removed": removed}
    raise Infeasible(f"no uniform network meets {budget:.4f} ms")


def random_architecture(space: Architecture, latency: LatencyModel, budget: float, rng: random.Random) -> Architecture:
    """Random widths, then one grid step at a time on random dimensions until the estimate lies in
    [RANDOM_WINDOW, 1] x budget (or no dimension can grow without passing it)."""
    widths = {d.name: rng.choice(d.choices()) for d in space.dims}
    dims = {d.name: d for d in space.dims}

    def step(name: str, sign: int) -> int:
        choices = dims[name].choices()
        return choices[min(max(choices.index(widths[name]) + sign, 0), len(choices) - 1)]

    if latency.estimate(space.smallest()) > budget:
        raise Infeasible(f"the smallest network is over {budget:.4f} ms")
    estimate = latency.estimate(space.with_widths(widths))
    while estimate > budget:
        name = rng.choice([n for n in widths if widths[n] > dims[n].min_width])
        widths[name] = step(name, -1)
        estimate = latency.estimate(space.with_widths(widths))
    growable = [n for n in widths if widths[n] < dims[n].max_width]
    while estimate < RANDOM_WINDOW * budget and growable:
        name = rng.choice(growable)
        trial = {**widths, name: step(name, +1)}
        trial_estimate = latency.estimate(space.with_widths(trial))
        if trial_estimate <= budget:
            widths, estimate = trial, trial_estimate
            if widths[name] == dims[name].max_width:
                growable.remove(name)
        else:
            growable.remove(name)
    return space.with_widths(widths)


def curve(csv_path: Path, column: str) -> list[float]:
    """One column of a stage's per-epoch CSV (plots/finetune.csv: holdout_acc; plots/supernet.csv:
    holdout_acc_largest); empty when the stage trained no epoch."""
    if not csv_path.is_file():
        return []
    with open(csv_path, newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def counts(supernet_epochs: int, final_epochs: int, candidates_scored: int = 0, finetune_steps: int = 0) -> dict:
    """A cell's work as counts, comparable across machines and load (seconds are not)."""
    return {"supernet_epochs": supernet_epochs, "candidates_scored": candidates_scored,
            "finetune_steps": finetune_steps, "final_epochs": final_epochs}


def base_network(plain: Path, cfg: Config) -> torch.nn.Module:
    """The plainly trained base: the plain super-network's full network, with its weights."""
    model, _ = load_supernet(plain / "supernet.pt", model_reference(cfg.model))
    return extract(model, model.space())


def base_cell(cfg: Config, plain: Path, plain_seconds: float, plots: Path, data: Path, device: torch.device) -> dict:
    """The unpruned network of the seed, plainly trained for the super-network's epochs: its test
    accuracy (the table's base row) and whether its training plateaued."""
    supernet_model, _ = load_supernet(plain / "supernet.pt", model_reference(cfg.model))
    space = supernet_model.space()
    model = extract(supernet_model, space)
    test = load_split(data, "test")
    return {"test_acc": accuracy(model.to(device), test, 512, device)[1], "widths": space.widths,
            **plateau_record(curve(plots / "supernet.csv", "holdout_acc_largest")),
            "counts": counts(cfg.supernet.epochs, 0),
            "seconds": {"supernet": plain_seconds, "search": 0.0, "final": 0.0}}


def tp_cell(method: str, cfg: Config, plain: Path, plain_seconds: float, data: Path, budget: float,
            device: torch.device, steps: int = TP_STEPS, repeats: int = 100) -> dict:
    """Torch-Pruning (`tp_uniform` / `tp_global`) of the plainly trained base to `budget` of its
    measured latency (each ratio timed beside the base, on this machine's CPU backend), then the final
    training every method gets (`finetune.epochs`, same augmentation), scored on test."""
    base = base_network(plain, cfg)
    info = load_info(data)
    shape, classes = info.input_shape, len(info.classes)
    settings = replace(profile_settings(cfg.profile), warmup=10, network_repeats=repeats)
    start = time.perf_counter()
    pruned = prune_to_latency(base, budget, method == "tp_global", shape, cfg.model.granularity, settings,
                              cfg.seed, steps, classes)  # NoRatio: the caller records the cell infeasible
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    train, holdout = load_split(data, "train"), load_split(data, "holdout")
    torch.manual_seed(cfg.seed)
    history = train_network(pruned.model, train, holdout, cfg.finetune, cfg.seed, device)
    final_seconds = time.perf_counter() - start
    model = pruned.model
    test_acc = accuracy(model, load_split(data, "test"), 512, device)[1]
    model.cpu().eval()
    return {"test_acc": test_acc, "final_holdout_acc": history[-1].holdout_acc if history else 0.0,
            "pruning_ratio": pruned.ratio, "bisection": pruned.tries,
            "params": sum(p.numel() for p in model.parameters()), "structure": structure(model),
            **plateau_record([e.holdout_acc for e in history]),
            "counts": counts(cfg.supernet.epochs, cfg.finetune.epochs, candidates_scored=len(pruned.tries)),
            "seconds": {"supernet": plain_seconds, "search": round(search_seconds, 2),
                        "final": round(final_seconds, 2)}}
