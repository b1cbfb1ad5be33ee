"""Data-parallel super-network training: N processes train the network one process trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from netadapt.distributed import World, local_positions
from tests.conftest import REPO
from tests.netadapt.test_supernet import CFG, train

RANK_SCRIPT = """
import os, sys, torch, torch.distributed as dist
from dataclasses import replace
from netadapt.distributed import World
from netadapt.models import build_supernet
from netadapt.supernet import train_supernet
from tests.netadapt.test_supernet import CFG, SPEC, quadrant_task

world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
dist.init_process_group("gloo")
torch.manual_seed(0)
model = build_supernet(SPEC)
largest = sys.argv[2]
cfg = replace(CFG, epochs=3, largest=largest, distill=0.5 if largest == "batch" else 0.0)
history = train_supernet(model, quadrant_task(256, 1), quadrant_task(64, 2), cfg, 0, torch.device("cpu"), world=world)
if world.writer:
    torch.save({"loss": [m.loss for m in history], "acc": [m.holdout_acc_largest for m in history],
                "state": model.state_dict()}, sys.argv[1])
dist.destroy_process_group()
"""


@pytest.mark.parametrize("batch, group, size", [(32, 8, 2), (48, 4, 3), (16, 1, 4)])
def test_each_rank_takes_whole_groups_and_together_the_batch(batch, group, size):
    groups = batch // group
    parts = [local_positions(batch, group, World(r, size)) for r in range(size)]
    assert sorted(torch.cat(parts).tolist()) == list(range(batch))
    for part in parts:
        local_groups = len(part) // group
        for j, position in enumerate(part.tolist()):  # local group j % local_groups is one global group
            assert position % groups == part[j % local_groups].item() % groups


@pytest.mark.parametrize("largest", ["group", "batch"])
def test_two_gloo_processes_train_the_network_one_process_trains(tmp_path: Path, largest: str):
    """Same total batch: every rank draws the same global batch and widths and trains its whole
    groups, so the per-group BN statistics are the one process's and DDP's average of two equal
    local means is the global mean. What differs is only the order of float32 sums (the all-reduce
    adds two half-batch gradients); over 3 epochs (24 steps) that stays far below 1e-4 relative.
    The full network's own pass (`largest: batch`) normalizes over each rank's share of the batch,
    as DDP without SyncBatchNorm does: close to one process, not equal."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "out.pt"), largest], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(tmp_path / "out.pt", weights_only=True)
    from dataclasses import replace

    model, history = train(cfg=replace(CFG, epochs=3, largest=largest, distill=0.5 if largest == "batch" else 0.0))
    exact = largest == "group"
    assert two["loss"] == pytest.approx([m.loss for m in history], rel=1e-4 if exact else 0.05)
    if not exact:
        return
    assert two["acc"] == pytest.approx([m.holdout_acc_largest for m in history], abs=1 / 64)
    for name, value in model.state_dict().items():
        assert torch.allclose(two["state"][name].float(), value.float(), rtol=1e-3, atol=1e-4), name


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[list[str], Path]:
    from netadapt_flows.cli import main
    from tests.conftest import write_idx
    from tests.netadapt.test_stages import TINY

    root = tmp_path_factory.mktemp("ranks")
    write_idx(root / "data", "train", 300, seed=1)
    write_idx(root / "data", "t10k", 100, seed=2)
    args = ["-S", "data.name=fashion-mnist", "-S", f"data.root={root / 'data'}", *TINY]
    assert main(["prepare", *args, "--artifacts", str(root / "a"), "--metrics", str(root / "m"),
                 "--plots", str(root / "p")]) == 0
    return args, root


def folders(root: Path, name: str) -> list[str]:
    import shutil

    if not (root / name / "a" / "prepared").exists():
        shutil.copytree(root / "a" / "prepared", root / name / "a" / "prepared")
    return ["--artifacts", str(root / name / "a"), "--metrics", str(root / name / "m"), "--plots", str(root / name / "p")]


def test_netadapt_supernet_and_finetune_on_two_processes(prepared, capsys):
    """`supernet.nproc: 2` trains under torchrun (gloo) and rank 0 alone writes: one checkpoint,
    one report, the launcher's metrics are rank 0's; the network equals one process's (as above).
    `finetune.nproc: 2` trains the discovered network on two processes too."""
    from netadapt.checkpoints import load_supernet
    from netadapt_flows.cli import main

    args, root = prepared
    one, two = folders(root, "one"), folders(root, "two")
    exact = ["-S", "supernet.largest=group", "-S", "supernet.distill=0"]  # BN of the full pass is per rank
    assert main(["supernet", *args, *exact, *one]) == 0
    capsys.readouterr()
    assert main(["supernet", *args, *exact, "-S", "supernet.nproc=2", *two]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    report = root / "two" / "a" / "reports" / "supernet.json"
    assert json.loads(printed) == json.loads(report.read_text())
    single = json.loads((root / "one" / "a" / "reports" / "supernet.json").read_text())
    assert json.loads(printed)["loss"] == pytest.approx(single["loss"], rel=1e-4)
    a, _ = load_supernet(root / "one" / "a" / "supernet" / "supernet.pt")
    b, _ = load_supernet(root / "two" / "a" / "supernet" / "supernet.pt")
    for name, value in a.state_dict().items():
        assert torch.allclose(b.state_dict()[name].float(), value.float(), rtol=1e-3, atol=1e-4), name
    assert sorted(p.name for p in (root / "two" / "a" / "supernet").iterdir()) == ["supernet.pt"]
    assert not (root / "two" / "a" / "progress" / "supernet.pt").exists(), "rank 0 cleared its progress"

    for stage in ("search", "finetune"):
        assert main([stage, *args, "-S", "finetune.nproc=2", *two]) == 0
    assert (root / "two" / "a" / "finetune" / "model.pt").is_file() and (root / "two" / "a" / "finetune" / "model.onnx").is_file()
    assert json.loads((root / "two" / "a" / "reports" / "finetune.json").read_text())["holdout_acc"] > 0


def test_a_batch_that_does_not_split_into_the_processes_is_refused_naming_the_key(prepared, capsys):
    from netadapt_flows.cli import main

    args, root = prepared
    assert main(["supernet", *args, "-S", "supernet.nproc=3", *folders(root, "bad")]) == 2
    assert "supernet.nproc: a batch of 32 does not split into 3 processes of whole groups of 8" in capsys.readouterr().err
    assert not (root / "bad" / "a" / "supernet").exists()


def test_what_a_rank_raised_is_reported_by_the_launcher(prepared, capsys):
    from netadapt_flows.cli import main

    args, root = prepared
    where = folders(root, "damaged")
    images = root / "damaged" / "a" / "prepared" / "train.images.npy"
    images.write_bytes(images.read_bytes()[:-10])
    assert main(["supernet", *args, "-S", "supernet.nproc=2", *where]) == 2
    err = capsys.readouterr().err
    assert f"{images}: " in err and "2 training processes (torchrun) failed" in err
    assert not (root / "damaged" / "a" / "supernet").exists()
