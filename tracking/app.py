"""MLflow's server with one change, so that a browser that has not chosen a view opens experiments in
the model-training view: `mlflow ui --app-name netadapt` (or `mlflow server --app-name netadapt`).

Why a server app: MLflow 3.17's UI picks an experiment's view (GenAI overview or the "Model training"
runs table) from the browser's local storage `mlflow.workflowType_v1` (a JSON string, GenAI while
absent), and nothing on the server or the experiment sets a default (`netadapt_tracking.ui`). The
one hook MLflow offers is `--app-name NAME`, an entry point of group `mlflow.app` (this project's:
`netadapt`, in pyproject.toml) naming an app or an app factory; MLflow's CLI looks it up with
`importlib.metadata`, hands `module:function` to uvicorn with `--factory` (or to gunicorn/waitress as
`module:function()`), and the factory returns MLflow's Flask app wrapped in MLflow's FastAPI app
under uvicorn, the Flask app itself otherwise (as MLflow's own `basic-auth` app does).

The change: the UI's page (`index.html`, served at `/` and as `/static-files/index.html`) carries a
small script, before MLflow's own, that stores "machine_learning" in `mlflow.workflowType_v1` where
the key is absent or empty (what the bundle reads as "not chosen"). A reviewer who picked GenAI in the
sidebar's switch keeps it; every other response is MLflow's. The page gets its own ETag (of the page
with the script), so a browser that cached MLflow's plain page fetches this one.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask, Response, request
from mlflow.environment_variables import _MLFLOW_SGI_NAME
from mlflow.server import app as mlflow_app

from netadapt_tracking.ui import WORKFLOW

WORKFLOW_KEY = "mlflow.workflowType_v1"  # the bundle's useLocalStorage({key: "mlflow.workflowType", version: 1})
STATIC_MAX_AGE = 2419200  # seconds: what MLflow's /static-files/ route gives its files (4 weeks)
_KEY, _VALUE = json.dumps(WORKFLOW_KEY), json.dumps(json.dumps(WORKFLOW["workflowType"]))
TRAINING_DEFAULT = (f"<script>try{{if(!localStorage.getItem({_KEY}))localStorage.setItem({_KEY},{_VALUE})}}"
                    "catch(e){}</script>").encode()


def with_training_default(page: bytes) -> bytes:
    """The UI page with `TRAINING_DEFAULT` before its first script (the page unchanged if it has none)."""
    at = page.find(b"<script")
    return page if at < 0 else page[:at] + TRAINING_DEFAULT + page[at:]


def _ui_page(app: Flask, max_age: int | None) -> Response | None:
    """MLflow's UI page with the training default, cached as MLflow caches it; None without a built UI."""
    index = Path(app.static_folder or "", "index.html")
    if not index.is_file():
        return None
    response = Response(with_training_default(index.read_bytes()), mimetype="text/html")
    if max_age is None:
        response.cache_control.no_cache = True
    else:
        response.cache_control.public, response.cache_control.max_age = True, max_age
    response.add_etag()
    return response.make_conditional(request)


def create_app(app: Flask = mlflow_app):
    """The `netadapt` MLflow server app: `app` (MLflow's) serving its UI page with the training
    default; under uvicorn wrapped in MLflow's FastAPI app, as `mlflow server` serves it."""
    if not app.extensions.get("netadapt_training_default"):  # once per app, however often it is built
        serve, serve_static_file = app.view_functions["serve"], app.view_functions["serve_static_file"]

        def ui_page() -> Response:
            page = _ui_page(app, None)
            return serve() if page is None else page

        def static_file(path: str) -> Response:
            page = _ui_page(app, STATIC_MAX_AGE) if path == "index.html" else None
            return serve_static_file(path) if page is None else page

        app.view_functions["serve"], app.view_functions["serve_static_file"] = ui_page, static_file
        app.extensions["netadapt_training_default"] = True
    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app
