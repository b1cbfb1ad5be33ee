"""The Prefect flow, run twice through `netadapt flow` as a user would, with PREFECT_HOME in a
temporary folder (set for the subprocess before Prefect is imported): the second run, with another
budget, finds the stages and search iterations it shares with the first Cached, and ends where a
fresh run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.pipeline.test_dvc import TINY


def flow(cwd: Path, home: Path, *overrides: str) -> dict:
    exe = Path(sys.executable).with_name("netadapt")
    env = {**os.environ, "PREFECT_HOME": str(home), "NETADAPT_TRACKING": "off",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    args = [str(exe), "flow", "--params", "tiny.yaml"] + [x for o in overrides for x in ("-S", o)]
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_flow_run_with_another_budget_reuses_what_it_can(tmp_path: Path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["data"]["root"] = str(REPO / "data" / "fashion-mnist-t10k")
    for name in ("run", "fresh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.yaml").write_text(yaml.safe_dump(params))

    first = flow(tmp_path / "run", tmp_path / "home")
    assert set(first["states"].values()) == {"Completed"}
    assert first["metrics"]["search"]["iteration_states"] and \
        set(first["metrics"]["search"]["iteration_states"]) == {"Completed"}
    assert (tmp_path / "home" / "storage").is_dir(), "results persisted under PREFECT_HOME"

    tighter = round(0.9 * first["metrics"]["search"]["resource_estimated"] / first["metrics"]["search"]["base_resource"], 4)
    second = flow(tmp_path / "run", tmp_path / "home", f"search.budget={tighter}")
    assert {k: second["states"][k] for k in ("prepare", "profile", "supernet")} == dict.fromkeys(
        ("prepare", "profile", "supernet"), "Cached")
    iterations = second["metrics"]["search"]["iteration_states"]
    done_before = len(first["metrics"]["search"]["iteration_states"])
    assert iterations[:done_before - 1] == ["Cached"] * (done_before - 1), "shared iterations come from the cache"
    assert "Completed" in iterations[done_before - 1:], "the new iterations ran"
    assert second["metrics"]["search"]["candidates_cached"] >= 1

    fresh = flow(tmp_path / "fresh", tmp_path / "fresh-home", f"search.budget={tighter}")
    arch = lambda d: json.loads((d / "artifacts" / "search" / "arch.json").read_text())
    assert arch(tmp_path / "run") == arch(tmp_path / "fresh")
    for key in ("iterations", "resource_estimated", "holdout_acc"):
        assert second["metrics"]["search"][key] == fresh["metrics"]["search"][key]


def test_content_digests_follow_content_not_location(tmp_path: Path):
    from netadapt.io import content_digest

    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "x.bin").write_bytes(b"same")
    assert content_digest([tmp_path / "a"]) == content_digest([tmp_path / "b"])
    (tmp_path / "b" / "sub" / "x.bin").write_bytes(b"other")
    assert content_digest([tmp_path / "a"]) != content_digest([tmp_path / "b"])
    assert content_digest([tmp_path / "missing"]) != content_digest([tmp_path / "a"])
