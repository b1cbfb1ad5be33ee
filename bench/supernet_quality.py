"""Benchmark: how close the super-network's largest sub-network comes to plain training at equal
epochs, for each way of training it, side by side on the same data, model, batch and seeds.

Variants (`supernet.*`): plain (`sampling: none`); ordered dropout with the full network on group 0
only (`largest: group`); with the full network also trained on the whole batch in a pass of its
own (`largest: batch`); and that pass's predictions teaching the sampled sub-networks (`distill:
0.5`, in-place distillation); and the one-pass variants: the full network on several groups
(`largest_share`), its own pass on every k-th batch (`largest_every`), an EMA teacher
(`teacher: ema`). Reports holdout accuracy of the largest and the smallest
sub-network (BN re-estimated on train batches, as the supernet stage's monitor does) and seconds
per epoch; the gap is plain's largest minus the variant's, in points.

    .venv/bin/python bench/supernet_quality.py [--model plain_cnn] [--epochs 3] [--seeds 0 1 2]

Uses the prepared embedded dataset (made in a temp folder if `artifacts/prepared` is missing), or
`--data-name/--data-root`. Writes `bench/results/supernet_quality_<model>.json` and `.png`; the last
line is `largest_gap_points_<best variant>=<x>`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from netadapt.config import load_config
from netadapt.data import load_split, prepare_data
from netadapt.evaluation import evaluate_subnet
from netadapt.models import build_supernet
from netadapt.stages import model_spec
from netadapt.supernet import MONITOR_BN_BATCHES, train_supernet
from netadapt.training import accuracy

REPO = Path(__file__).resolve().parents[1]
# every variant sets the loss's keys itself, so its name stays true whatever params.yaml's defaults are
LOSS_KEYS = dict(largest="group", largest_every=1, largest_share=0.0, largest_weight=0.0, distill=0.0,
                 teacher="full", subnet_weight=1.0, augment=False)
VARIANTS = {
    "plain": dict(sampling="none"),
    "od, largest on group 0": dict(sampling="sandwich", largest="group", distill=0.0),
    "od, largest on the batch": dict(sampling="sandwich", largest="batch", distill=0.0),
    "od, largest on the batch + distill 0.5": dict(sampling="sandwich", largest="batch", distill=0.5),
    "od, batch + distill 0.5, sampled pass x0.5": dict(sampling="sandwich", largest="batch", distill=0.5,
                                                       subnet_weight=0.5),
    "od, batch + distill 1.0": dict(sampling="sandwich", largest="batch", distill=1.0),
    # augmentation (random flip + crop, `supernet.augment`): alone on plain training, and on the default
    "plain + augment": dict(sampling="none", augment=True),
    "od, batch + distill 0.5 + augment": dict(sampling="sandwich", largest="batch", distill=0.5, augment=True),
    # one pass (issue 23): the full network on a larger share of the batch (groups of 16 in a batch of
    # 128: 2 or 4 of the 8 groups), its own pass on every k-th batch only, an EMA teacher, and mixes
    "od, largest on 2 of 8 groups": dict(sampling="sandwich", largest="group", largest_share=0.25, distill=0.0),
    "od, largest on 4 of 8 groups": dict(sampling="sandwich", largest="group", largest_share=0.5, distill=0.0),
    "od, batch pass every 2nd + distill 0.5": dict(sampling="sandwich", largest="batch", largest_every=2,
                                                   distill=0.5),
    "od, batch pass every 3rd + distill 0.5": dict(sampling="sandwich", largest="batch", largest_every=3,
                                                   distill=0.5),
    "od, 4 of 8 groups + batch pass every 4th + distill 0.5": dict(sampling="sandwich", largest="batch",
                                                                  largest_share=0.5, largest_every=4, distill=0.5),
    "od, 4 of 8 groups + ema teacher, distill 0.5": dict(sampling="sandwich", largest="group", largest_share=0.5,
                                                         teacher="ema", distill=0.5),
    # the full network's samples weigh more (`largest_weight`): its loss counts about as a whole batch's
    "od, 4 of 8 groups, full samples +0.5": dict(sampling="sandwich", largest="group", largest_share=0.5,
                                                 largest_weight=0.5, distill=0.0),
    "od, 4 of 8 groups, full samples +1.0": dict(sampling="sandwich", largest="group", largest_share=0.5,
                                                 largest_weight=1.0, distill=0.0),
    "od, 6 of 8 groups, full samples +1.0": dict(sampling="sandwich", largest="group", largest_share=0.75,
                                                 largest_weight=1.0, distill=0.0),
    "od, 6 of 8 groups, full samples +0.5": dict(sampling="sandwich", largest="group", largest_share=0.75,
                                                 largest_weight=0.5, distill=0.0),
    "od, largest on 6 of 8 groups": dict(sampling="sandwich", largest="group", largest_share=0.75, distill=0.0),
    "od, 4 of 8 groups, full samples +2.0": dict(sampling="sandwich", largest="group", largest_share=0.5,
                                                 largest_weight=2.0, distill=0.0),
    "od, 2 of 8 groups, full samples +0.75": dict(sampling="sandwich", largest="group", largest_share=0.25,
                                                  largest_weight=0.75, distill=0.0),
    "od, 2 of 8 groups + ema teacher, distill 0.5": dict(sampling="sandwich", largest="group", largest_share=0.25,
                                                         teacher="ema", distill=0.5),
}
VARIANTS = {name: {**LOSS_KEYS, **settings} for name, settings in VARIANTS.items()}


def run(spec, train, holdout, sn, seed: int, device: torch.device) -> dict:
    torch.manual_seed(seed)
    model = build_supernet(spec)
    start = time.perf_counter()
    history = train_supernet(model, train, holdout, replace(sn, epochs=sn.epochs), seed, device)
    seconds = (time.perf_counter() - start) / max(sn.epochs, 1)
    largest = accuracy(model, holdout, 512, device)[1]
    smallest = evaluate_subnet(model, model.space().smallest(), holdout, batch_size=sn.batch_size,
                               bn_recalibration_batches=MONITOR_BN_BATCHES, device=device,
                               calibration=train)
    return {"largest": largest, "smallest": smallest, "seconds_per_epoch": seconds, "loss": history[-1].loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="plain_cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-name", default="")
    parser.add_argument("--data-root", default="")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="plain always runs: every gap is to it, measured in the same run")
    parser.add_argument("--results", type=Path, default=None,
                        help="default: bench/results/supernet_quality_<model>.json (and .png beside it)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--skip-plain", action="store_true",
                        help="plain ran in another run for these seeds: write the runs only, for --merge")
    parser.add_argument("--merge", type=Path, nargs="+", default=[], metavar="RESULTS",
                        help="no training: summarize the runs of these results files together (e.g. one "
                             "per seed, run side by side in several processes, or variants of one seed run "
                             "apart; a cut-short run's .partial.json) into --results: the variants run for "
                             "every seed")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.results)
        return
    overrides = [f"model.name={args.model}", f"supernet.epochs={args.epochs}"]
    if args.data_name:
        overrides += [f"data.name={args.data_name}", f"data.root={args.data_root}"]
    cfg = load_config(REPO / "params.yaml", overrides)
    prepared = REPO / "artifacts" / "prepared"
    if args.data_name or not (prepared / "meta.json").is_file():
        prepared = Path(tempfile.mkdtemp()) / "prepared"
        prepare_data(cfg.data, cfg.seed, prepared)
    spec, train, holdout = model_spec(cfg, prepared), load_split(prepared, "train"), load_split(prepared, "holdout")
    print(f"{spec.name} on {cfg.data.name}: {len(train)} train / {len(holdout)} holdout, {args.epochs} epochs, "
          f"batch {cfg.supernet.batch_size}, group {cfg.supernet.group_size}, threads {torch.get_num_threads()}",
          flush=True)
    variants = {name: VARIANTS[name] for name in ["plain"] * (not args.skip_plain) + args.variants}  # plain first
    info = {"model": spec.name, "data": cfg.data.name, "train": len(train), "holdout": len(holdout),
            "epochs": args.epochs, "seeds": args.seeds, "batch_size": cfg.supernet.batch_size,
            "group_size": cfg.supernet.group_size, "device": args.device}
    out = args.results or REPO / "bench" / "results" / f"supernet_quality_{spec.name}.json"
    partial = out.with_suffix(".partial.json")  # the runs so far, for --merge should the run be cut short
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in args.seeds:  # interleaved: each seed runs every variant
        for name, settings in variants.items():
            rows[name].append(run(spec, train, holdout, replace(cfg.supernet, **settings), seed,
                                  torch.device(args.device)))
            r = rows[name][-1]
            print(f"seed {seed}  {name:40s} largest {r['largest']:.4f}  smallest {r['smallest']:.4f}  "
                  f"{r['seconds_per_epoch']:.1f} s/epoch", flush=True)
            done = {k: v for k, v in rows.items() if v}
            partial.write_text(json.dumps({"settings": {**info, "seeds": args.seeds[:len(next(iter(rows.values())))]},
                                           "runs": done}, indent=2) + "\n")
    if args.skip_plain:  # no baseline here: --merge with the file whose plain runs cover these seeds
        partial.replace(out)
        return
    report(rows, info, out)
    partial.unlink()


def merge(files: list[Path], out: Path | None) -> None:
    """Summarize the runs of several results files (seeds run in separate processes, or variants of
    one seed in separate runs) as one: per (seed, variant) the first file's run; the variants run
    for every seed."""
    parts = [json.loads(f.read_text()) for f in files]
    if any({k: v for k, v in p["settings"].items() if k != "seeds"} !=
           {k: v for k, v in parts[0]["settings"].items() if k != "seeds"} for p in parts):
        raise SystemExit("--merge: the results files differ in settings other than the seeds")
    runs: dict[tuple[int, str], dict] = {}
    for part in parts:
        for name, rs in part["runs"].items():
            for seed, r in zip(part["settings"]["seeds"], rs):
                runs.setdefault((seed, name), r)
    seeds = sorted({seed for seed, _ in runs})
    names = [n for n in dict.fromkeys(n for p in parts for n in p["runs"]) if all((s, n) in runs for s in seeds)]
    settings = {**parts[0]["settings"], "seeds": seeds}
    report({n: [runs[(s, n)] for s in seeds] for n in names}, settings,
           out or files[0].with_name(f"supernet_quality_{settings['model']}.json"))


def report(rows: dict[str, list[dict]], settings: dict, out: Path) -> None:
    """Per variant over seeds: the largest sub-network's median and spread, its gap to plain, the
    smallest's median, epoch time against plain's; written to `out` (+ plot), headline printed."""
    summary = {}
    plain = statistics.median(r["largest"] for r in rows["plain"])
    plain_s = statistics.median(r["seconds_per_epoch"] for r in rows["plain"])
    for name, runs in rows.items():
        largest = [r["largest"] for r in runs]
        summary[name] = {"largest_median": statistics.median(largest), "largest_min": min(largest),
                         "largest_max": max(largest),
                         "smallest_median": statistics.median(r["smallest"] for r in runs),
                         "gap_points": round(100 * (plain - statistics.median(largest)), 2),
                         "epoch_ratio_to_plain": round(statistics.median(r["seconds_per_epoch"] for r in runs) / plain_s, 3)}
        s = summary[name]
        print(f"{name:40s} largest median {s['largest_median']:.4f} [{s['largest_min']:.4f}, {s['largest_max']:.4f}]  "
              f"gap {s['gap_points']:+.2f} pts  smallest {s['smallest_median']:.4f}  epoch x{s['epoch_ratio_to_plain']}")
    out.write_text(json.dumps({"settings": settings, "runs": rows, "summary": summary}, indent=2) + "\n")
    plot(summary, out.with_suffix(".png"), f"{settings['model']} on {settings['data']}, {settings['epochs']} epochs, "
         f"{len(settings['seeds'])} seeds")
    od = {k: v for k, v in summary.items() if k.startswith("od")}  # "plain + augment" is no super-network
    best = min(od, key=lambda k: od[k]["gap_points"])
    tag = best.replace(", ", "_").replace(" + ", "_").replace(" ", "_").replace(".", "")
    print(f"largest_gap_points_{tag}={od[best]['gap_points']}")


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = range(len(names))
    largest = [summary[n]["largest_median"] for n in names]
    smallest = [summary[n]["smallest_median"] for n in names]
    err = [[summary[n]["largest_median"] - summary[n]["largest_min"] for n in names],
           [summary[n]["largest_max"] - summary[n]["largest_median"] for n in names]]
    ax.bar([x - 0.2 for x in xs], largest, 0.4, yerr=err, capsize=3, label="largest sub-network")
    ax.bar([x + 0.2 for x in xs], smallest, 0.4, label="smallest sub-network")
    ax.set_xticks(list(xs), [f"{n}\n(epoch x{summary[n]['epoch_ratio_to_plain']})" for n in names], fontsize=7)
    ax.set_ylabel("holdout accuracy (median over seeds)")
    ax.set_ylim(min(smallest + largest) - 0.05, 1.0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
