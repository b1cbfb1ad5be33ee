"""What the Prefect UI links to and tabulates: the MLflow run's overview page in the model-training
view (MLflow 3.17 opens a link without `workflowType` in its GenAI view, under "Evaluations"), and the
search trajectory with each iteration's wall time, not its candidates' seconds summed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from netadapt.config import parse_config
from netadapt.history import COLUMNS
from netadapt.layout import Paths
from netadapt_flows import reporting


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeClient:
    """An MLflow client whose experiment 7 holds the pipeline's parent run r1."""

    def get_experiment_by_name(self, name):
        return Obj(experiment_id="7")

    def search_runs(self, ids, filter_string, max_results):
        assert ids == ["7"] and "'prefect-x'" in filter_string
        return [Obj(info=Obj(run_id="r1"))]


def test_the_mlflow_link_opens_the_runs_overview_in_the_training_view(monkeypatch):
    monkeypatch.setenv("NETADAPT_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:8080/")
    link = reporting.mlflow_pipeline_link("prefect-x", "netadapt", FakeClient())
    url = urlsplit(link)
    assert link.startswith("http://mlflow.example:8080/#/experiments/7/runs/r1/overview?")
    assert parse_qs(urlsplit(url.fragment).query) == {"workflowType": ["machine_learning"]}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # a local store: `mlflow ui`'s address
    assert reporting.mlflow_pipeline_link("prefect-x", "netadapt", FakeClient()).startswith(
        "http://127.0.0.1:5000/#/experiments/7/runs/r1/overview?workflowType=machine_learning")


def test_the_summary_links_the_mlflow_run():
    cfg = parse_config({})
    result = {"states": {}, "metrics": {}}
    assert "MLflow" not in reporting.summary_markdown(result, cfg)
    markdown = reporting.summary_markdown(result, cfg, "http://127.0.0.1:5000/#/experiments/7/runs/r1/overview")
    assert markdown.rstrip().endswith("(http://127.0.0.1:5000/#/experiments/7/runs/r1/overview)")


def write_history(folder: Path) -> None:
    """Iteration -1 (the base) and iteration 0 of three candidates of 60 s each (run side by side)."""
    rows = [dict(iteration=-1, candidate=0, resource_estimated=10.0, holdout_acc=0.9, seconds=50.0, kept=True,
                 target=10.0, reduction=0.0, halvings=0, clipped=False, start="{}", arch="{}")]
    rows += [dict(iteration=0, candidate=j, resource_estimated=8.0 - j, holdout_acc=0.8 - j / 10, seconds=60.0,
                  kept=j == 0, target=8.0, reduction=2.0, halvings=0, clipped=False, start="{}", arch="{}")
             for j in range(3)]
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / "history.csv", index=False)


def test_the_trajectory_gives_each_iterations_wall_time(tmp_path: Path):
    p = Paths(tmp_path / "a", tmp_path / "m", tmp_path / "p")
    write_history(p.search)
    rows = reporting.trajectory_rows(p, {"iteration_seconds": {"-1": 51.5, "0": 63.25}})
    assert [(r["iteration"], r["candidates"], r["seconds"]) for r in rows] == [(-1, 1, 51.5), (0, 3, 63.25)]
    # The search stage was up to date (Cached): nothing ran in this flow run, no wall time to give.
    assert [r["seconds"] for r in reporting.trajectory_rows(p, {"iterations": 1})] == [None, None]
