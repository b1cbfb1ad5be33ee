"""The PNG figures read as drawn: every title inside the figure (as matplotlib's renderer measures
it), every resource axis growing to the right as the Vega search chart's does, an axis label that
names its unit, and the trade-off's result panel with the base network beside the final one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg

from netadapt import plots

ROOT = Path(__file__).resolve().parents[2]
HISTORY = pd.DataFrame({
    "iteration": [-1, 0, 0, 1, 1],
    "candidate": [0, 0, 1, 0, 1],
    "resource_estimated": [2.43, 2.10, 2.05, 1.70, 1.62],
    "holdout_acc": [0.80, 0.74, 0.78, 0.71, 0.75],
    "kept": [True, False, True, False, True],
})
FIDELITY = pd.DataFrame({"network": ["base", "smallest", "r0", "r1", "r2", "r3"],
                         "measured_ms": [2.9, 0.8, 1.2, 1.9, 1.4, 2.2], "estimated_ms": [2.8, 0.9, 1.1, 2.0, 1.5, 2.1],
                         "in_fit": [1, 1, 1, 0, 1, 0]})
FINAL = {"test_acc": 0.76, "latency_measured_ms": 1.96, "latency_estimated_ms": 1.62, "base_latency_measured_ms": 2.94,
         "base_test_acc": 0.81, "backend": "onnxruntime-cpu", "budget_metric": "latency", "budget": 1.9,
         "budget_met": True, "measured_over_budget": 1.0316}
# A user's model named by its module path, on a named device: the title that used to run off the figure.
LONG = "my_company.vision.backbones:EfficientMobileResidualNetwork on onnxruntime-cpu (phone): lookup table vs measured"


def draw(monkeypatch, tmp_path: Path, kind: str):
    """The figure one of the plot functions builds, laid out as saved."""
    figures = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figures.append(fig), save(fig, path)))
    path = tmp_path / f"{kind}.png"
    if kind == "fidelity":
        plots.plot_fidelity(FIDELITY, path, LONG)
    elif kind == "search":
        plots.plot_trajectory(HISTORY, 1.66, "ms", path, 1.6)
    else:
        plots.plot_tradeoff(HISTORY, FINAL, path, {"budget": 1.66, "unit": "ms", "metric": "latency"})
    assert path.stat().st_size > 10_000
    (figure,) = figures
    FigureCanvasAgg(figure).draw()  # (closed by the plot function: a canvas of its own again)
    return figure


@pytest.mark.parametrize("kind", ["fidelity", "search", "tradeoff"])
def test_every_title_lies_inside_its_figure(monkeypatch, tmp_path: Path, kind):
    figure = draw(monkeypatch, tmp_path, kind)
    renderer = figure.canvas.get_renderer()
    frame = figure.bbox
    for ax in figure.axes:
        title = ax.title
        if not title.get_text():
            continue
        box = title.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1, (kind, title.get_text(), box, frame)


def test_a_long_title_keeps_every_word(monkeypatch, tmp_path: Path):
    title = draw(monkeypatch, tmp_path, "fidelity").axes[0].get_title()
    assert "\n" in title and title.split() == LONG.split(), "wrapped, not cut"


@pytest.mark.parametrize("kind", ["fidelity", "search", "tradeoff"])
def test_every_resource_axis_grows_to_the_right(monkeypatch, tmp_path: Path, kind):
    """As in the Vega search chart (DVC's linear template: an ascending x), in every PNG."""
    figure = draw(monkeypatch, tmp_path, kind)
    for ax in figure.axes:
        if ax.get_xlabel() and ax.get_xlabel() != "iteration":
            low, high = ax.get_xlim()
            assert low < high and not ax.xaxis_inverted(), (kind, ax.get_xlabel())


def test_the_search_axes_name_their_unit(monkeypatch, tmp_path: Path):
    assert draw(monkeypatch, tmp_path, "search").axes[0].get_xlabel() == "estimated resource (ms)"
    search_ax, result_ax = draw(monkeypatch, tmp_path, "tradeoff").axes
    assert "(ms)" in search_ax.get_xlabel() and "ms, onnxruntime-cpu" in result_ax.get_xlabel()


def test_the_vega_search_chart_names_the_unit_of_its_x_for_every_metric():
    """dvc.yaml's search chart plots the search's x as a fraction of the base network's resource (the
    unit of search.budget, whatever the metric), labelled with the metric it is a fraction of, and
    takes DVC's linear template (an ascending x, as the PNGs')."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    [chart] = [entry["search_trajectory"] for entry in dvc["plots"] if isinstance(entry, dict)
               and "search_trajectory" in entry]
    assert chart["template"] == "linear" and chart["x"] == {"plots/search.csv": "resource_fraction"}
    for metric in ("latency", "macs", "params"):
        label = chart["x_label"].replace("${search.metric}", metric)
        assert label.startswith(f"estimated {metric}, as a fraction of the base network's"), label
        assert "$" not in label and "unit)" not in label


def test_the_result_panel_shows_the_base_network_beside_the_final_one(monkeypatch, tmp_path: Path):
    _, result_ax = draw(monkeypatch, tmp_path, "tradeoff").axes
    points = {tuple(np.round(p, 4)) for coll in result_ax.collections for p in coll.get_offsets()}
    assert {(1.96, 0.76), (2.94, 0.81)} <= points, "final and base: measured latency and test accuracy"
    labels = [text.get_text() for text in result_ax.get_legend().get_texts()]
    assert "final network, fine-tuned (1.96 ms, 0.760)" in labels
    assert "base network, super-network weights (2.94 ms, 0.810)" in labels
    assert result_ax.get_title().endswith("within the latency budget's tolerance (1.03 of it)"), \
        "1.03 of the budget is over it: met only by the tolerance"
