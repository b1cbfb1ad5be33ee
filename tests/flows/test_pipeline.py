"""The Prefect flow as a user runs it: `netadapt flow`, then the served deployment (`netadapt serve
--once`) with another budget, then a fresh run. Each runs in a subprocess on a snapshot of the
project's code (PYTHONPATH), in a temporary folder, with PREFECT_HOME left to the CLI: the project's
`.prefect/`, which the served run must keep using. The served run finds the stages and search
iterations it shares with the first run Cached and ends where a fresh run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import REPO, write_idx
from tests.pipeline.test_dvc import TINY
from tests.test_layout import project_copy

STAGES = ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]


def tiny_data(root: Path) -> Path:
    """A Fashion-MNIST-shaped dataset small enough that the flow's own overhead dominates."""
    write_idx(root, "train", 200, seed=1)
    write_idx(root, "t10k", 50, seed=2)
    return root


def tiny_params(data_root: str) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["data"].update({"name": "fashion-mnist", "root": data_root})
    return params


def cli_env(code: Path, **extra: str) -> dict[str, str]:
    """The environment of `python -m flows.cli` on the code snapshot `code`, tracking off."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env.update({"PYTHONPATH": str(code), "NETADAPT_TRACKING": "off", "DVC_NO_ANALYTICS": "1",
                "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]})
    env.update(extra)
    return env


def cli(code: Path, cwd: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=cli_env(code, **env),
                          capture_output=True, text=True, timeout=timeout, start_new_session=True)
    assert done.returncode == 0, f"netadapt {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def result(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Path:
    """The project's code as it is now: runs see the same code whatever is edited meanwhile."""
    return project_copy(tmp_path_factory.mktemp("code"))


@pytest.mark.slow
def test_a_flow_then_a_served_run_share_the_project_cache(code: Path, tmp_path: Path):
    data = tiny_data(tmp_path / "data")
    for name in ("run", "fresh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.yaml").write_text(yaml.safe_dump(tiny_params(str(data))))
    run = tmp_path / "run"

    first = result(cli(code, run, "flow", "--params", "tiny.yaml", "--json"))
    assert first["states"] == dict.fromkeys(STAGES, "Completed")
    assert first["metrics"]["search"]["iteration_states"] and \
        set(first["metrics"]["search"]["iteration_states"]) == {"Completed"}
    assert (run / ".prefect" / "storage").is_dir(), "results persisted under the project's .prefect/"
    assert {p.parent.name for p in (run / "artifacts" / ".stamps").glob("*/*.json")} == set(STAGES)
    assert first["dvc"] == {"committed": [], "skipped": "not a DVC project"}

    # The deployment, served from the project (its own local server on a free loopback port), runs
    # with the project's PREFECT_HOME: the iterations the first run computed come from its cache.
    tighter = round(0.9 * first["metrics"]["search"]["resource_estimated"]
                    / first["metrics"]["search"]["base_resource"], 4)
    done = cli(code, run, "serve", "--once", "--port", "0", "--name", "test", "--params", "tiny.yaml",
               "-S", f"search.budget={tighter}", "--json")
    served = result(done)
    assert {k: served["states"][k] for k in ("prepare", "profile", "supernet")} == dict.fromkeys(
        ("prepare", "profile", "supernet"), "Cached")
    iterations = served["metrics"]["search"]["iteration_states"]
    done_before = len(first["metrics"]["search"]["iteration_states"])
    assert iterations[:done_before - 1] == ["Cached"] * (done_before - 1), "shared iterations come from the cache"
    assert "Completed" in iterations[done_before - 1:], "the new iterations ran"
    assert served["metrics"]["search"]["candidates_cached"] >= 1
    server_log = (run / ".prefect" / "server.log").read_text()
    assert "telemetry" not in server_log.lower()
    port = next(line.split("127.0.0.1:")[1].split()[0] for line in done.stderr.splitlines()
                if line.startswith("netadapt: Prefect server at"))
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "server" in p.info["cmdline"]
                and port in p.info["cmdline"]], "the server was stopped"

    # A fresh run with the tighter budget, with the console a user sees: a summary line per stage.
    fresh = cli(code, tmp_path / "fresh", "flow", "--params", "tiny.yaml", "-S", f"search.budget={tighter}",
                PREFECT_HOME=str(tmp_path / "fresh-home"))
    lines = fresh.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [[stage, "Completed"] for stage in STAGES]
    assert "test_acc=" in lines[-1] and "{" not in fresh.stdout
    assert "Finished in state" not in fresh.stderr, "Prefect's per-task lines stay in the UI"
    assert "search: iteration 0" in fresh.stderr, "the library's progress lines reach the console"
    arch = lambda d: json.loads((d / "artifacts" / "search" / "arch.json").read_text())
    assert arch(run) == arch(tmp_path / "fresh")
    fresh_search = json.loads((tmp_path / "fresh" / "metrics" / "search.json").read_text())
    for key in ("iterations", "resource_estimated", "holdout_acc"):
        assert served["metrics"]["search"][key] == fresh_search[key]


def test_content_digests_follow_content_not_location(tmp_path: Path):
    from netadapt.io import content_digest

    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "x.bin").write_bytes(b"same")
    assert content_digest([tmp_path / "a"]) == content_digest([tmp_path / "b"])
    (tmp_path / "b" / "sub" / "x.bin").write_bytes(b"other")
    assert content_digest([tmp_path / "a"]) != content_digest([tmp_path / "b"])
    assert content_digest([tmp_path / "missing"]) != content_digest([tmp_path / "a"])
