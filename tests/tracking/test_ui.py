"""The MLflow UI opens the project's experiment in the model-training view with the verdict and the
final network's figures as columns. MLflow 3.17 picks the view from the browser's workflow switch
(default: GenAI) or the address's `workflowType`, not from the experiment, so the addresses the
project prints carry it (`netadapt_tracking.ui`), the project's server app (`--app-name netadapt`,
`netadapt_tracking.app`) makes model training a fresh browser's choice, and the experiment holds the
saved runs view the addresses open. The browser test reads the pages headless Chromium renders from
`mlflow server --app-name netadapt`, and clicks through MLflow's own pages as docs/mlflow.md tells a
reviewer to (`tests/tracking/browser.py`)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from netadapt.layout import RESULT_METRICS
from netadapt_tracking import ui
from netadapt_tracking.contents import VERDICT_TAG
from netadapt_tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, open_store
from tests.tracking.browser import Browser
from tests.tracking.conftest import mlflow_state_restored

VIEW_TAG = ui.VIEW_TAG_PREFIX + ui.RESULTS_VIEW


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> str:
    """A SQLite store under tmp_path (MLflow's default artifact root is relative to the working directory)."""
    monkeypatch.chdir(tmp_path)
    with mlflow_state_restored():
        yield f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_the_experiment_holds_the_projects_runs_view(store: str):
    client, experiment_id = open_store(store, "netadapt")
    tags = client.get_experiment(experiment_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    view = json.loads(tags[VIEW_TAG])
    assert view["name"] == ui.RESULTS_VIEW_NAME and isinstance(view["createdAt"], int)
    columns = json.loads(view["state"])["selectedColumns"]
    assert columns == [f"tags.`{VERDICT_TAG}`", *(f"metrics.`{m}`" for m in RESULT_METRICS), "metrics.`total_seconds`"]

    # A view the user edited (the UI's "Override saved view") is theirs: opening the store keeps it.
    client.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps({**view, "state": "{}"}))
    assert open_store(store, "netadapt")[1] == experiment_id
    assert json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG])["state"] == "{}"


def test_the_printed_addresses_open_the_training_view():
    assert ui.experiment_url("http://h:5000/", "3") == \
        "http://h:5000/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=netadapt-results"
    assert ui.run_url("http://h:5000", "3", "abc") == \
        "http://h:5000/#/experiments/3/runs/abc/overview?workflowType=machine_learning"
    assert ui.ui_base("https://mlflow.example/") == "https://mlflow.example"
    assert ui.ui_base("sqlite:///mlflow.db") == ui.LOCAL_UI


def page_text(chromium: str, url: str, want: str, tries: int = 3) -> str:
    """The text of `url` as headless Chromium renders it, scripts run (tried again while `want` is missing:
    a page still loading on a busy machine)."""
    for _ in range(tries):
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                              "--virtual-time-budget=20000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=180).stdout
        text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))
        if want in text:
            break
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(store: str, tmp_path: Path, mlflow_app_path: list[str]):
    """`mlflow server --app-name netadapt` (the project's app: tests/tracking/conftest.py says where from)
    on a free loopback port over `store`, telemetry off; its base address."""
    port = free_port()
    exe = Path(sys.executable).with_name("mlflow")
    python_path = os.pathsep.join([*mlflow_app_path, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONPATH": python_path}
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([str(exe), "server", "--app-name", "netadapt", "--backend-store-uri", store,
                                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                                   "--default-artifact-root", str(tmp_path / "mlartifacts")],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@pytest.mark.slow
def test_the_experiment_opens_on_the_training_runs_with_the_headline_columns(chromium: str, store: str,
                                                                            mlflow_server: str):
    client, experiment_id = open_store(store, "netadapt")  # created the project's way
    run = client.create_run(experiment_id, run_name="latency ≤ 50% · MET · plain_cnn · fashion-mnist · cli",
                            tags={VERDICT_TAG: "MET"})
    for key, value in {"test_acc": 0.8125, "latency_ratio": 0.4375, "total_seconds": 12.5}.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)

    runs = page_text(chromium, ui.experiment_url(mlflow_server, experiment_id), "latency_ratio")
    assert "Token Usage" not in runs and "Detect Issues" not in runs, "not the GenAI overview"
    assert "netadapt Runs" in runs and "latency ≤ 50% · MET" in runs, runs[:1500]
    for column in ("test_acc", "latency_ratio", "total_seconds", "0.8125", "0.4375", ui.RESULTS_VIEW_NAME):
        assert column in runs, (column, runs[:1500])

    overview = page_text(chromium, ui.run_url(mlflow_server, experiment_id, run.info.run_id), "About this run")
    assert "netadapt Runs" in overview and "Evaluations" not in overview, overview[:1500]
    assert "About this run" in overview and "0.8125" in overview

    reviewer_clicks_through_mlflows_own_pages(chromium, mlflow_server, experiment_id)


def reviewer_clicks_through_mlflows_own_pages(chromium: str, base: str, experiment_id: str) -> None:
    """What docs/mlflow.md tells a reviewer, in a fresh browser: MLflow's home -> the experiment in its
    list lands on the runs table (the app stored model training, `mlflow.workflowType_v1`, as the
    page loaded); a reviewer who then picks *GenAI* in the sidebar's switch keeps it: after a fresh
    load of MLflow's home page the same click lands on the GenAI overview."""
    runs_table = "document.body.innerText.includes('latency ≤ 50% · MET')"
    genai = "document.body.innerText.includes('Token Usage')"
    stored = "localStorage['mlflow.workflowType_v1']"

    def home_then_experiment() -> str:
        browser.open("about:blank")  # a new page load (a new hash alone keeps the page and its scripts)
        browser.open(f"{base}/#/")
        browser.click("a[data-testid=experiment-list-item-link]", "netadapt")  # MLflow's experiment list
        browser.wait_for(f"{runs_table} || {genai}")
        return browser.location()

    with Browser(chromium) as browser:
        landed = home_then_experiment()
        assert f"/experiments/{experiment_id}/runs?workflowType=machine_learning" in landed, landed
        assert "Token Usage" not in browser.text(), "not the GenAI overview"
        assert browser.js(stored) == '"machine_learning"'

        browser.click("[role=button]", "GenAI")  # the sidebar's workflow switch: the reviewer's choice
        browser.wait_for(genai)
        assert browser.js(stored) == '"genai"'
        landed = home_then_experiment()
        assert f"/experiments/{experiment_id}/overview" in landed and "workflowType=genai" in landed, landed
        assert browser.js(stored) == '"genai"'
