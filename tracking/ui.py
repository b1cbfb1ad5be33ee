"""How the MLflow UI shows the project's experiment: the addresses the project prints, and the runs
view it stores in the experiment.

What MLflow 3.17's UI reads to choose an experiment's view is not the experiment, nor the server: it
is the browser's workflow switch (the sidebar's "GenAI | Model training"), kept in the browser's
local storage (`mlflow.workflowType_v1`, default `genai`, so a fresh browser lands on the GenAI
overview of traces and token usage) and overridden by the page address's `workflowType` query
parameter, which is not remembered. Its bundle reads the experiment tag `mlflow.experimentKind` only
behind a feature flag compiled to "on" (`()=>!0`) that derives the kind from the switch instead;
its experiment list links to the bare `#/experiments/<id>`; its `server-info` answer has no default
view; only the switch (and the demo launcher) writes the key. So the project serves the UI with its
own MLflow server app, `mlflow ui --app-name netadapt` (`netadapt_tracking.app`), whose page stores
model training in that key where the browser has made no choice; and every address the project
prints carries `workflowType=machine_learning` (`experiment_url`, `run_url`), which opens the
training view from any MLflow server. The tag (`store.EXPERIMENT_KIND_TAG`) is still set: earlier
3.x releases read it.

A saved runs view is an experiment tag `mlflow.sharedViewState.<id>` holding `{name, createdAt,
state}` (the state: the runs table's columns, as JSON text); the runs tab lists it under *Views*,
and `viewStateShareKey=<id>` opens it. The project stores one (`RESULTS_VIEW`): the verdict and the
final network's figures as columns (`netadapt.layout.RESULT_METRICS`, `total_seconds`).
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from netadapt.layout import RESULT_METRICS
from netadapt_tracking.contents import VERDICT_TAG

WORKFLOW = {"workflowType": "machine_learning"}  # the UI's model-training view (its default is GenAI's)
VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # MLflow 3.17's saved runs views: one experiment tag each
RESULTS_VIEW, RESULTS_VIEW_NAME = "netadapt-results", "netadapt: verdict and final network"
RESULT_COLUMNS = (f"tags.`{VERDICT_TAG}`", *(f"metrics.`{m}`" for m in (*RESULT_METRICS, "total_seconds")))
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui --app-name netadapt` serves a local store by default


def ui_base(tracking_uri: str) -> str:
    """The UI's address for a tracking URI: the tracking server itself, or `mlflow ui`'s default
    address for a local store (sqlite, files)."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the model-training view, with the project's columns."""
    query = urlencode({**WORKFLOW, "viewStateShareKey": RESULTS_VIEW})
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """A run's overview page (metrics, params, tags) in the model-training view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/overview?{urlencode(WORKFLOW)}"


def results_view_tag(now_ms: int | None = None) -> tuple[str, str]:
    """The experiment tag (key, value) of the project's saved runs view (`RESULTS_VIEW`)."""
    state = {"selectedColumns": list(RESULT_COLUMNS)}  # the rest (sort: newest first, filters) as MLflow's defaults
    created = int(time.time() * 1000) if now_ms is None else now_ms
    value = {"name": RESULTS_VIEW_NAME, "createdAt": created, "updatedAt": created, "state": json.dumps(state)}
    return VIEW_TAG_PREFIX + RESULTS_VIEW, json.dumps(value)
