"""One search history for both front ends: after the stage CLI (what `dvc repro` runs) searched for
one budget, the flow searching for a tighter one finds every iteration that history replays Cached
(its proposal task and its candidates), as `netadapt search` would replay them, and ends where the
stage CLI ends; the iterations it runs itself are timed by the wall clock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.flows.test_pipeline import cli, cli_env, result, tiny_data, tiny_params
from tests.test_layout import project_copy

STAGES_CLI = """import sys
from netadapt_flows.cli import main
for stage in sys.argv[1:]:  # each as dvc.yaml runs it
    assert main([stage, "--params", "tiny.yaml"]) == 0, stage
"""


def history(project: Path) -> list[dict]:
    return json.loads((project / "artifacts" / "search" / "history.json").read_text())["rows"]


@pytest.mark.slow
def test_the_flow_replays_the_history_the_stage_cli_wrote(tmp_path: Path):
    code = project_copy(tmp_path / "code")
    data = tiny_data(tmp_path / "data")
    dvc_run = tmp_path / "dvc-run"
    dvc_run.mkdir()
    (dvc_run / "tiny.yaml").write_text(yaml.safe_dump(tiny_params(str(data))))
    done = subprocess.run([sys.executable, "-c", STAGES_CLI, "prepare", "profile", "supernet", "search"], cwd=dvc_run,
                          env=cli_env(code), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    recorded = history(dvc_run)
    searched = json.loads((dvc_run / "artifacts" / "reports" / "search.json").read_text())
    tighter = round(0.9 * searched["resource_estimated"] / searched["base_resource"], 4)
    replica = tmp_path / "replica"  # the same project, for the stage CLI's own replay of the tighter budget
    shutil.copytree(dvc_run, replica)

    flow = result(cli(code, dvc_run, "flow", "--params", "tiny.yaml", "-S", f"search.budget={tighter}", "--json"))
    cli(code, replica, "search", "--params", "tiny.yaml", "-S", f"search.budget={tighter}")

    assert {s: flow["states"][s] for s in ("prepare", "profile", "supernet", "search")} == {
        "prepare": "Cached", "profile": "Cached", "supernet": "Cached", "search": "Completed"}
    search = flow["metrics"]["search"]
    replayed = json.loads((replica / "metrics" / "search.json").read_text())["reused_iterations"]
    assert replayed >= 1, "the tighter budget shares iterations with the first search"
    states = search["iteration_states"]
    assert states[:replayed] == ["Cached"] * replayed, states
    assert "Completed" in states[replayed:], "the iterations beyond the recorded ones ran"
    shared = [r for r in recorded if r["iteration"] < replayed]  # the base network and the replayed iterations
    assert search["candidates_cached"] == len(shared)
    assert [r for r in history(dvc_run) if r["iteration"] < replayed] == shared, "the recorded rows, as recorded"
    ignore_seconds = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert ignore_seconds(history(dvc_run)) == ignore_seconds(history(replica)), "ends where the stage CLI ends"
    assert (dvc_run / "artifacts" / "search" / "arch.json").read_text() == \
        (replica / "artifacts" / "search" / "arch.json").read_text()

    # Each iteration's wall time, not its candidates' seconds summed (they may run side by side).
    assert sorted(search["iteration_seconds"], key=int) == [str(t) for t in range(-1, search["iterations"])]
    assert all(seconds >= 0 for seconds in search["iteration_seconds"].values())
