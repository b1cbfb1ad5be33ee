"""`plots/tradeoff.png` (evaluate's figure): one quantity per axis. The search panel is estimated
resource vs holdout accuracy; the result panel is measured latency vs test accuracy, where the
base network and a latency budget appear on the measured scale only."""

from __future__ import annotations

from pathlib import Path

import pytest

from netadapt import plots
from tests.netadapt.test_plots import HISTORY
EVALUATE = {"test_acc": 0.76, "latency_measured_ms": 1.96, "latency_estimated_ms": 1.62,
            "base_latency_measured_ms": 2.94, "base_latency_estimated_ms": 2.43, "backend": "torch-cpu"}
SEARCH = {"budget": 1.66, "unit": "ms", "metric": "latency"}


def draw(monkeypatch, tmp_path: Path, final: dict, search: dict | None):
    """The figure plot_tradeoff builds (and its PNG)."""
    figures = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figures.append(fig), save(fig, path)))
    path = tmp_path / "tradeoff.png"
    plots.plot_tradeoff(HISTORY, final, path, *([search] if search is not None else []))  # evaluate's 3-arg call too
    assert path.stat().st_size > 10_000
    (figure,) = figures
    return figure.axes


def xs(ax) -> set[float]:
    """Every x position an axis draws: lines (and vertical lines) and scatter points."""
    found = {round(float(x), 4) for line in ax.get_lines() for x in line.get_xdata()}
    return found | {round(float(x), 4) for coll in ax.collections for x, _ in coll.get_offsets()}


def test_estimates_left_measurements_right(monkeypatch, tmp_path: Path):
    final = {**EVALUATE, "budget_metric": "latency", "budget": 2.06, "budget_met": True,
             "measured_over_budget": 0.95}
    search_ax, result_ax = draw(monkeypatch, tmp_path, final, SEARCH)
    assert "estimated" in search_ax.get_xlabel() and "holdout" in search_ax.get_ylabel()
    assert "measured" in result_ax.get_xlabel() and "test" in result_ax.get_ylabel()
    assert {2.43, 2.05, 1.62, 1.66} <= xs(search_ax), "candidates, kept path, estimated budget"
    assert 2.94 not in xs(search_ax) and 1.96 not in xs(search_ax), "no measurement on the estimated axis"
    assert {1.96, 2.94, 2.06} <= xs(result_ax), "final, base and budget, measured"
    assert not {2.43, 1.62, 1.66} & xs(result_ax), "no estimate on the measured axis"
    assert "within the latency budget" in result_ax.get_title()


@pytest.mark.parametrize("final", [
    {**EVALUATE},  # evaluate's metrics before the budget check
    {**EVALUATE, "budget_metric": "macs", "budget": 1.66, "budget_met": False, "measured_over_budget": 1.1,
     "base_test_acc": 0.81},
])
def test_works_without_the_search_metadata(monkeypatch, tmp_path: Path, final):
    search_ax, result_ax = draw(monkeypatch, tmp_path, final, None)
    assert (1.66 in xs(search_ax)) == (final.get("budget_metric") == "macs"), "a MACs budget is exact"
    assert 2.06 not in xs(result_ax) and 1.66 not in xs(result_ax), "no latency budget unless it is one"
    assert {1.96, 2.94} <= xs(result_ax)
