"""search_quality.py's summary of finished cells: per (method, budget) accuracy, latency, seconds and
counts; V2's paired differences to every other method with 95% intervals (`stats`); and the headline
figures stored in the results JSON (`base_test_acc`, `v2_minus_best_baseline_pts`,
`v1_over_v2_total_time`)."""

from __future__ import annotations

import statistics

from stats import interval, paired

PARTS = ("supernet", "search", "final")
COUNTS = ("supernet_epochs", "candidates_scored", "finetune_steps", "final_epochs")
V2, V1_REFERENCE, BASE = "netadapt_v2", "netadapt_v1_reference", "base"
HEADLINE_BUDGET = 0.5


def finished(cells: dict) -> dict:
    """The cells that produced a network (not the bookkeeping keys, not the infeasible ones)."""
    return {k: c for k, c in cells.items() if not k.startswith("_") and "infeasible" not in c}


def summarize(cells: dict, latency: dict) -> dict:
    """Per `method@budget`: test accuracy over seeds, measured latency, mean seconds and counts, and
    how many cells' training plateaued."""
    groups: dict[tuple, list[dict]] = {}
    for key, cell in finished(cells).items():
        groups.setdefault((cell["method"], cell["budget"]), []).append({**cell, "latency_ms": latency[key]})
    summary = {}
    for (method, budget), rows in sorted(groups.items()):
        accs = [r["test_acc"] for r in rows]
        ms = [r["latency_ms"] for r in rows]
        counted = [r["counts"] for r in rows if "counts" in r]
        summary[f"{method}@{budget}"] = {
            "method": method, "budget": budget, "seeds": sorted(r["seed"] for r in rows),
            "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "test_acc_min": min(accs), "test_acc_max": max(accs),
            "latency_ms_mean": statistics.mean(ms), "latency_ratio_mean": statistics.mean(ms) / latency["base"],
            "latency_ratio_max": max(ms) / latency["base"],
            "seconds_mean": {part: statistics.mean(r["seconds"][part] for r in rows) for part in PARTS},
            **({"counts_mean": {k: statistics.mean(c[k] for c in counted) for k in COUNTS}} if counted else {}),
            "plateaued": sum(bool(r.get("plateaued")) for r in rows)}
    return summary


def accuracies(cells: dict, budget: float) -> dict[tuple[str, int], float]:
    """(method, seed) -> test accuracy in points, at one budget."""
    return {(c["method"], c["seed"]): 100 * c["test_acc"] for c in finished(cells).values() if c["budget"] == budget}


def paired_table(cells: dict) -> dict:
    """Per budget (str), per other method: V2 minus it, paired by seed (points, `stats.paired`)."""
    out: dict[str, dict] = {}
    for budget in sorted({c["budget"] for c in finished(cells).values() if c["method"] != BASE}, reverse=True):
        acc = accuracies(cells, budget)
        others = sorted({m for m, _ in acc if m not in (V2, BASE)})
        out[str(budget)] = {m: d for m in others if (d := paired(acc, V2, m)) is not None}
    return out


def total_seconds(summary: dict, method: str, budget: float) -> float | None:
    s = summary.get(f"{method}@{budget}")
    return sum(s["seconds_mean"].values()) if s else None


def headline(cells: dict, summary: dict, budget: float = HEADLINE_BUDGET) -> dict:
    """The figures the issue asks for, each None where its cells are missing:
    - `base_test_acc`: the plain base's test accuracy, points, mean and interval over seeds;
    - `v2_minus_best_baseline_pts`: V2 minus the strongest other method at `budget` (the highest mean
      test accuracy among every method but V2 and the base), paired by seed, with its 95% interval;
    - `v1_over_v2_total_time`: V1 at the reference preset's total seconds (super-network + search +
      final training, mean over seeds) over V2's, at `budget`; both accuracies beside it."""
    bases = [100 * c["test_acc"] for c in finished(cells).values() if c["method"] == BASE]
    rivals = [s for s in summary.values() if s["budget"] == budget and s["method"] not in (V2, BASE)]
    best = max(rivals, key=lambda s: s["test_acc_mean"])["method"] if rivals else None
    diff = paired(accuracies(cells, budget), V2, best) if best else None
    v1, v2 = total_seconds(summary, V1_REFERENCE, budget), total_seconds(summary, V2, budget)
    ratio = None
    if v1 is not None and v2:
        ratio = {"ratio": v1 / v2, "v1_reference_seconds": v1, "v2_seconds": v2, "budget": budget,
                 "v1_reference_test_acc": 100 * summary[f"{V1_REFERENCE}@{budget}"]["test_acc_mean"],
                 "v2_test_acc": 100 * summary[f"{V2}@{budget}"]["test_acc_mean"]}
    return {"base_test_acc": interval(bases) if bases else None,
            "v2_minus_best_baseline_pts": {"vs": best, "budget": budget, **diff} if diff else None,
            "v1_over_v2_total_time": ratio}


def headline_lines(figures: dict) -> list[str]:
    """The run's last two lines: `v1_over_v2_total_time=<ratio>`, then `v2_minus_best_baseline_pts=<mean>`."""
    ratio, diff = figures["v1_over_v2_total_time"], figures["v2_minus_best_baseline_pts"]
    return [f"v1_over_v2_total_time={round(ratio['ratio'], 2) if ratio else 'nan'}",
            f"v2_minus_best_baseline_pts={round(diff['mean'], 2) if diff else 'nan'}"]
