"""bench/search_quality.py's summary: the headline figures stored in the results JSON (base accuracy,
V2 minus the strongest other method with its interval, V1-reference / V2 total time), printed as the
last two lines, and the converged tables (accuracy with intervals; the time table from counts) rendered
by bench/tables.py. Pure functions on made-up cells: no training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_docs import tables

sys.path.insert(0, str(REPO / "bench"))
import search_quality_summary as summary_module  # noqa: E402  (bench/)

ACC = {"base": [0.92, 0.93, 0.925], "netadapt_v2": [0.90, 0.91, 0.905], "uniform": [0.88, 0.885, 0.89],
       "tp_global": [0.895, 0.90, 0.89], "netadapt_v1_reference": [0.902, 0.90, 0.90]}
SECONDS = {"base": (300.0, 0.0, 0.0), "netadapt_v2": (600.0, 50.0, 100.0), "uniform": (600.0, 0.0, 100.0),
           "tp_global": (300.0, 20.0, 100.0), "netadapt_v1_reference": (300.0, 2800.0, 100.0)}
COUNTS = {"base": (100, 0, 0, 0), "netadapt_v2": (100, 96, 0, 30), "uniform": (100, 0, 0, 30),
          "tp_global": (100, 9, 0, 30), "netadapt_v1_reference": (100, 400, 200000, 30)}


def made_up_cells() -> dict:
    cells = {"_setup": {}}
    for method, accs in ACC.items():
        for seed, acc in enumerate(accs):
            budget = 1.0 if method == "base" else 0.5
            key = f"base-s{seed}" if method == "base" else f"{method}-b0.5-s{seed}"
            cells[key] = {"method": method, "budget": budget, "seed": seed, "test_acc": acc, "plateaued": seed != 2,
                          "seconds": dict(zip(("supernet", "search", "final"), SECONDS[method])),
                          "counts": dict(zip(summary_module.COUNTS, COUNTS[method])),
                          "provenance": {"git_commit": "c" * 40, "dirty": False, "device": "cuda: NVIDIA H100"}}
    cells["uniform-b0.35-s0"] = {"method": "uniform", "budget": 0.35, "seed": 0, "infeasible": "no"}
    return cells


def results_entry() -> dict:
    cells = made_up_cells()
    latency = {"base": 1.0, **{k: 0.5 for k in summary_module.finished(cells) if not k.startswith("base")},
               **{f"base-s{s}": 1.0 for s in range(3)}}
    summary = summary_module.summarize(cells, latency)
    setup = {"dataset": "cifar10", "train_per_class": 0, "model": "mobilenet_v2", "backend": "onnxruntime-cpu",
             "supernet_epochs": 100, "final_epochs": 30, "candidates": 8, "eval_batches": 0, "augment": True}
    return {"setup": setup, "summary": summary, "paired": summary_module.paired_table(cells),
            "headline": summary_module.headline(cells, summary),
            "cells": {k: v for k, v in cells.items() if not k.startswith("_")}}


def test_the_headline_figures_are_in_the_results_and_printed_last() -> None:
    h = results_entry()["headline"]
    assert set(h) == {"base_test_acc", "v2_minus_best_baseline_pts", "v1_over_v2_total_time"}
    assert h["base_test_acc"]["mean"] == pytest.approx(92.5)
    best = h["v2_minus_best_baseline_pts"]
    assert best["vs"] == "netadapt_v1_reference" and best["budget"] == 0.5  # the strongest non-V2 method, not the base
    assert best["values"] == pytest.approx([-0.2, 1.0, 0.5]) and best["ci95"][0] < best["mean"] < best["ci95"][1]
    assert h["v1_over_v2_total_time"]["ratio"] == pytest.approx(3200 / 750)
    assert summary_module.headline_lines(h) == ["v1_over_v2_total_time=4.27", "v2_minus_best_baseline_pts=0.43"]
    empty = summary_module.headline({}, {})
    assert summary_module.headline_lines(empty) == ["v1_over_v2_total_time=nan", "v2_minus_best_baseline_pts=nan"]


def test_the_summary_counts_plateaued_cells_and_averages_the_counts() -> None:
    s = results_entry()["summary"]["netadapt_v2@0.5"]
    assert s["plateaued"] == 2 and s["counts_mean"] == {"supernet_epochs": 100, "candidates_scored": 96,
                                                          "finetune_steps": 0, "final_epochs": 30}


def test_the_converged_tables_render_from_the_results(tmp_path: Path) -> None:
    assert tables.search_quality_time(tmp_path).startswith("*Not measured yet")
    (tmp_path / tables.CONVERGED).write_text(json.dumps({"datasets": {"cifar10": results_entry()}}))
    time_table = tables.search_quality_time(tmp_path)
    assert "| 0.5 | NetAdapt (V1), reference preset | 300 | 100 | 2800 | 400 | 200000 | 100 | 30 | 3200 |" in time_table
    assert "| 1 | plain base (unpruned) | 300 | 100 | 0 | 0 | 0 | 0 | 0 | 300 |" in time_table
    accuracy = tables.search_quality_converged(tmp_path)
    assert "| 0.5 | uniform width multiplier | 88.50 ± 0.50 | 3 | 2/3 | 0.500 (0.500) | **+2.00** [" in accuracy
    assert "Base test accuracy 92.50 [" in accuracy and "cuda: NVIDIA H100" in accuracy
