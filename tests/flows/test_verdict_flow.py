"""The verdict first: a flow whose final network misses its budget ends in the Failed state
`BudgetMissed` (never a green Completed), named and tagged verdict first, and its console summary and
`netadapt-summary` artifact say `budget_met`; the summary's lines, from a result, without a flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from netadapt.config import parse_config
from netadapt_flows.reporting import flow_verdict, summary_lines, summary_markdown
from tests.flows.test_pipeline import flow_script, tiny_data, tiny_params

# `netadapt flow` in this process, its evaluate made to find the budget missed (the check is the one
# place that decides, `BudgetCheck.met`), then what Prefect's API recorded of the run.
SCRIPT = r'''
import contextlib, io, json
import netadapt.schedule as schedule
schedule.BudgetCheck.met = property(lambda self: False)
from netadapt_flows.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(["flow", "--params", "tiny.yaml"])
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterKey, FlowRunFilter,
    FlowRunFilterParentTaskRunId)
with get_client(sync_client=True) as client:
    [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)))
    [summary] = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["netadapt-summary"])))
from netadapt_tasks.results import read_result
read_back = read_result(run.state)  # as `netadapt serve --once` reads a served run's result
print(json.dumps({"rc": rc, "stdout": out.getvalue(), "name": run.name, "tags": run.tags,
                  "state": [run.state.type.value, run.state.name, run.state.message], "summary": summary.data,
                  "read_back": read_back["verdict"]}))
'''


@pytest.mark.slow
def test_a_flow_that_misses_its_budget_ends_budget_missed_and_says_so_first(tmp_path: Path):
    params = tiny_params(str(tiny_data(tmp_path / "data")))
    out = flow_script(tmp_path, params, SCRIPT)
    head = f"macs ≤ {params['search']['budget'] * 100:g}% · MISSED · plain_cnn · fashion-mnist · {params['profile']['backend']}"
    assert out["state"][:2] == ["FAILED", "BudgetMissed"], "a scheduler sees a failure, not a green Completed"
    assert out["state"][2].startswith(head) and "the pipeline missed the budget" in out["state"][2]
    assert out["name"] == head and {f"budget: {head.split(' · ')[0]}", "budget-missed"} <= set(out["tags"])
    assert out["rc"] == 3, "the CLI exits non-zero, after printing the summary"
    first, *stages = out["stdout"].strip().splitlines()
    assert first.startswith(head + ": budget_met=false; ") and "OVER the budget" in first
    assert [line.split()[0] for line in stages] == ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]
    assert out["summary"].startswith(f"# {head}\n") and "**budget_met** false" in out["summary"]
    assert out["read_back"]["met"] is False, "the Failed state holds the result, readable from the API"


EVALUATE = {"latency_measured_ms": 0.317, "base_latency_measured_ms": 1.0, "test_acc": 0.8, "budget_met": True}


def test_the_summary_leads_with_the_budget_and_its_verdict_per_network():
    cfg = parse_config({"model": {"name": "mobilenet_v2"}, "search": {"metric": "latency", "budget": 0.305},
                        "devices": {"phone": {"budget": 0.3, "profile": {}}}})
    result = {"states": {"evaluate": "Completed"}, "metrics": {"evaluate": EVALUATE},
              "devices": {"phone": {"states": {"evaluate": "Completed"},
                                    "metrics": {"evaluate": {**EVALUATE, "latency_measured_ms": 0.4}}}}}
    verdict = flow_verdict(result, cfg)
    assert verdict["budget_met"] is True and verdict["met"] is False and verdict["missed"] == ["device phone"]
    assert verdict["name"].startswith("latency ≤ 30.5% · MET · mobilenet_v2 · ")
    assert verdict["tags"] == ["budget: latency ≤ 30.5%", "budget-met"]
    lines = summary_lines({**result, "verdict": verdict})
    assert lines[0].startswith("latency ≤ 30.5% · MET · ") and "budget_met=true" in lines[0]
    assert lines[1].startswith("latency ≤ 30% · MISSED · ") and "(device phone): budget_met=false" in lines[1]
    assert lines[2].split()[:2] == ["evaluate", "Completed"]
    markdown = summary_markdown(result, cfg)
    assert markdown.startswith("# latency ≤ 30.5% · MET · ") and "- **budget_met** true" in markdown
    pending = flow_verdict({"states": {}, "metrics": {}}, cfg)
    assert (pending["budget_met"], pending["met"], pending["tags"][1]) == (None, True, "budget-pending")
