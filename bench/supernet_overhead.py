"""Benchmark: one epoch of ordered-dropout super-network training vs one epoch of plain training of
the full network, same data, model and batch size, interleaved side by side in one run. The OD
epoch is the configured one (`supernet.largest`, `distill`): with `largest: batch` it includes the
full network's own pass over every batch.

The point of OD: many sub-networks trained for the price of one pass (target ratio <= 1.15). Beside
the configured epoch it times the other layouts, so what each extra pass costs is measured in the
same run: `largest: group` (no extra pass), `largest: batch` (the full network's own pass), and with
distillation (its probabilities as the others' labels); `--layouts` picks others of
`supernet_quality.VARIANTS` (the one-pass variants: `largest_share`, `largest_every`, `teacher: ema`).

    .venv/bin/python bench/supernet_overhead.py [--repeats 5] [--model mobilenet_v2]

Uses the prepared embedded dataset (artifacts/prepared, made by `netadapt prepare` if missing).
Prints per-repeat seconds, medians and spreads; writes `bench/results/supernet_overhead_<model>.json`
and `.png`; the last line is `supernet_overhead_ratio=<x>` (the configured OD epoch / plain epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from netadapt.config import load_config
from netadapt.data import load_split, prepare_data
from netadapt.models import build_supernet
from netadapt.layout import Paths
from netadapt.stages import model_spec
from netadapt.supernet import ema_teacher, supernet_loss
from netadapt.training import Loop, make_optimizer, train_epoch


from supernet_quality import VARIANTS  # noqa: E402 - bench/ is the script's folder

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = ("plain", "od, largest on group 0", "od, largest on the batch",  # VARIANTS timed here
           "od, largest on the batch + distill 0.5")


def one_epoch(spec, train, cfg, seed: int, steps: int = 0) -> float:
    torch.manual_seed(seed)
    model = build_supernet(spec)
    space = model.space()
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    group_size = cfg.group_size if cfg.sampling != "none" else 1
    start = time.perf_counter()
    train_epoch(model, train, optimizer, None, Loop(cfg.batch_size, group_size, steps, augment=cfg.augment), generator,
                torch.device("cpu"), supernet_loss(cfg, space, generator, ema_teacher(cfg, model)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=None, help="model.name (default: params.yaml's)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=0,
                        help="time this many batches instead of a whole epoch (0); a multiple of every "
                             "largest_every timed, so each layout pays its passes in proportion")
    parser.add_argument("--layouts", nargs="+", choices=list(VARIANTS), default=list(LAYOUTS),
                        help="quality-bench variants to time beside plain (and the configured one)")
    parser.add_argument("--results", type=Path, default=None,
                        help="default: bench/results/supernet_overhead_<model>.json (and .png beside it)")
    args = parser.parse_args()
    cfg = load_config(args.params, [f"model.name={args.model}"] if args.model else [])
    prepared = Paths().prepared
    if not (prepared / "meta.json").is_file():
        prepared = Path(tempfile.mkdtemp()) / "prepared"
        prepare_data(cfg.data, cfg.seed, prepared)
    spec, train = model_spec(cfg, prepared), load_split(prepared, "train")
    sn = replace(cfg.supernet, sampling="sandwich")
    configured = f"configured (largest: {sn.largest}, distill {sn.distill:g}, subnet_weight {sn.subnet_weight:g})"
    layouts = {name: replace(sn, **VARIANTS[name]) for name in ["plain"] + [n for n in args.layouts if n != "plain"]}
    if all(layouts[name] != sn for name in layouts):
        layouts[configured] = sn
    headline = next(name for name in layouts if layouts[name] == sn)
    print(f"model {spec.name}, {len(train)} training images, batch {sn.batch_size}, group size {sn.group_size}, "
          f"configured: {headline}, torch threads {torch.get_num_threads()}")
    one_epoch(spec, train, layouts["plain"], 0, args.steps)  # warm-up: allocator, kernels
    seconds: dict[str, list[float]] = {name: [] for name in layouts}
    for r in range(args.repeats):  # interleaved: every layout once per repeat
        for name, layout in layouts.items():
            seconds[name].append(one_epoch(spec, train, layout, r, args.steps))
        print(f"repeat {r + 1}/{args.repeats}: " + "  ".join(f"{n} {xs[-1]:.2f} s" for n, xs in seconds.items()),
              flush=True)
    summary = {}
    for name, xs in seconds.items():
        ratios = [x / p for x, p in zip(xs, seconds["plain"])]  # each against the plain epoch of its repeat
        summary[name] = {"seconds_median": statistics.median(xs), "seconds_min": min(xs), "seconds_max": max(xs),
                         "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios)}
        s = summary[name]
        print(f"{name:40s} epoch s median {s['seconds_median']:.2f} [{s['seconds_min']:.2f}, {s['seconds_max']:.2f}]  "
              f"x plain median {s['ratio_median']:.3f} [{s['ratio_min']:.3f}, {s['ratio_max']:.3f}]")
    out = args.results or REPO / "bench" / "results" / f"supernet_overhead_{spec.name}.json"
    settings = {"model": spec.name, "data": cfg.data.name, "train": len(train), "batch_size": sn.batch_size,
                "group_size": sn.group_size, "repeats": args.repeats, "steps": args.steps, "configured": headline,
                "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__}
    out.write_text(json.dumps({"settings": settings, "seconds": seconds, "summary": summary}, indent=2) + "\n")
    plot(summary, headline, out.with_suffix(".png"), f"{spec.name} on {cfg.data.name} ({len(train)} images), "
         f"batch {sn.batch_size}, {args.repeats} repeats, {torch.get_num_threads()} threads")
    print(f"supernet_overhead_ratio={summary[headline]['ratio_median']:.3f}")


def plot(summary: dict, headline: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    mid = [summary[n]["ratio_median"] for n in names]
    err = [[m - summary[n]["ratio_min"] for n, m in zip(names, mid)],
           [summary[n]["ratio_max"] - m for n, m in zip(names, mid)]]
    ax.bar(range(len(names)), mid, yerr=err, capsize=4,
           color=["tab:orange" if n == headline else "tab:blue" for n in names])
    ax.axhline(1.0, color="grey", lw=1, ls=":")
    ax.set_xticks(range(len(names)), [n + (" (configured)" if n == headline else "") for n in names], fontsize=7)
    ax.set_ylabel("epoch time / plain epoch\n(median, min-max over repeats)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
