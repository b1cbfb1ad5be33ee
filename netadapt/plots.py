"""Figures people would rather look at than read: table fidelity, search trajectories. PNG, headless.

Every resource axis grows to the right, as in the Vega charts `dvc plots show` draws from the same
CSVs (dvc.yaml's `plots:`): the search walks right to left, from the base network to the budget.
Titles are wrapped to fit their panel (`_fit_title`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from netadapt.io import atomic_path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _fit_title(ax, title: str) -> None:
    """Set `title`, each of its lines wrapped at the widest width that fits in the figure centred over
    the axes (as the renderer measures it; matplotlib cuts a long one at the figure's edge), in a
    smaller type only where a single word is wider than that."""
    fig = ax.figure
    box = ax.get_position()
    share = min(box.x0 + box.x1, 2 - box.x0 - box.x1) * fig.bbox.width * 0.95
    renderer = fig.canvas.get_renderer()
    text = ax.set_title(title)
    longest = max(len(line) for line in title.splitlines())
    for size in range(round(text.get_fontsize()), 5, -1):
        text.set_fontsize(size)
        for width in range(longest, 11, -4):
            text.set_text("\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                                     for line in title.splitlines()))
            if text.get_window_extent(renderer).width <= share:
                return


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    _pyplot().close(fig)


def plot_fidelity(df: pd.DataFrame, path: Path, title: str) -> None:
    """Estimated vs measured latency, with the y = x line; networks of the table's fit (`in_fit`)
    hollow, held-out ones (whose error is the one reported) filled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    hi = max(df.estimated_ms.max(), df.measured_ms.max()) * 1.05
    ax.plot([0, hi], [0, hi], color="grey", lw=1, ls="--", label="y = x")
    fitted = df.in_fit.astype(bool) if "in_fit" in df else df.network.isin(["base", "smallest"])
    for kind, marker in (("base", "s"), ("smallest", "^")):
        sel = df[df.network == kind]
        ax.scatter(sel.measured_ms, sel.estimated_ms, marker=marker, s=60, facecolors="none",
                   edgecolors=f"C{1 + (kind == 'smallest')}", label=f"{kind} (in fit)", zorder=3)
    rest = ~df.network.isin(["base", "smallest"])
    sel = df[rest & fitted]
    ax.scatter(sel.measured_ms, sel.estimated_ms, s=25, facecolors="none", edgecolors="C0",
               label="calibration (in fit)")
    sel = df[rest & ~fitted]
    ax.scatter(sel.measured_ms, sel.estimated_ms, s=25, alpha=0.8, color="C3", label="held out")
    ax.set(xlim=(0, hi), ylim=(0, hi), xlabel="measured latency (ms)", ylabel="estimated latency (ms)")
    _fit_title(ax, title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    _save(fig, path)


def plot_trajectory(history: pd.DataFrame, budget: float, unit: str, path: Path,
                    corrected: float | None = None) -> None:
    """Every candidate (estimated resource vs holdout accuracy, coloured by iteration), the kept path
    from the base network to the budget, and the budget line (and the tightened one the search went
    on to when its answer measured over the budget: `corrected`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    cands = history[history.iteration >= 0]
    if len(cands):
        points = ax.scatter(cands.resource_estimated, cands.holdout_acc, c=cands.iteration, cmap="viridis",
                            s=18, alpha=0.7, label="candidates")
        fig.colorbar(points, ax=ax, label="iteration")
    kept = history[history.kept.astype(bool)].sort_values("iteration")
    ax.plot(kept.resource_estimated, kept.holdout_acc, "-o", color="crimson", ms=5, label="kept")
    ax.axvline(budget, color="black", ls="--", lw=1, label="budget")
    if corrected is not None and corrected != budget:
        ax.axvline(corrected, color="dimgray", ls=":", lw=1, label="budget, tightened by measurement")
    ax.set(xlabel=axis_label(unit), ylabel="holdout accuracy (super-network weights)")
    _fit_title(ax, "Search trajectory: from the base network (right) to the budget")
    ax.legend(loc="best")
    fig.tight_layout()
    _save(fig, path)


_UNITS = {"latency": "ms", "macs": "MACs", "params": "parameters"}
_NAMES = {"latency": "latency", "macs": "MACs", "params": "parameter"}


def axis_label(unit: str) -> str:
    """The search's resource axis in the PNGs, in `unit` (a `resource_model`'s: ms, MACs, parameters;
    the Vega search chart draws the same path as a fraction of the base network's resource)."""
    return f"estimated resource ({unit})" if unit else "estimated resource"


def plot_tradeoff(history: pd.DataFrame, final: dict, path: Path, search: dict | None = None) -> None:
    """Two panels, one quantity per axis, so estimates and measurements never share a scale.

    Left, the search: every candidate and the kept path, holdout accuracy (super-network weights)
    against the search's *estimated* resource, with the budget in the same unit. Right, the result:
    test accuracy against *measured* latency of the final network and of the base network (a point
    when `final` has `base_test_acc`, as evaluate measures it, else a line), and, for a latency budget, the
    budget on the measured scale (`final["budget"]` when `final["budget_metric"] == "latency"`).

    `final` is evaluate's metrics; `search` the search history's metadata (`history.json`: budget,
    unit, metric). Without `search`, the left budget comes from `final` when it is in MACs or
    parameters (exact, so estimated = measured), and is left out for latency.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    search = search or {}
    metric = search.get("metric") or final.get("budget_metric")
    unit = search.get("unit") or _UNITS.get(metric, "")
    budget = search.get("budget")
    if budget is None and metric in ("macs", "params") and final.get("budget_metric") == metric:
        budget = final.get("budget")

    cands = history[history.iteration >= 0]
    if len(cands):
        left.scatter(cands.resource_estimated, cands.holdout_acc, s=14, color="silver", label="candidates")
    kept = history[history.kept.astype(bool)].sort_values("iteration")
    left.plot(kept.resource_estimated, kept.holdout_acc, "-o", color="steelblue", ms=4, label="kept (search path)")
    base = kept[kept.iteration < 0]
    if len(base):
        left.scatter(base.resource_estimated, base.holdout_acc, marker="s", s=60, color="black", zorder=3,
                     label="base network")
    if budget is not None:
        left.axvline(budget, color="crimson", ls="--", lw=1, label=f"budget ({budget:.4g} {unit})")
    left.set(xlabel=axis_label(unit) + (", lookup table" if metric == "latency" else ""),
             ylabel="holdout accuracy (super-network weights)")
    _fit_title(left, "Search: every candidate, estimated")
    left.legend(loc="best", fontsize="small")

    backend = final.get("backend")
    final_ms, final_acc = final["latency_measured_ms"], final["test_acc"]
    right.scatter([final_ms], [final_acc], marker="*", s=220, color="crimson", zorder=3,
                  label=f"final network, fine-tuned ({final_ms:.3g} ms, {final_acc:.3f})")
    base_ms, base_acc = final.get("base_latency_measured_ms"), final.get("base_test_acc")
    if base_ms is not None and base_acc is not None:
        right.scatter([base_ms], [base_acc], marker="s", s=60, color="black", zorder=3,
                      label=f"base network, super-network weights ({base_ms:.3g} ms, {base_acc:.3f})")
        right.annotate("", (final_ms, final_acc), (base_ms, base_acc),
                       arrowprops={"arrowstyle": "->", "color": "grey", "shrinkA": 6, "shrinkB": 9})
    elif base_ms is not None:
        right.axvline(base_ms, color="black", ls=":", lw=1.2, label=f"base network latency ({base_ms:.3g} ms)")
    if final.get("budget_metric") == "latency" and final.get("budget") is not None:
        right.axvline(final["budget"], color="crimson", ls="--", lw=1,
                      label=f"budget, measured scale ({final['budget']:.3g} ms)")
    title = "Result: final network, measured"
    if final.get("budget_met") is not None:
        ratio = final.get("measured_over_budget")
        name = _NAMES.get(final.get("budget_metric"), final.get("budget_metric", ""))
        verdict = (f"within the {name} budget" + ("'s tolerance" if ratio and ratio > 1 else "")
                   if final["budget_met"] else f"OVER the {name} budget")
        title += f"\n{verdict}" + (f" ({ratio:.2f} of it)" if ratio else "")
    right.set(xlabel="measured latency (ms" + (f", {backend})" if backend else ")"), ylabel="test accuracy (top-1)")
    _fit_title(right, title)
    right.set_xlim(0, right.get_xlim()[1] * 1.15)  # from 0, so distances are proportional
    right.margins(y=0.3)
    right.legend(loc="best", fontsize="small")
    fig.tight_layout()
    _save(fig, path)
