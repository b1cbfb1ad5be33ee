"""bench/tables.py's any-model table: rendered from the benchmark's JSON, or says it is not measured yet."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_docs import tables

SETUP = {"model": "resnet18", "width": 32, "granularity": 8, "train_per_class": 1500, "pretrain_epochs": 6,
         "finetune_epochs": 4, "supernet_epochs": 2, "budget": 0.5, "candidates": 8, "eval_batches": 8,
         "backend": "onnxruntime-cpu", "extra": []}
CONTEXT = {"backend": "onnxruntime-cpu", "onnxruntime_version": "1.32.0", "torch_version": "2.13.0+cpu", "threads": 1,
           "batch_size": 1, "cpu": "AMD EPYC"}


def cell(method: str, seed: int, acc: float | None) -> dict:
    where = {"provenance": {"git_commit": "0123456789abcdef", "dirty": False, "device": "cpu: 2 cores, 2 threads"}}
    return {"method": method, "seed": seed, **where, **({"test_acc": acc} if acc is not None else {"infeasible": "no"})}


def summary(method: str, accs: list[float], ratio: float) -> dict:
    return {"method": method, "seeds": list(range(len(accs))),
            "test_acc": {"values": accs, "mean": sum(accs) / len(accs), "std": 0.5, "ci95": None},
            "latency_ratio_mean": ratio, "latency_ratio_max": ratio + 0.01,
            "seconds_mean": {"pretrain": 0.0, "supernet": 100.0, "search": 50.0, "final": 25.0}}


def test_the_table_shows_accuracy_latency_and_the_paired_interval(tmp_path: Path) -> None:
    assert tables.any_model(tmp_path).startswith("*Not measured yet")
    entry = {"setup": SETUP, "kwargs": {"width": 32}, "lut": {"context": CONTEXT}, "torch_pruning": "1.6.1",
             "cells": {"netadapt_v2-s0": cell("netadapt_v2", 0, 0.6), "netadapt_v2-s1": cell("netadapt_v2", 1, 0.62),
                       "tp_global-s0": cell("tp_global", 0, 0.58), "tp_global-s1": cell("tp_global", 1, 0.59),
                       "tp_uniform-s0": cell("tp_uniform", 0, None)},
             "summary": {"netadapt_v2": summary("netadapt_v2", [60.0, 62.0], 0.49),
                         "tp_global": summary("tp_global", [58.0, 59.0], 0.5)},
             "paired": {"tp_global": {"seeds": [0, 1], "values": [2.0, 3.0], "mean": 2.5, "std": 0.71,
                                      "ci95": [-3.85, 8.85]}}}
    (tmp_path / "any_model.json").write_text(json.dumps({"models": {"resnet18": entry}}))
    text = tables.any_model(tmp_path)
    assert "resnet18 (width=32)" in text and "Torch-Pruning 1.6.1" in text and "(commits 0123456789)" in text
    assert "| resnet18 | NetAdaptV2 (MCD) | 61.00 ± 0.50 (60.00-62.00) | 2 | 0.490 (0.500) | - | 175 |" in text
    assert "| Torch-Pruning, global | 58.50 ± 0.50 (58.00-59.00) | 2 | 0.500 (0.510) | **+2.50** [-3.85, +8.85] " \
           "(+2.00, +3.00) | 175 |" in text
    assert "| resnet18 | Torch-Pruning, uniform | - | 0 (1 infeasible) | - | - | - |" in text
