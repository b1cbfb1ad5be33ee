"""A user's own network, written without any netadapt code, through the whole pipeline."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace
from pathlib import Path

import pytest
import torch

from examples import mymodels
from netadapt.checkpoints import load_network
from netadapt.models.source import model_reference
from netadapt_flows.cli import main
from tests import presets
from tests.conftest import REPO


def user_project(root: Path, **model) -> list[str]:
    """The user's module in a folder of their own (model.path), their trained weights beside it."""
    folder = root / "mine"
    folder.mkdir(exist_ok=True)
    shutil.copy(REPO / "examples" / "mymodels.py", folder / "mymodels.py")
    sections = presets.merged(presets.TINY, model={"name": "mymodels:TinyResNet", "path": str(folder),
                                                   "granularity": 4, "kwargs": "{width: 8}", **model})
    return presets.project(root, presets.separable_data(root / "data", train=300, test=100), sections)


@pytest.mark.slow
def test_a_hand_written_residual_network_is_adapted_from_its_trained_weights(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(mymodels.TinyResNet(num_classes=10, in_channels=1, width=8).state_dict(), weights)
    args = user_project(tmp_path, checkpoint=str(weights))
    assert main(["run", *args]) == 0
    evaluate = json.loads((tmp_path / "a" / "reports" / "evaluate.json").read_text())
    assert evaluate["budget_met"] is True and evaluate["macs"] <= 0.5 * evaluate["base_macs"]
    assert evaluate["test_acc"] >= 0.5  # separable data: chance is 0.1
    model, arch = load_network(tmp_path / "a" / "finetune" / "model.pt",
                               model_reference(SimpleNamespace(name="mymodels:TinyResNet", path=str(tmp_path / "mine"))))
    assert {"stem.0.stage", "blocks.0.bypass", "blocks.1.bypass"} <= {d.name for d in arch.dims}
    assert (tmp_path / "a" / "finetune" / "model.onnx").is_file()
    assert sum(p.numel() for p in model.parameters()) == evaluate["params"]


@pytest.mark.slow
def test_weights_that_do_not_fit_stop_the_supernet_naming_the_key(tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    torch.save(mymodels.TinyResNet(num_classes=10, in_channels=1, width=16).state_dict(), weights)
    args = user_project(tmp_path, checkpoint=str(weights))
    assert main(["prepare", *args]) == 0
    assert main(["supernet", *args]) == 2
    err = capsys.readouterr().err
    assert "model.checkpoint" in err and "'stem.0.weight' has shape (16, 1, 3, 3), the model's (8, 1, 3, 3)" in err
    assert not (tmp_path / "a" / "supernet" / "supernet.pt").exists()
