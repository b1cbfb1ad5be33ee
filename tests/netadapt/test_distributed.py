"""Data-parallel super-network training: N processes train the network one process trains."""

from __future__ import annotations

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
