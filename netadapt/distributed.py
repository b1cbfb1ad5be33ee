"""Data-parallel training over processes: `torchrun` ranks, DistributedDataParallel, rank 0 writes.

A stage that trains (`supernet`, `finetune`) with `<section>.nproc` > 1 is run by `launch`: it starts
`torch.distributed.run --standalone --nproc_per_node N -m netadapt.rank <stage> ...`, one
process per rank, each running the same stage function; the launcher then returns the metrics rank
0 wrote. The front ends (the stage CLI, the Prefect task) call the stage function as always, so the
MLflow run, the project lock and the stage stamp stay in the launching process.

Each global batch (what one process would train on) is split among ranks by whole sample groups
(`local_positions`): every rank holds complete ordered-dropout groups, so the per-group batch-norm
statistics are exactly those of one process; the widths of the global batch are drawn once from the
shared seed and each rank takes its groups' (no two ranks train the same sub-networks). With equal
local batches, DDP's gradient average equals the single-process gradient, so N processes train the
same network as one, up to the order of floating-point sums. Backend: gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from netadapt.config import batch_split_problem
from netadapt.errors import ConfigError, NetAdaptError
from netadapt.layout import Paths

ERROR_LINE = re.compile(r"^(\[rank\d+\]:\s*)?([\w.]+(Error|Exception|Interrupt)|netadapt\.errors\.\w+)\b.*")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def writer(self) -> bool:
        """Rank 0 alone writes artifacts, metrics and plots."""
        return self.rank == 0


SINGLE = World()


def current_world() -> World:
    """This process's place: a rank of the process group `netadapt.distributed` set up, or alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def check_split(batch_size: int, group_size: int, nproc: int, key: str) -> None:
    """A global batch must split into equal local batches of whole groups (checked when the params are
    read, and again here for a batch cut down to a small train split)."""
    problem = batch_split_problem(batch_size, group_size, nproc)
    if problem:
        raise ConfigError(f"{key}: {problem}")


def local_positions(batch: int, group_size: int, world: World) -> torch.Tensor:
    """Positions in a global batch of `batch` samples that this rank trains, in the local layout
    `GroupStatsBatchNorm2d` reads (local sample j in local group j % local groups). Sample i of the
    global batch is in group i % groups; rank r holds groups [r*G/N, (r+1)*G/N)."""
    if world.size == 1:
        return torch.arange(batch)
    groups = batch // group_size
    per_rank = groups // world.size
    mine = torch.arange(world.rank * per_rank, (world.rank + 1) * per_rank)
    return (torch.arange(group_size)[:, None] * groups + mine[None, :]).reshape(-1)


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The model as each rank trains it: DDP across ranks (buffers follow rank 0's), itself alone."""
    if world.size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(total: float, count: int, world: World) -> float:
    """The mean of a per-sample quantity over every rank's samples."""
    if world.size == 1:
        return total / max(count, 1)
    # nccl reduces only CUDA tensors: the rank's own GPU (`launch` set it); gloo, CPU ones
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    both = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(both)
    return float(both[0] / max(both[1], 1.0))


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def launch(stage: str, config: dict, paths: Paths, nproc: int) -> dict:
    """Run `stage` in `nproc` rank processes under torchrun (`netadapt.rank`) and return the metrics
    rank 0 reported in its report (`paths.report(stage)`).

    The config travels as a JSON file (already validated); rank failures surface as one error after
    the ranks' last lines."""
    report = paths.report(stage)
    folders = (paths.artifacts, paths.metrics, paths.plots, paths.device)
    with tempfile.TemporaryDirectory(prefix="netadapt-ranks-") as tmp:
        cfg_file = Path(tmp) / "config.json"
        cfg_file.write_text(json.dumps(config))
        before = report.stat().st_mtime_ns if report.is_file() else None
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "netadapt.rank", stage, str(cfg_file), *map(str, folders)]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(cmd, env=env, stdout=None, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if ERROR_LINE.match(line)]  # what the ranks raised
            sys.stderr.write("\n".join(dict.fromkeys(errors[-4:] or lines[-8:])) + "\n")
            raise NetAdaptError(f"{stage}: {nproc} training processes (torchrun) failed with exit "
                                f"{done.returncode}; what they reported is above")
    if not report.is_file() or report.stat().st_mtime_ns == before:
        raise NetAdaptError(f"{report}: rank 0 of the {stage} processes wrote no report")
    return json.loads(report.read_text())
