"""bench/rank_correlation.py: its rank statistics (against pandas'), its summary over seeds, the table
`bench/tables.py` renders from its JSON, and a smoke run end to end on a tiny dataset."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.presets import separable_data
from tests.test_docs import tables

sys.path.append(str(REPO / "bench"))  # the script imports its neighbours (data_folder, search_quality)
spec = importlib.util.spec_from_file_location("bench_rank_correlation", REPO / "bench" / "rank_correlation.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # its dataclasses look their module up
spec.loader.exec_module(bench)


def test_spearman_and_kendall_agree_with_pandas_with_and_without_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)  # x has ties
        y[:3] = y[3]  # and y too
        frame = pd.DataFrame({"x": x, "y": y})
        assert bench.spearman(x, y) == pytest.approx(frame.x.corr(frame.y, method="spearman"))
        assert bench.kendall(x, y) == pytest.approx(frame.x.corr(frame.y, method="kendall"))
    assert np.isnan(bench.spearman(np.ones(4), np.arange(4.0))) and np.isnan(bench.kendall(np.ones(4), np.arange(4.0)))


def _seed(seed: int, n: int = 8) -> dict:
    """Candidates whose train-calibrated score orders them as fine-tuning does, and whose
    holdout-calibrated score orders them the other way round."""
    truth = np.linspace(0.80, 0.90, n)
    rows = [{"candidate": j, "score_train": 0.5 + truth[j] / 10, "score_holdout": 0.9 - truth[j] / 10,
             "finetuned_test": truth[j], "finetuned_holdout": truth[j] + 0.01} for j in range(n)]
    return {"seed": seed, "ran_on": "cpu: 2 cores, 2 threads", "torch": "2.13.0+cpu", "commit": "0123456789abcdef",
            "dirty": False, "candidates": rows}


def test_the_summary_gives_each_scoring_its_correlation_interval_and_regret():
    seeds = [_seed(0), _seed(1)]
    summary = bench.summarize(seeds, 30, np.random.default_rng(0))
    assert summary["spearman_train_test"]["per_seed"] == [pytest.approx(1.0)] * 2
    assert summary["kendall_holdout_holdout"]["mean"] == pytest.approx(-1.0)
    assert summary["spearman_diff_test"]["mean"] == pytest.approx(2.0)
    low, high = summary["spearman_diff_test"]["ci95"]
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0), "every resample keeps both orders"
    assert summary["regret_train"]["mean"] == 0.0 and summary["regret_holdout"]["mean"] == pytest.approx(10.0)
    assert summary["score_holdout_minus_train_points"]["per_seed"][0] == pytest.approx(
        100 * np.mean([r["score_holdout"] - r["score_train"] for r in seeds[0]["candidates"]]))


def test_the_table_renders_the_json_or_says_it_is_not_measured(tmp_path: Path):
    assert tables.rank_correlation(tmp_path).startswith("*Not measured yet")
    seeds = [_seed(0), _seed(1), _seed(2)]
    result = {"setup": asdict(bench.Setup()),
              "data": {"dataset": "fashion-mnist", "train": 5000, "holdout": 6000, "test": 10000},
              "supernet": {"epochs": 2, "seconds": 100.0, "holdout_acc_largest": 0.85, "holdout_acc_smallest": 0.7},
              "finetune": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 4e-5},
              "bootstrap": 30, "seeds": seeds, "summary": bench.summarize(seeds, 30, np.random.default_rng(0))}
    (tmp_path / "rank_correlation.json").write_text(json.dumps(result))
    text = tables.rank_correlation(tmp_path)
    lines = text.splitlines()
    assert "J = 12 candidates" in lines[0] and "seeds 0, 1, 2" in lines[0] and "commit 0123456789" in lines[0]
    assert "| test | Spearman | **-1.00** [-1.00, -1.00] (-1.00, -1.00, -1.00) | **+1.00** [+1.00, +1.00] " \
           "(+1.00, +1.00, +1.00) | **+2.00** [+2.00, +2.00] (+2.00, +2.00, +2.00) |" in lines
    assert lines[-1].startswith("| test | points the top-scored candidate trails the best | **+10.00** (+10.00, ")


@pytest.mark.slow
def test_a_smoke_run_writes_both_scores_and_the_fine_tuned_accuracies_of_each_candidate(tmp_path: Path):
    separable_data(tmp_path / "data" / "fashion-mnist", train=300, test=100)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "rank_correlation.py"), "--data", str(tmp_path / "data"),
                           "--smoke", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "rc.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].startswith("rank_correlation_train_minus_holdout=")
    result = json.loads((tmp_path / "rc.json").read_text())
    (seed,) = result["seeds"]
    assert len(seed["candidates"]) == 3 and seed["provenance"]["git_commit"] and isinstance(seed["provenance"]["dirty"], bool)
    assert {"score_holdout", "score_train", "finetuned_test", "finetuned_holdout", "widths"} <= set(seed["candidates"][0])
    assert (tmp_path / "rc.png").is_file()


def test_without_a_data_folder_it_stops_naming_both_ways_to_give_it(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "rank_correlation.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "give --data DIR or set NETADAPT_DATA" in done.stderr, done.stderr
