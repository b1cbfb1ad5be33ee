"""Benchmark: one epoch of ordered-dropout super-network training vs one epoch of plain training of
the full network, same data, model and batch size, interleaved side by side in one run. The OD
epoch is the configured one (`supernet.largest`, `distill`): with `largest: batch` it includes the
full network's own pass over every batch.

The point of OD: many sub-networks trained for the price of one pass. Target ratio <= 1.15.

    .venv/bin/python bench/supernet_overhead.py [--repeats 5] [--model mobilenet_v2]

Uses the prepared embedded dataset (artifacts/prepared, made by `netadapt prepare` if missing).
Prints per-repeat seconds, medians and spreads; the last line is `supernet_overhead_ratio=<x>`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from netadapt.config import load_config
from netadapt.data import load_split, prepare_data
from netadapt.models import build_supernet
from netadapt.ordered_dropout import sample_widths
from netadapt.stages import Paths, model_spec
from netadapt.training import make_optimizer, train_epoch


def one_epoch(spec, train, cfg, sampling: str, seed: int) -> float:
    torch.manual_seed(seed)
    model = build_supernet(spec)
    space = model.space()
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    group_size = cfg.group_size if sampling != "none" else 1
    start = time.perf_counter()
    train_epoch(model, train, optimizer, None, cfg.batch_size, generator, torch.device("cpu"),
                lambda b: sample_widths(space, b, generator, sampling, cfg.group_size), group_size=group_size,
                largest_pass=cfg.largest == "batch", distill=cfg.distill, subnet_weight=cfg.subnet_weight)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=None, help="model.name (default: params.yaml's)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = load_config(args.params, [f"model.name={args.model}"] if args.model else [])
    prepared = Paths().prepared
    if not (prepared / "meta.json").is_file():
        prepared = Path(tempfile.mkdtemp()) / "prepared"
        prepare_data(cfg.data, cfg.seed, prepared)
    spec, train = model_spec(cfg, prepared), load_split(prepared, "train")
    sn = replace(cfg.supernet, sampling="sandwich")
    print(f"model {spec.name}, {len(train)} training images, batch {sn.batch_size}, group size "
          f"{sn.group_size}, largest: {sn.largest}, distill {sn.distill}, torch threads {torch.get_num_threads()}")
    one_epoch(spec, train, sn, "none", 0)  # warm-up: allocator, kernels
    plain, od = [], []
    for r in range(args.repeats):
        plain.append(one_epoch(spec, train, sn, "none", r))
        od.append(one_epoch(spec, train, sn, "sandwich", r))
        print(f"repeat {r + 1}/{args.repeats}: plain {plain[-1]:.2f} s  ordered dropout {od[-1]:.2f} s  "
              f"ratio {od[-1] / plain[-1]:.3f}", flush=True)
    ratios = [o / p for o, p in zip(od, plain)]
    for name, xs in (("plain epoch s", plain), ("ordered-dropout epoch s", od), ("per-repeat ratio", ratios)):
        print(f"{name}: median {statistics.median(xs):.3f}  min {min(xs):.3f}  max {max(xs):.3f}")
    print(f"supernet_overhead_ratio={statistics.median(od) / statistics.median(plain):.3f}")


if __name__ == "__main__":
    main()
