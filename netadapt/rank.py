"""One torchrun rank of a data-parallel stage: `python -m netadapt.rank <stage> <params> <artifacts>
<metrics> <plots> [<device>]` (what `distributed.launch` starts, once per rank).

Sets up the process group from torchrun's variables, runs the stage function, tears down.
`<params>` is a params file (YAML, or the JSON `launch` writes), so a multi-node `torchrun ... -m
netadapt.rank supernet params.yaml artifacts metrics plots` runs the stage on every node's ranks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from netadapt import stages
from netadapt.config import load_config, parse_config
from netadapt.distributed import current_world
from netadapt.layout import Paths

USAGE = ("usage: python -m netadapt.rank <supernet|finetune> <params> <artifacts> <metrics> <plots> "
         "[<device>]")


def main(argv: list[str]) -> None:
    """Run `argv`'s stage as this rank."""
    if len(argv) not in (5, 6):
        raise SystemExit(USAGE)
    stage, params, artifacts, metrics, plots = argv[:5]
    # JSON (what `launch` writes) is read as JSON: PyYAML reads a number such as 4e-05 as a string
    cfg = parse_config(json.loads(Path(params).read_text())) if params.endswith(".json") else load_config(params)
    section = getattr(cfg, stage)
    cuda = torch.cuda.is_available() and section.device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    world = current_world()
    logging.basicConfig(level=logging.INFO if world.writer else logging.WARNING, format="%(message)s")
    try:
        getattr(stages, stage)(cfg, Paths(Path(artifacts), Path(metrics), Path(plots), argv[5] if len(argv) == 6 else ""))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
