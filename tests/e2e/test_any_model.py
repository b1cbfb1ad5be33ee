"""A user's own network, written without any netadapt code, through the whole pipeline."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace
from pathlib import Path

import numpy as np
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
                                                   "granularity": 4, "kwargs": {"width": 8}, **model})
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


def mixed_photo_folder(root: Path, per_class: dict[str, int]) -> Path:
    """Three classes told apart by colour, as photos come: JPEG and PNG, RGB, RGBA, palette and
    grayscale, of several sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    sizes = [(48, 48), (80, 64), (70, 100), (64, 64)]
    for split, count in per_class.items():
        for name, colour in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                w, h = sizes[i % len(sizes)]
                pixels = np.clip(np.array(colour) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels)
                kind = i % 4
                if kind == 0:
                    image.save(folder / f"{i}.jpg", quality=90)
                elif kind == 1:
                    image.convert("RGBA").save(folder / f"{i}.png")
                elif kind == 2:
                    image.convert("P").save(folder / f"{i}.png")
                else:
                    image.save(folder / f"{i}.png")
    return root


def pretrained_on_colours(steps: int = 60) -> torch.nn.Module:
    """The user's pre-trained network: told red, green and blue apart (inputs scaled as prepared)."""
    torch.manual_seed(0)
    model = mymodels.MobileNetV3Small(num_classes=3, in_channels=3, width_mult=0.25)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    colours = torch.tensor([[40, 40, 200], [40, 200, 40], [200, 40, 40]], dtype=torch.float32)  # classes sorted:
    # blue, green, red
    for _ in range(steps):
        labels = torch.randint(3, (16,))
        pixels = colours[labels][:, :, None, None] + 25 * torch.randn(16, 3, 64, 64)
        loss = torch.nn.functional.cross_entropy(model(pixels.clamp(0, 255) / 127.5 - 1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@pytest.mark.slow
def test_mobilenet_v3_small_style_from_its_checkpoint_on_mixed_photos_at_64_px(tmp_path):
    """The issue's user: their MobileNetV3, their weights, a folder of photos of many sizes."""
    data = mixed_photo_folder(tmp_path / "photos", {"train": 24, "test": 6})
    weights = tmp_path / "mine" / "weights.pt"
    weights.parent.mkdir()
    shutil.copy(REPO / "examples" / "mymodels.py", weights.parent / "mymodels.py")
    torch.save(pretrained_on_colours().state_dict(), weights)
    sections = presets.merged(
        presets.TINY, model={"name": "mymodels:MobileNetV3Small", "path": str(weights.parent), "granularity": 8,
                             "kwargs": {"width_mult": 0.25}, "checkpoint": str(weights)},
        data={"name": "image-folder", "root": str(data), "image_size": 64, "channels": 3},
        # started from trained weights: a fine-tuning learning rate, as a user would set
        supernet={"epochs": 2, "batch_size": 16, "group_size": 4, "lr": 0.005},
        finetune={"epochs": 2, "batch_size": 16, "lr": 0.005})
    args = ["--params", str(REPO / "params.yaml"), *presets.flags(sections), *presets.outputs(tmp_path)]
    assert main(["run", *args]) == 0
    report = json.loads((tmp_path / "a" / "reports" / "evaluate.json").read_text())
    assert report["budget_met"] is True and report["macs"] <= 0.5 * report["base_macs"]
    assert report["test_acc"] >= 0.8  # what the user's weights knew survives the adaptation (chance: 1/3)
    prepared = json.loads((tmp_path / "a" / "prepared" / "meta.json").read_text())
    assert prepared["input_shape"] == [3, 64, 64]


@pytest.mark.slow
def test_netadapt_v1_adapts_the_users_trained_network(tmp_path, capsys):
    """V1 starts from the user's weights (the paper's setting), not from the super-network."""
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(mymodels.TinyResNet(num_classes=10, in_channels=1, width=8).state_dict(), weights)
    args = user_project(tmp_path, checkpoint=str(weights))
    for stage in ("prepare", "profile", "supernet"):
        assert main([stage, *args]) == 0
    assert main(["search", *args, "-S", "search.algorithm=netadapt"]) == 0
    report = json.loads((tmp_path / "a" / "reports" / "search.json").read_text())
    assert report["algorithm"] == "netadapt" and report["resource_estimated"] <= report["budget"]
    weights.write_bytes(b"")  # the start network is read from the user's file: an empty one is refused
    assert main(["search", *args, "-S", "search.algorithm=netadapt", "-S", "search.budget=0.4"]) == 2
    assert "model.checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_a_traced_network_is_adapted_for_several_devices(tmp_path):
    """Each named device profiles the user's network on its own, searches to its own latency budget
    and gets its own final network, from one super-network."""
    args = user_project(tmp_path)
    devices = ["-S", "search.metric=latency", "-S", "devices.phone.budget=0.5", "-S", "devices.phone.profile={}",
               "-S", "devices.box.budget=0.8", "-S", "devices.box.profile={}"]
    assert main(["run", *args, *devices]) == 0
    finals = {}
    for name, budget in (("phone", 0.5), ("box", 0.8)):
        evaluate = json.loads((tmp_path / "m" / "devices" / name / "evaluate.json").read_text())
        assert evaluate["budget_met"] is True, (name, evaluate)
        assert (tmp_path / "a" / "devices" / name / "finetune" / "model.onnx").is_file()
        assert evaluate["latency_ratio"] <= budget * 1.05
        finals[name] = evaluate["latency_ratio"]
    assert finals["phone"] < finals["box"]
