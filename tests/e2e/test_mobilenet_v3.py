"""The built-in `mobilenet_v3` through the whole pipeline: photos at 32 px, one epoch each."""

from __future__ import annotations

import json

import pytest

from netadapt.checkpoints import load_network
from netadapt_flows.cli import main
from tests import presets
from tests.conftest import REPO
from tests.e2e.test_any_model import mixed_photo_folder


@pytest.mark.slow
def test_mobilenet_v3_small_is_adapted_end_to_end_at_32_px(tmp_path):
    data = mixed_photo_folder(tmp_path / "photos", {"train": 16, "test": 4})
    sections = presets.merged(
        presets.TINY, model={"name": "mobilenet_v3", "width_mult": 0.25},  # about 1,100 units to profile
        data={"name": "image-folder", "root": str(data), "image_size": 32, "channels": 3},
        # timed in this process (the fake device's one process per unit is slow for ~1,100 units);
        # the search ranks by MACs (TINY), so the table's error does not decide anything here
        profile={"backend": "torch-cpu", **presets.ANY_ERROR},
        supernet={"epochs": 1, "batch_size": 16, "group_size": 4}, finetune={"epochs": 1, "batch_size": 16})
    args = ["--params", str(REPO / "params.yaml"), *presets.flags(sections), *presets.outputs(tmp_path)]
    assert main(["run", *args]) == 0
    report = json.loads((tmp_path / "a" / "reports" / "evaluate.json").read_text())
    assert report["budget_met"] is True and report["macs"] <= 0.5 * report["base_macs"]
    model, arch = load_network(tmp_path / "a" / "finetune" / "model.pt", "mobilenet_v3")
    assert arch.model.path is None and dict(arch.model.kwargs) == {}
    assert {"blocks.4.se.reduce.out", "blocks.4.bypass", "hidden.out"} <= {d.name for d in arch.dims}
    assert sum(p.numel() for p in model.parameters()) == report["params"]
    assert (tmp_path / "a" / "finetune" / "model.onnx").is_file()
