"""Figures people would rather look at than read: table fidelity, search trajectories. PNG, headless."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from netadapt.io import atomic_path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


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
    ax.set(xlim=(0, hi), ylim=(0, hi), xlabel="measured latency (ms)", ylabel="estimated latency (ms)",
           title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    _save(fig, path)


def plot_trajectory(history: pd.DataFrame, budget: float, unit: str, path: Path) -> None:
    """Every candidate (estimated resource vs holdout accuracy, coloured by iteration), the kept path
    from the base network to the budget, and the budget line."""
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
    ax.set(xlabel=f"estimated resource ({unit})", ylabel="holdout accuracy", title="Search trajectory")
    ax.invert_xaxis()
    ax.legend(loc="lower left")
    fig.tight_layout()
    _save(fig, path)


def plot_tradeoff(history: pd.DataFrame, final: dict, path: Path) -> None:
    """Accuracy against latency: the search's kept iterates (holdout accuracy, estimated latency)
    and the final network against the base (test accuracy, measured latency)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    kept = history[history.kept.astype(bool)].sort_values("iteration")
    ax.plot(kept.resource_estimated, kept.holdout_acc, "-o", color="steelblue", ms=4,
            label="search iterates (holdout, estimated)")
    ax.scatter([final["latency_measured_ms"]], [final["test_acc"]], marker="*", s=200, color="crimson",
               zorder=3, label="final network (test, measured)")
    ax.axvline(final["base_latency_measured_ms"], color="grey", ls=":", label="base network (measured)")
    ax.set(xlabel="latency (ms)", ylabel="accuracy", title="Accuracy-latency trade-off")
    ax.invert_xaxis()
    ax.legend(loc="lower left")
    fig.tight_layout()
    _save(fig, path)
