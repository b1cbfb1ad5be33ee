"""What a flow run shows, verdict first: the budget and whether the final network met it
(`flow_verdict`) lead the console summary (`summary_lines`, printed by the CLI, then a line per
stage), the flow run's name and tags (`name_flow_run`) and the Prefect UI's markdown summary; the
UI also gets the search trajectory as a table and (tracking on) a link to the pipeline's MLflow run
(`publish`), with the library's log lines (logger `netadapt`)."""

from __future__ import annotations

import logging
import math
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

import netadapt_tracking as tracking
from netadapt.config import Config
from netadapt.history import read_history_csv
from netadapt.layout import Paths
from netadapt.verdict import budget_label, verdict_name, verdict_word
from netadapt_flows.console import headline, number, stage_lines, verdict_line
from netadapt_tracking.ui import run_url, ui_base

BUDGET_MISSED = "BudgetMissed"  # the name of the (Failed) final state of a flow whose network missed its budget


def route_library_logs() -> None:
    """The library's progress lines (logger `netadapt`) reach the Prefect UI, however the flow was
    started (`PREFECT_LOGGING_EXTRA_LOGGERS=netadapt` attaches the same handler)."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger("netadapt")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        logger.addHandler(APILogHandler())



def _dvc_line(dvc: dict) -> str | None:
    if dvc.get("committed"):
        return "recorded in dvc.lock: " + ", ".join(dvc["committed"])
    if dvc.get("skipped") == "not a DVC project":
        return None
    return f"dvc.lock not updated: {dvc['skipped']}" if dvc.get("skipped") else "dvc.lock: up to date"


def _stage_rows(result: dict) -> list[tuple[str, str, str, dict]]:
    """(label, stage, state, metrics) of every stage: the plain pipeline's, then each device's
    (labelled `<stage>@<device>`)."""
    rows = [(stage, stage, state, result["metrics"].get(stage, {})) for stage, state in result["states"].items()]
    for name, branch in result.get("devices", {}).items():
        rows += [(f"{stage}@{name}", stage, state, branch["metrics"].get(stage, {}))
                 for stage, state in branch["states"].items()]
    return rows


def flow_verdict(result: dict, cfg: Config) -> dict:
    """The flow's verdict: `budget_met` of the plain pipeline's final network (None: not evaluated),
    `met` (False when it or any named device's network missed its budget beyond the tolerance),
    the flow run's `name` and `tags`, and a line per network with its measurement (`lines`)."""
    met, line = verdict_line(cfg, result["metrics"].get("evaluate", {}))
    lines, missed = [line], [] if met is not False else ["the pipeline"]
    for name, branch in result.get("devices", {}).items():
        device_met, device_line = verdict_line(cfg.for_device(name), branch["metrics"].get("evaluate", {}), name)
        lines.append(device_line)
        missed += [] if device_met is not False else [f"device {name}"]
    tags = [f"budget: {budget_label(cfg)}", "budget-" + verdict_word(met).lower()]
    return {"budget_met": met, "met": not missed, "missed": missed, "name": verdict_name(cfg, met), "tags": tags,
            "lines": lines}


def flow_run_name() -> str:
    """A flow run's name when it starts, from its parameters: `latency ≤ 40% · pending · ...`
    (`name_flow_run` puts the verdict in at the end)."""
    from prefect.runtime import flow_run

    from netadapt.config import load_config

    params = flow_run.parameters
    try:
        cfg = load_config(params.get("params_file", "params.yaml"), list(params.get("overrides") or []))
    except Exception:  # noqa: BLE001 - bad params fail the flow itself, with the error; the name stays plain
        return "netadapt · params not readable"
    return verdict_name(cfg, None)


def name_flow_run(verdict: dict) -> None:
    """The running flow run renamed verdict first and tagged with its budget and `budget-met` /
    `budget-missed` (`budget-pending`: not evaluated), so the runs list alone tells them apart."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    try:
        with get_client(sync_client=True) as client:
            tags = list(client.read_flow_run(flow_run.id).tags or [])
            tags += [t for t in verdict["tags"] if t not in tags]
            client.update_flow_run(flow_run.id, name=verdict["name"], tags=tags)
    except Exception as exc:  # noqa: BLE001 - a name never fails a finished pipeline (its state still tells)
        logging.getLogger("netadapt").warning("prefect: could not rename the flow run %s: %s", verdict["name"], exc)


def summary_lines(result: dict) -> list[str]:
    """The verdict first (`flow_verdict`'s lines, when the result has one), then one line per stage
    (state and headline metrics; a named device's as `<stage>@<device>`), then what was recorded
    in dvc.lock."""
    lines = list(result.get("verdict", {}).get("lines", []))
    rows = _stage_rows(result)
    for line, (_, stage, _, metrics) in zip(stage_lines(rows), rows):
        if stage == "search" and metrics.get("iteration_states"):
            its = metrics["iteration_states"]
            line += (f"  [iterations: {its.count('Cached')} cached, {len(its) - its.count('Cached')} run; "
                     f"candidates: {metrics['candidates_cached']} cached, "
                     f"{metrics['candidates_run'] - metrics['candidates_cached']} run]")
        lines.append(line)
    if (dvc := _dvc_line(result.get("dvc", {}))) is not None:
        lines.append(dvc)
    return lines


def summary_markdown(result: dict, cfg: Config, mlflow_link: str | None = None) -> str:
    """The `netadapt-summary` artifact: the verdict, the headline metrics, a row per stage and (tracking
    on) a link to the pipeline's MLflow run."""
    m = result["metrics"]
    ev = m.get("evaluate", {})
    verdict = result.get("verdict") or flow_verdict(result, cfg)
    met = verdict["budget_met"]
    lines = [f"# {verdict['name']}", "", f"- **budget_met** {'unknown' if met is None else str(met).lower()}"]
    lines += [f"- {line}" for line in verdict["lines"]]
    if ev:
        lines += [f"- **test accuracy** {number(ev.get('test_acc'))}",
                  f"- **latency** {number(ev.get('latency_measured_ms'))} ms measured, "
                  f"{number(ev.get('latency_estimated_ms'))} ms estimated, "
                  f"{number(ev.get('latency_ratio'))} of the base network's ({cfg.profile.backend})",
                  f"- **MACs** {number(ev.get('macs'))}, **parameters** {number(ev.get('params'))}"]
    if "search" in m:
        lines.append(f"- **search** {m['search'].get('algorithm')}: {m['search'].get('iterations')} iterations, "
                     f"{m['search'].get('candidates_evaluated')} candidates, holdout accuracy "
                     f"{number(m['search'].get('holdout_acc'))}")
    for name, branch in result.get("devices", {}).items():
        dev, device = branch["metrics"].get("evaluate", {}), cfg.for_device(name)
        lines.append(f"- **device {name}** ({device.profile.backend}, budget {device.search.budget:g}): test accuracy "
                     f"{number(dev.get('test_acc'))}, latency {number(dev.get('latency_measured_ms'))} ms measured, "
                     f"{number(dev.get('latency_ratio'))} of the base network's")
    lines += ["", "| stage | state | metrics |", "| --- | --- | --- |"]
    lines += [f"| {label} | {state} | {headline(stage, metrics).replace('  ', ', ')} |"
              for label, stage, state, metrics in _stage_rows(result)]
    if (dvc := _dvc_line(result.get("dvc", {}))) is not None:
        lines += ["", dvc]
    if mlflow_link:
        lines += ["", f"[The pipeline's run in MLflow]({mlflow_link})"]
    return "\n".join(lines) + "\n"


def trajectory_rows(p: Paths, search: dict | None = None) -> list[dict]:
    """The search trajectory: the network kept at each iteration (-1: the unpruned one), with the
    iteration's wall time in this flow run (`seconds`, from the search's `iteration_seconds`; None
    where it did not run in it: the search stage was up to date). Not the candidates' seconds summed:
    they run side by side."""
    walls = (search or {}).get("iteration_seconds", {})
    path = p.search / "history.csv"
    if not path.is_file():
        return []
    history = read_history_csv(path)
    rows = []
    for t, it in history.groupby("iteration", sort=True):
        kept = it[it.kept.astype(bool)]
        if not len(kept):
            continue
        row = kept.iloc[0]
        values = {"iteration": int(t), "resource_estimated": float(row.resource_estimated),
                  "holdout_acc": float(row.holdout_acc), "target": float(row.target),
                  "halvings": int(row.halvings), "candidates": int(len(it)), "seconds": walls.get(str(int(t)))}
        rows.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})
    return rows


def mlflow_pipeline_link(pid: str, experiment: str, client: Any = None) -> str | None:
    """The MLflow UI link of this pipeline's parent run (its overview page, in the model-training view:
    `netadapt_tracking.ui.run_url`), if tracking is on and a stage logged one."""
    if not tracking.enabled():
        return None
    if client is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking.tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{tracking.PIPELINE_TAG}` = '{pid}' and "
                                                                   f"tags.`{tracking.ROLE_TAG}` = 'pipeline'",
                              max_results=1)
    uri = tracking.tracking_uri()
    return run_url(ui_base(uri), found.experiment_id, runs[0].info.run_id) if runs else None


def publish(result: dict, cfg: Config, p: Paths, pid: str) -> None:
    """The run's Prefect artifacts: summary (markdown), search trajectory (table; a named device's
    as `search-trajectory-<device>`), MLflow run (link to its overview page)."""
    try:
        link = mlflow_pipeline_link(pid, cfg.tracking.experiment)
    except Exception as exc:  # noqa: BLE001 - a missing link never fails a finished pipeline
        logging.getLogger("netadapt").warning("mlflow: no link to the run: %s", exc)
        link = None
    create_markdown_artifact(key="netadapt-summary", markdown=summary_markdown(result, cfg, link),
                             description="NetAdapt: headline metrics and each stage's state")
    seconds = "; seconds: the iteration's wall time in this run (empty: not run in it)"
    if rows := trajectory_rows(p, result["metrics"].get("search")):
        create_table_artifact(key="search-trajectory", table=rows,
                              description=f"Search: the network kept at each iteration (-1: unpruned){seconds}")
    for name, branch in result.get("devices", {}).items():
        if rows := trajectory_rows(p.for_device(name), branch["metrics"].get("search")):  # (a key allows no `_`)
            create_table_artifact(key=f"search-trajectory-{name.replace('_', '-')}", table=rows,
                                  description=f"Search for device {name}: the network kept at each "
                                              f"iteration{seconds}")
    if link:
        create_link_artifact(key="mlflow-run", link=link, link_text="MLflow run of this pipeline",
                             description=f"Tracking URI {tracking.tracking_uri()} (a local store: open it with "
                                         f"`mlflow ui --app-name netadapt --backend-store-uri <uri>`)")
