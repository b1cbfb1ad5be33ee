"""MLflow run tree of a pipeline run through the stage CLI, read back with MlflowClient."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from flows.cli import main
from netadapt.config import parse_config
from netadapt.finetune import load_network, save_network
from netadapt.stages import Paths
from tasks.tracking import log_stage
from tests.conftest import REPO, write_idx
from tests.netadapt.test_finetune import SPEC, seeded_batch, tiny_network
from tests.netadapt.test_stages import TINY

STAGES = ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]


@pytest.fixture
def tracking_store(tmp_path: Path, monkeypatch) -> Iterator[str]:
    """Tracking on, into a SQLite store and artifact root under tmp_path; returns the tracking URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("NETADAPT_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NETADAPT_PIPELINE_ID", "pipeline-under-test")
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative to the working directory
    yield uri
    if "mlflow" in sys.modules:  # log_stage set it process-wide: back to the environment's
        sys.modules["mlflow"].set_tracking_uri(None)


@pytest.mark.slow
def test_a_pipeline_is_one_parent_run_with_a_child_per_stage(tmp_path: Path, tracking_store: str):
    from mlflow.tracking import MlflowClient

    uri = tracking_store
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


def test_the_registered_model_scores_a_batch_of_64_like_pytorch(tmp_path: Path, tracking_store: str):
    """The finetune stage's logged model: a tensor signature, served by pyfunc on any batch size."""
    import mlflow

    cfg = parse_config({"model": {"name": SPEC.name}, "tracking": {"experiment": "tracking-test"}})
    paths = Paths(tmp_path / "a", tmp_path / "m", tmp_path / "p")
    model, arch = tiny_network()
    save_network(paths.final, model, arch, cfg.section_digest("finetune"))
    assert log_stage("finetune", cfg, paths, {"epochs": 1}) is not None

    name = f"netadapt-{cfg.data.name}-{SPEC.name}"
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    signature = loaded.metadata.signature
    assert signature is not None and signature.inputs is not None and signature.outputs is not None
    [inputs], [outputs] = signature.inputs.inputs, signature.outputs.inputs
    assert (inputs.type, inputs.shape) == (np.dtype(np.float32), (-1, *SPEC.input_shape))
    assert (outputs.type, outputs.shape) == (np.dtype(np.float32), (-1, SPEC.num_classes))

    x = seeded_batch(64)
    got = np.asarray(loaded.predict(x))
    with torch.no_grad():
        expected = load_network(paths.final)[0](torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape == (64, SPEC.num_classes)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
