"""DVC and the Prefect flow share one notion of "up to date" (the stage stamps of `netadapt.stamps`):
after `dvc repro` the flow runs nothing and touches no file; after the flow, `dvc status` has nothing
to do and `dvc repro` runs no stage. The flow's second run (another budget) is also where its shape
is checked from Prefect's API: task-run names, graph edges, artifacts, library logs, retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netadapt.config import load_config
from netadapt.layout import Paths
from tests.conftest import REPO
from tests.flows.test_pipeline import STAGES, cli, cli_env, result, tiny_data
from tests.pipeline.test_dvc import TINY, set_params
from tests.test_layout import project_copy

DVC = str(Path(sys.executable).with_name("dvc"))

# Runs the flow in this process, then reads back from Prefect's API what the run recorded.
SCRIPT = r'''
import json, os, sys
import netadapt_flows.flow as ff
import netadapt_flows.reporting as fr

class Obj:
    def __init__(self, **kw): self.__dict__.update(kw)

class FakeMlflow:  # the link lookup, against a store that holds this pipeline's parent run
    def get_experiment_by_name(self, name): return Obj(experiment_id="7")
    def search_runs(self, ids, filter_string, max_results): return [Obj(info=Obj(run_id="r1"))]

os.environ["NETADAPT_TRACKING"] = "on"
link = fr.mlflow_pipeline_link("prefect-x", "netadapt", FakeMlflow())
os.environ["NETADAPT_TRACKING"] = "off"
fr.mlflow_pipeline_link = lambda pid, experiment, client=None: f"http://127.0.0.1:5000/#/experiments/7/runs/{pid}"

state = ff.netadapt_flow(return_state=True)
out = state.result()
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
    FlowRunFilterId, FlowRunFilterParentFlowRunId, LogFilter, LogFilterFlowRunId)
from prefect.logging.handlers import APILogHandler
APILogHandler().flush()
main_id = state.state_details.flow_run_id
with get_client(sync_client=True) as client:
    subs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[main_id])))
    ids = [main_id] + [s.id for s in subs]
    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[main_id])))
    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
by_name = {r.name: r for r in runs}
out["task_runs"] = {r.name: {"state": r.state_name, "id": str(r.id), "retries": r.empirical_policy.retries,
                             "wait_for": sorted(str(i.id) for i in r.task_inputs.get("wait_for", []))}
                    for r in runs}
out["artifacts"] = {a.key: {"type": a.type, "data": a.data} for a in artifacts}
out["library_logs"] = [l.message for l in logs if l.name == "netadapt"]
out["link"] = link
print(json.dumps(out, default=str))
'''


def dvc(repo: Path, *args: str) -> str:
    done = subprocess.run([DVC, *args], cwd=repo, env=cli_env(repo), capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def files(repo: Path) -> dict[str, int]:
    return {str(p.relative_to(repo)): p.stat().st_mtime_ns for folder in ("artifacts", "metrics", "plots")
            for p in (repo / folder).rglob("*") if p.is_file()}


@pytest.mark.slow
def test_dvc_and_the_flow_find_each_others_work_up_to_date(tmp_path: Path):
    repo = project_copy(tmp_path / "repo")
    tiny_data(repo / "data" / "tiny")
    set_params(repo, **TINY, data={"name": "fashion-mnist", "root": "data/tiny"})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], cwd=repo, check=True)
    home = str(tmp_path / "prefect-home")

    # dvc repro, then the flow: every stage is up to date from the stamps; no file is touched.
    assert "Running stage 'evaluate'" in dvc(repo, "repro")
    before = files(repo)
    after_dvc = result(cli(repo, repo, "flow", "--json", PREFECT_HOME=home))
    assert after_dvc["states"] == dict.fromkeys(STAGES, "Cached")
    for stage in STAGES:
        recorded = json.loads((repo / "artifacts" / "reports" / f"{stage}.json").read_text())  # every metric
        assert {k: after_dvc["metrics"][stage][k] for k in recorded} == recorded, "the metrics DVC's run recorded"
    assert after_dvc["dvc"] == {"committed": [], "skipped": ""}
    assert files(repo) == before, "no output was rewritten"

    # The flow with a new budget in params.yaml, then DVC: nothing to do, nothing to run.
    searched = json.loads((repo / "artifacts" / "reports" / "search.json").read_text())
    tighter = round(0.9 * searched["resource_estimated"] / searched["base_resource"], 4)
    set_params(repo, search={"budget": tighter})
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, env=cli_env(repo, PREFECT_HOME=home),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    flow = json.loads(done.stdout.strip().splitlines()[-1])
    assert flow["states"] == {"prepare": "Cached", "profile": "Cached", "supernet": "Cached",
                              "search": "Completed", "finetune": "Completed", "evaluate": "Completed"}
    assert flow["dvc"] == {"committed": ["search", "finetune", "evaluate"], "skipped": ""}
    assert json.loads(dvc(repo, "status", "--json")) == {}
    assert "Running stage" not in dvc(repo, "repro")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["search"]["params"]["params.yaml"]["search"]["budget"] == tighter

    # The run's shape in Prefect: named candidate runs (retried on a worker failure), edges, artifacts, logs.
    runs = flow["task_runs"]
    candidates = sorted(n for n in runs if "-cand" in n)
    assert candidates and all(n.split("-")[0][2:].isdigit() and n.split("cand")[1].isdigit() for n in candidates)
    assert "it0-cand0" in candidates and "base" in runs and "it0-propose" in runs
    assert all(runs[n]["retries"] == 2 for n in candidates) and runs["finetune"]["retries"] == 0
    assert runs["dvc-commit"]["state"] == "Completed"
    assert runs["supernet"]["wait_for"] == [runs["prepare"]["id"]]
    assert runs["finetune"]["wait_for"] and set(runs["finetune"]["wait_for"]) >= {runs["prepare"]["id"],
                                                                                  runs["supernet"]["id"]}
    search_node = next(r["id"] for n, r in runs.items() if n.startswith("netadapt-search"))  # the subflow's
    assert search_node in runs["finetune"]["wait_for"], runs  # task run in the parent's graph
    assert search_node in runs["evaluate"]["wait_for"]
    artifacts = flow["artifacts"]
    assert artifacts["netadapt-summary"]["type"] == "markdown" and "test accuracy" in artifacts["netadapt-summary"]["data"]
    trajectory = json.loads(artifacts["search-trajectory"]["data"])
    assert [row["iteration"] for row in trajectory] == list(range(-1, flow["metrics"]["search"]["iterations"]))
    assert "http://127.0.0.1:5000/#/experiments/7/runs/prefect-" in artifacts["mlflow-run"]["data"]  # a link
    assert flow["link"] == "http://127.0.0.1:5000/#/experiments/7/runs/r1/overview?workflowType=machine_learning"
    assert any(m.startswith("search: iteration 0") for m in flow["library_logs"]), "library logs reach the UI"


def test_stamps_cover_what_dvc_yaml_declares():
    """A stamp's outputs are exactly the stage's outs in dvc.yaml; its inputs include every dep that
    is not code (code is in the stamp's key as the code version); its params sections, every param."""
    from netadapt import layout, stamps
    from netadapt.config.presets import SELECTORS
    from netadapt.layout import STAGE_PARAMS

    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    cfg = load_config(REPO / "params.yaml")
    names = lambda entries: {next(iter(e)) if isinstance(e, dict) else e for e in entries}
    for stage in STAGES:
        declared = names(spec[stage].get("outs", [])) | names(spec[stage].get("metrics", [])) | \
            names(spec[stage].get("plots", []))
        assert {p.as_posix() for p in layout.stage_outputs(stage, Paths())} == declared, stage
        deps = {d.replace("${data.root}", cfg.data.root) for d in names(spec[stage]["deps"])
                if not d.startswith(("netadapt", "${model.path}"))}  # code: in the key
        assert deps <= {p.as_posix() for p in layout.stage_inputs(stage, cfg, Paths())}, stage
        params = names(spec[stage].get("params", [])) - set(SELECTORS)  # a preset's choice: in its sections
        assert {param.split(".")[0] for param in params} <= set(STAGE_PARAMS[stage])
