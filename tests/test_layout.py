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

WORKFLOW_TOOLS = {"prefect", "prefect_dask", "dask", "distributed", "dvc", "mlflow"}


def test_library_does_not_import_workflow_tools():
    offenders = []
    for path in (REPO / "netadapt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in WORKFLOW_TOOLS]
    assert not offenders


# The import name of each folder that pyproject.toml maps to another name (`[tool.setuptools.package-dir]`).
MAPPED_PACKAGES = {"netadapt_flows": "flows", "netadapt_tasks": "tasks", "netadapt_tracking": "tracking"}


def project_copy(dest: Path) -> Path:
    """The files a fresh clone has (tracked + untracked-not-ignored), in a new git repository.

    The repository tracks a link per mapped package (`netadapt_flows -> flows`, ...), so a process
    with a copy as its working directory (`python -m`, DVC's cmds, a `dvc exp run --temp` copy) or on
    PYTHONPATH imports the copy's code, not the editable install's checkout (whose finder is consulted
    after `sys.path`)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        if name.startswith(("metrics/", "dvc.lock")):
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_symlink():
            (dest / name).symlink_to(os.readlink(REPO / name))
        elif (REPO / name).is_file():
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
    from netadapt_tracking import enabled, tracking_uri

    return {"tracking": enabled(), "mlflow": tracking_uri(), "prefect": os.environ.get("PREFECT_HOME", "")}


def test_tests_never_touch_the_projects_tracking_or_flow_state(module_scoped_state: dict):
    """`make test` once wrote three runs into the user's mlflow.db from a module-scoped fixture."""
    assert module_scoped_state["tracking"] is False
    mlflow_db = Path(module_scoped_state["mlflow"].removeprefix("sqlite:///"))
    for path in (mlflow_db, Path(module_scoped_state["prefect"])):
        assert path.is_absolute() and REPO not in path.parents, path


def test_the_distribution_installs_only_project_specific_top_level_packages():
    """`flows/` and `tasks/` install as `netadapt_flows` / `netadapt_tasks` (PyPI has a `tasks`);
    the packages listed in pyproject.toml are every package folder of the library."""
    import tomllib
    from importlib.metadata import distribution

    dist = distribution("netadapt")
    assert set(dist.read_text("top_level.txt").split()) == {"netadapt", *MAPPED_PACKAGES}
    assert {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"} == {
        "netadapt": "netadapt_flows.cli:main"}
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == MAPPED_PACKAGES
    library = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "netadapt").rglob("__init__.py")}
    assert set(setuptools["packages"]) == library | set(MAPPED_PACKAGES)


IMPORTS = ("import importlib.util, json, netadapt, netadapt_flows.cli, netadapt_tasks, netadapt_tracking\n"
           "found = {n: getattr(importlib.util.find_spec(n), 'origin', None) for n in ('flows', 'tasks', 'tracking')}\n"
           "print(json.dumps({'netadapt': netadapt.__file__, 'netadapt_flows': netadapt_flows.cli.__file__,\n"
           "                  'netadapt_tasks': netadapt_tasks.__file__, 'netadapt_tracking': netadapt_tracking.__file__,\n"
           "                  **found}))")


def imported_from(cwd: Path, pythonpath: Path | None = None) -> dict[str, str | None]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_flows_and_tasks_are_no_top_level_names_outside_the_repository(tmp_path: Path):
    found = imported_from(tmp_path)
    assert Path(found["netadapt_flows"]) == REPO / "flows" / "cli.py"
    assert Path(found["netadapt_tasks"]) == REPO / "tasks" / "__init__.py"
    assert Path(found["netadapt_tracking"]) == REPO / "tracking" / "__init__.py"
    assert Path(found["netadapt"]).parent == REPO / "netadapt"
    for name in ("flows", "tasks", "tracking"):  # not ours: absent, or another distribution's
        assert found[name] is None or REPO not in Path(found[name]).parents, (name, found[name])


def test_a_project_copy_imports_its_own_code(tmp_path: Path):
    """A copy run from its folder (as DVC runs a stage) or put on PYTHONPATH (as the flow tests
    freeze the code) imports the copy's packages, not the editable install's checkout."""
    copy = project_copy(tmp_path / "copy")
    (tmp_path / "elsewhere").mkdir()
    for found in (imported_from(copy), imported_from(tmp_path / "elsewhere", pythonpath=copy)):
        for name in ("netadapt", "netadapt_flows", "netadapt_tasks", "netadapt_tracking"):
            assert copy in Path(found[name]).parents, (name, found[name])
    for package, folder in MAPPED_PACKAGES.items():  # tracked, so every clone and copy has them
        assert os.readlink(REPO / package) == folder
