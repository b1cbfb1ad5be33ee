"""The `netadapt` MLflow server app (tracking/app.py): MLflow finds it by its `--app-name`, and it serves
MLflow's UI page with the script that makes the model-training view a fresh browser's default, and
every other response as MLflow does. The browser's side is tests/tracking/test_ui.py's."""

from __future__ import annotations

import pytest
from flask import Flask
from mlflow import server as mlflow_server

from netadapt_tracking import app as netadapt_app
from tests.conftest import REPO
from tests.tracking.conftest import APP_NAME, declared_app

OTHERS = ("/health", "/version", "/static-files/favicon.ico", "/static-files/manifest.json")


def test_mlflow_finds_the_app_by_its_name(mlflow_app_path: list[str], monkeypatch: pytest.MonkeyPatch):
    assert declared_app() == "netadapt_tracking.app:create_app"
    for folder in reversed(mlflow_app_path):
        monkeypatch.syspath_prepend(folder)
    assert mlflow_server._find_app(APP_NAME) == declared_app()
    assert mlflow_server._is_factory(declared_app())  # uvicorn gets `--factory`, gunicorn `create_app()`


def test_the_commands_the_project_prints_serve_the_app():
    for where in ("Makefile", "docs/mlflow.md", "flows/reporting.py"):
        commands = [line for line in (REPO / where).read_text().splitlines() if "mlflow ui --" in line]
        assert commands and all("mlflow ui --app-name netadapt --" in line for line in commands), where


@pytest.fixture
def mlflow_app(monkeypatch: pytest.MonkeyPatch) -> Flask:
    """MLflow's Flask app, its views and extensions restored after the test (`create_app` changes them)."""
    app = mlflow_server.app
    monkeypatch.setattr(app, "view_functions", dict(app.view_functions))
    monkeypatch.setattr(app, "extensions", dict(app.extensions))
    monkeypatch.delenv("_MLFLOW_SGI_NAME", raising=False)
    return app


def test_the_ui_page_sets_the_training_view_before_mlflows_scripts(mlflow_app: Flask):
    plain_client = mlflow_app.test_client()
    plain_page = plain_client.get("/")
    plain = {path: plain_client.get(path) for path in OTHERS}
    bundle = plain_page.data.split(b'src="')[1].split(b'"')[0].decode()
    plain["/" + bundle] = plain_client.get("/" + bundle)

    assert netadapt_app.create_app(mlflow_app) is mlflow_app  # the Flask app itself outside uvicorn
    assert netadapt_app.create_app(mlflow_app) is mlflow_app  # a second build changes nothing more
    client = mlflow_app.test_client()
    for path in ("/", "/static-files/index.html"):
        page = client.get(path)
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert page.data.count(netadapt_app.TRAINING_DEFAULT) == 1
        assert page.data.index(netadapt_app.TRAINING_DEFAULT) < page.data.index(b"<script defer")
        assert page.data.replace(netadapt_app.TRAINING_DEFAULT, b"") == plain_page.data
    assert b'localStorage.setItem("mlflow.workflowType_v1","\\"machine_learning\\"")' in netadapt_app.TRAINING_DEFAULT
    assert client.get("/").headers["Cache-Control"] == plain_page.headers["Cache-Control"]

    # A browser holding MLflow's plain page gets this one; one holding this one is told it is current.
    assert client.get("/", headers={"If-None-Match": plain_page.headers["ETag"]}).status_code == 200
    assert client.get("/", headers={"If-None-Match": client.get("/").headers["ETag"]}).status_code == 304

    for path, answer in plain.items():
        now = client.get(path)
        assert (now.status_code, now.data, now.headers.get("ETag")) == \
            (answer.status_code, answer.data, answer.headers.get("ETag")), path


def test_under_uvicorn_it_is_mlflows_fastapi_app(mlflow_app: Flask, monkeypatch: pytest.MonkeyPatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    monkeypatch.setenv("_MLFLOW_SGI_NAME", "uvicorn")  # what `mlflow server` sets for its uvicorn workers
    app = netadapt_app.create_app(mlflow_app)
    assert isinstance(app, FastAPI)
    page = TestClient(app, base_url="http://localhost").get("/")
    assert page.status_code == 200 and page.content.count(netadapt_app.TRAINING_DEFAULT) == 1, page.text[:300]
