"""The super-network stage through the CLI: image folders, small splits, the key a bad split names."""

from __future__ import annotations

import json
from pathlib import Path

from netadapt.checkpoints import load_supernet
from netadapt_flows.cli import main
from tests.conftest import write_folders, write_idx


def test_supernet_stage_through_the_cli(idx_root: Path, tmp_path: Path, caplog):
    common = ["-S", "data.name=fashion-mnist", "-S", f"data.root={idx_root}", "--artifacts", str(tmp_path / "a"),
              "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]
    caplog.set_level("INFO", logger="netadapt")
    assert main(["prepare", *common]) == 0
    assert main(["supernet", *common, "-S", "model.name=plain_cnn", "-S", "supernet.epochs=2",
                 "-S", "supernet.batch_size=32", "-S", "supernet.group_size=8"]) == 0
    metrics = json.loads((tmp_path / "m" / "supernet.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["holdout_acc_smallest"] <= 1
    assert {"epochs", "seconds", "holdout_acc_largest", "holdout_acc_smallest"} <= set(metrics)
    curve = (tmp_path / "p" / "supernet.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,loss,holdout_acc_largest") and len(curve) == 3
    model, _ = load_supernet(tmp_path / "a" / "supernet" / "supernet.pt")
    assert model.spec.name == "plain_cnn" and model.spec.input_shape == (1, 28, 28)
    assert "supernet epoch 2/2" in caplog.text, "per-epoch progress is logged"


def _cli_project(tmp_path: Path, data: list[str]) -> list[str]:
    return [*data, "-S", "model.name=plain_cnn", "--artifacts", str(tmp_path / "a"),
            "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]


def test_grayscale_image_folders_train(tmp_path: Path):
    """8x8 one-channel PNGs once made the conv emit channels-last tensors that grouped BN could not view."""
    write_folders(tmp_path / "gray", ["a", "b", "c"], {"train": 12, "test": 3}, mode="L")
    args = _cli_project(tmp_path, ["-S", "data.name=image-folder", "-S", f"data.root={tmp_path / 'gray'}",
                                   "-S", "data.holdout_fraction=0.25"])
    assert main(["prepare", *args]) == 0
    assert main(["supernet", *args, "-S", "supernet.epochs=1", "-S", "supernet.batch_size=16",
                 "-S", "supernet.group_size=4"]) == 0
    model, _ = load_supernet(tmp_path / "a" / "supernet" / "supernet.pt")
    assert model.spec.input_shape == (1, 8, 8)


def test_a_train_split_smaller_than_the_batch_trains_on_whole_groups(tmp_path: Path, caplog):
    write_idx(tmp_path / "d", "train", 60, seed=1)
    write_idx(tmp_path / "d", "t10k", 20, seed=2)
    args = _cli_project(tmp_path, ["-S", "data.name=fashion-mnist", "-S", f"data.root={tmp_path / 'd'}"])
    assert main(["prepare", *args]) == 0  # 50 train samples (10 held out)
    assert main(["supernet", *args, "-S", "supernet.epochs=1", "-S", "supernet.batch_size=128",
                 "-S", "supernet.group_size=16"]) == 0
    assert "training on batches of 48" in caplog.text


def test_a_train_split_too_small_for_ordered_dropout_fails_naming_the_key(tmp_path: Path, capsys):
    write_idx(tmp_path / "d", "train", 60, seed=1)
    write_idx(tmp_path / "d", "t10k", 20, seed=2)
    args = _cli_project(tmp_path, ["-S", "data.name=fashion-mnist", "-S", f"data.root={tmp_path / 'd'}"])
    assert main(["prepare", *args]) == 0
    assert main(["supernet", *args, "-S", "supernet.batch_size=96", "-S", "supernet.group_size=32"]) == 2
    err = capsys.readouterr().err
    assert "supernet.group_size: the train split has 50 samples" in err and "Traceback" not in err
    assert not (tmp_path / "a" / "supernet").exists()
