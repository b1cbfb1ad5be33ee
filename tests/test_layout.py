"""Project-wide invariants: the library stays pure, and the DVC pipeline runs as `make run` runs it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

WORKFLOW_TOOLS = {"prefect", "dvc", "mlflow"}


def test_library_does_not_import_workflow_tools():
    offenders = []
    for path in (REPO / "netadapt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in WORKFLOW_TOOLS]
    assert not offenders


def project_copy(dest: Path) -> Path:
    """The files a fresh clone has (tracked + untracked-not-ignored), in a new git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("metrics/", "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def tool_env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1"}


def test_dvc_repro_prepares_the_embedded_dataset(tmp_path: Path):
    repo = project_copy(tmp_path / "repo")
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    subprocess.run(dvc + ["repro", "-q", "prepare"], cwd=repo, env=tool_env(), check=True)
    metrics = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert (metrics["train"], metrics["holdout"], metrics["test"]) == (7200, 800, 2000)
    status = subprocess.run(dvc + ["status", "--json", "prepare"], cwd=repo, env=tool_env(), check=True,
                            capture_output=True, text=True).stdout
    assert "prepare" not in json.loads(status), "prepare is up to date after repro"


@pytest.fixture(scope="module")
def module_scoped_state() -> dict:
    """What a module-scoped fixture (set up before function-scoped autouse fixtures) sees."""
    from tasks.tracking import enabled, tracking_uri

    return {"tracking": enabled(), "mlflow": tracking_uri(), "prefect": os.environ.get("PREFECT_HOME", "")}


def test_tests_never_touch_the_projects_tracking_or_flow_state(module_scoped_state: dict):
    """`make test` once wrote three runs into the user's mlflow.db from a module-scoped fixture."""
    assert module_scoped_state["tracking"] is False
    mlflow_db = Path(module_scoped_state["mlflow"].removeprefix("sqlite:///"))
    for path in (mlflow_db, Path(module_scoped_state["prefect"])):
        assert path.is_absolute() and REPO not in path.parents, path
