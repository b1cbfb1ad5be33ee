"""The verdict first: a run's budget and whether its final network met it, at the start of every
name a reviewer scans (MLflow parent runs, Prefect flow runs, the console and UI summaries), e.g.
`latency ≤ 40% · MISSED · mobilenet_v2 · fashion-mnist · onnxruntime-cpu · dvc`.

A list column cuts a long name: so the budget and the verdict come first, then what tells runs of
one budget apart."""

from __future__ import annotations

from netadapt.config import Config
from netadapt.schedule import BudgetCheck, final_budget_check

UNITS = {"latency": " ms", "macs": " MACs", "params": " params"}
MET, MISSED, PENDING = "MET", "MISSED", "pending"  # PENDING: evaluate has not checked the budget yet


def budget_label(cfg: Config) -> str:
    """`latency ≤ 40%` (a relative budget) or `latency ≤ 3.5 ms` (an absolute one)."""
    s = cfg.search
    budget = f"{s.budget * 100:g}%" if s.budget_type == "relative" else f"{s.budget:g}{UNITS.get(s.metric, '')}"
    return f"{s.metric} ≤ {budget}"


def verdict_word(budget_met: bool | None) -> str:
    """MET, MISSED, or `pending` (None: not checked yet)."""
    return PENDING if budget_met is None else (MET if budget_met else MISSED)


def front_end(pipeline_id: str) -> str:
    """Which front end ran a pipeline, from its id (`dvc-...`, `prefect-...`; else the CLI's `run`)."""
    return next((name for name in ("dvc", "prefect") if pipeline_id.startswith(f"{name}-")), "cli")


def verdict_name(cfg: Config, budget_met: bool | None, pipeline_id: str = "") -> str:
    """`latency ≤ 40% · MISSED · mobilenet_v2 · fashion-mnist · onnxruntime-cpu` (`· dvc`, `· prefect`
    or `· cli` after it when `pipeline_id` is given: two front ends' runs of one budget differ)."""
    parts = [budget_label(cfg), verdict_word(budget_met), cfg.model.name, cfg.data.name, cfg.profile.backend]
    if pipeline_id:
        parts.append(front_end(pipeline_id))
    return " · ".join(parts)


def budget_check(cfg: Config, evaluate_metrics: dict) -> BudgetCheck | None:
    """Evaluate's budget check (`schedule.final_budget_check`) rebuilt from its metrics, or None when
    evaluate has not run (or its metrics lack the measurements)."""
    s = cfg.search
    try:
        return final_budget_check(s.metric, s.budget, s.budget_type, cfg.evaluate.budget_tolerance, evaluate_metrics)
    except (KeyError, TypeError):
        return None
