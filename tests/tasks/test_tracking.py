"""MLflow run tree of a pipeline run through the stage CLI, read back with MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from tests.conftest import REPO, write_idx
from tests.netadapt.test_stages import TINY

STAGES = ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]


@pytest.mark.slow
def test_a_pipeline_is_one_parent_run_with_a_child_per_stage(tmp_path: Path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("NETADAPT_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NETADAPT_PIPELINE_ID", "pipeline-under-test")
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative to the working directory
    write_idx(tmp_path / "data", "train", 300, seed=1)
    write_idx(tmp_path / "data", "t10k", 100, seed=2)
    args = ["--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist", "-S", f"data.root={tmp_path / 'data'}", *TINY,
            "-S", "tracking.experiment=tracking-test", "--artifacts", str(tmp_path / "a"),
            "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]
    for stage in STAGES:
        assert main([stage, *args]) == 0, stage

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracking-test")
    runs = client.search_runs([experiment.experiment_id], "tags.`netadapt.pipeline_id` = 'pipeline-under-test'")
    parents = [r for r in runs if r.data.tags.get("netadapt.role") == "pipeline"]
    children = {r.data.tags["netadapt.stage"]: r for r in runs if "netadapt.stage" in r.data.tags}
    assert len(parents) == 1 and set(children) == set(STAGES)
    parent = parents[0]
    assert parent.data.params["search.budget"] == "0.5" and parent.info.status == "FINISHED"
    for run in children.values():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id

    search = children["search"]
    assert "search.budget" in search.data.params and "finetune.epochs" not in search.data.params
    assert search.data.metrics["iterations"] >= 1
    steps = client.get_metric_history(search.info.run_id, "iteration_holdout_acc")
    assert [m.step for m in steps] == list(range(int(search.data.metrics["iterations"])))
    assert len(client.get_metric_history(children["supernet"].info.run_id, "epoch_loss")) == 2

    def artifacts(run, folder):
        return {Path(f.path).name for f in client.list_artifacts(run.info.run_id, folder)}

    assert {"lut.csv", "lut.json"} <= artifacts(children["profile"], "lookup_table")
    assert "fidelity.png" in artifacts(children["profile"], "plots")
    assert {"history.csv", "arch.json"} <= artifacts(children["search"], "search")
    assert "search.png" in artifacts(children["search"], "plots")
    assert "model.onnx" in artifacts(children["finetune"], "onnx")
    versions = client.search_model_versions("name = 'netadapt-fashion-mnist-plain_cnn'")
    assert len(versions) == 1 and versions[0].run_id == children["finetune"].info.run_id
    assert children["evaluate"].data.metrics["test_acc"] >= 0
