"""MLflow with two named devices, through the stage CLI: a child run per device stage, named
`<stage>@<device>` and tagged `netadapt.device`, and one registered model per device,
`netadapt-<dataset>-<model>-<device>`, its version tagged by that device's evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest

from netadapt_flows.cli import main
from tests.conftest import REPO, write_idx
from tests.presets import TINY_ARGS as TINY
from tests.tracking.test_tracking import tracking_store  # noqa: F401 - the fixture

DEVICES = ["-S", "devices.phone.budget=0.8", "-S", "devices.phone.profile={warmup: 2}",
           "-S", "devices.box.budget=0.6", "-S", "devices.box.profile={}"]


@pytest.mark.slow
def test_each_device_has_its_runs_and_its_registered_model(tmp_path: Path, tracking_store: str):  # noqa: F811
    from mlflow.tracking import MlflowClient

    write_idx(tmp_path / "data", "train", 200, seed=1)
    write_idx(tmp_path / "data", "t10k", 50, seed=2)
    args = ["--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist", "-S",
            f"data.root={tmp_path / 'data'}", *TINY, *DEVICES, "-S", "tracking.experiment=devices-test",
            "--artifacts", str(tmp_path / "a"), "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]
    for stage in ("prepare", "supernet"):  # the shared stages; the profile section's own device is not needed here
        assert main([stage, *args]) == 0, stage
    for stage in ("profile", "search", "finetune", "evaluate"):
        assert main([stage, *args, "--device", "phone"]) == 0, stage
    for stage in ("search", "finetune"):  # (search.metric is macs in TINY: no table needed)
        assert main([stage, *args, "--device", "box"]) == 0, stage

    client = MlflowClient(tracking_store)
    experiment = client.get_experiment_by_name("devices-test")
    runs = client.search_runs([experiment.experiment_id], "tags.`netadapt.pipeline_id` = 'pipeline-under-test'")
    children = {r.info.run_name: r for r in runs if "netadapt.stage" in r.data.tags}
    assert set(children) == {"prepare", "supernet", "profile@phone", "search@phone", "finetune@phone",
                             "evaluate@phone", "search@box", "finetune@box"}
    for name, run in children.items():
        assert run.data.tags.get("netadapt.device") == (name.split("@")[1] if "@" in name else None), name
        assert run.data.tags["netadapt.stage"] == name.split("@")[0]
    assert children["search@phone"].data.params["search.budget"] == "0.8"
    assert children["search@box"].data.params["search.budget"] == "0.6"
    assert children["profile@phone"].data.params["profile.warmup"] == "2"

    models = {m.name for m in client.search_registered_models("name LIKE 'netadapt-%'")}
    assert models == {"netadapt-fashion-mnist-plain_cnn-phone", "netadapt-fashion-mnist-plain_cnn-box"}
    for name in ("phone", "box"):
        [version] = client.search_model_versions(f"name = 'netadapt-fashion-mnist-plain_cnn-{name}'")
        assert version.run_id == children[f"finetune@{name}"].info.run_id
        assert version.tags["netadapt.device"] == name
    [phone] = client.search_model_versions("name = 'netadapt-fashion-mnist-plain_cnn-phone'")
    assert phone.tags["budget"] == "0.8" and phone.tags["netadapt.evaluate_run_id"] == \
        children["evaluate@phone"].info.run_id
    parent = client.get_run(children["prepare"].data.tags["mlflow.parentRunId"])
    assert "phone/test_acc" in parent.data.metrics and "test_acc" not in parent.data.metrics
