"""Where MLflow finds the project's server app (`--app-name netadapt`, tracking/app.py), and MLflow's
process-wide state put back after a test that opened a store."""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO

APP_GROUP, APP_NAME = "mlflow.app", "netadapt"


def declared_app() -> str:
    """The `netadapt` MLflow app pyproject.toml declares (`module:factory`)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["entry-points"][APP_GROUP][APP_NAME]


@pytest.fixture
def mlflow_app_path(tmp_path: Path) -> list[str]:
    """Folders for sys.path (or PYTHONPATH) under which MLflow finds the `netadapt` app in this checkout:
    the repository (its `netadapt_tracking` link) and, where this venv's install of the project predates
    the entry point (installed before pyproject declared it; `make` reinstalls on a pyproject change),
    a minimal dist-info in tmp_path declaring pyproject's. Installed: the real entry point is used."""
    if any(e.name == APP_NAME for e in importlib.metadata.entry_points(group=APP_GROUP)):
        return [str(REPO)]
    dist = tmp_path / "entry-points" / "netadapt_app_test-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: netadapt-app-test\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[{APP_GROUP}]\n{APP_NAME} = {declared_app()}\n")
    return [str(REPO), str(dist.parent)]


@contextmanager
def mlflow_state_restored() -> Iterator[None]:
    """After the block: MLflow's tracking URI and active experiment back to the environment's (opening a
    store sets them process-wide, and `mlflow.set_experiment` exports MLFLOW_EXPERIMENT_ID)."""
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    try:
        yield
    finally:
        if "mlflow" in sys.modules:
            sys.modules["mlflow"].set_tracking_uri(None)
            sys.modules["mlflow.tracking.fluent"]._active_experiment_id = None
        if experiment_id is None:
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        else:
            os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
