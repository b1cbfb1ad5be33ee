"""Benchmark: what MCD candidates do to the network, per way of splitting dR (`search.split`).

For the first iteration of a search (dR = initial_reduction x base, L dimensions per candidate),
draws many candidates with each split and classifies every dimension a candidate changes: a block
removed (a CBC width taken to 0), a width taken to its minimum, or a partial cut. Coordinate
descent is about the neighbourhood of the current network; a candidate that removes a block or
empties an expansion to make a 10% cut explores extremes. Deterministic (seeded); no timing.

    .venv/bin/python bench/mcd_moves.py [--model mobilenet_v2] [--metric macs] [--lut artifacts/profile/lut.csv]

The last line is `extreme_move_ratio_capacity_vs_absolute=<x>` (share of changed dimensions taken
to an extreme, capacity split over absolute split; lower is better).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from netadapt.arch import ModelSpec
from netadapt.mcd import SPLITS, generate_candidates
from netadapt.models import build_supernet
from netadapt.resources.analytic import MacsModel, ParamsModel
from netadapt.resources.lookup_table import LatencyModel, LatencyTable


def moves(current, candidate) -> list[str]:
    kinds = []
    for d in current.dims:
        w = candidate.dim(d.name).width
        if w == d.width:
            continue
        kinds.append("block removed" if w == 0 else "to minimum" if w == d.min_width else "partial cut")
    return kinds


def plot(results: dict, settings: dict, path: Path) -> None:
    """Stacked bars: the changed dimensions of all candidates, by kind of move, per split."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    splits = list(results)
    left = np.zeros(len(splits))
    for kind, color in (("partial cut", "seagreen"), ("to minimum", "darkorange"), ("block removed", "firebrick")):
        values = np.array([results[s].get(kind, 0) for s in splits], dtype=float)
        ax.barh(splits, values, left=left, color=color, label=kind)
        left += values
    ax.set(xlabel="changed dimensions over all candidates",
           title=f"MCD first-iteration moves: {settings['model']} {settings['input']}, {settings['metric']}, "
                 f"dR={settings['reduction']:g}, L={settings['layers']}")
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--input", default="1,28,28", help="C,H,W")
    parser.add_argument("--metric", default="macs", choices=["macs", "params", "latency"])
    parser.add_argument("--lut", type=Path, default=Path("artifacts/profile/lut.csv"), help="for --metric latency")
    parser.add_argument("--reduction", type=float, default=0.1, help="dR as a fraction of the base")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=40, help="rounds of 5 candidates each")
    parser.add_argument("--out", type=Path, default=Path("bench/results/mcd_moves.json"))
    args = parser.parse_args()

    model = build_supernet(ModelSpec(args.model, tuple(int(x) for x in args.input.split(",")), 10))
    resource = {"macs": lambda: MacsModel(model), "params": lambda: ParamsModel(model),
                "latency": lambda: LatencyModel(model, LatencyTable.load(args.lut))}[args.metric]()
    space = model.space()
    base = resource.estimate(space)
    target = base * (1 - args.reduction)
    results = {}
    for split in SPLITS:
        counts, candidates, extreme_candidates, kept_fraction = Counter(), 0, 0, []
        for draw in range(args.draws):
            found = generate_candidates(space, base, target, resource, 5, args.layers,
                                        np.random.default_rng([draw, 7]), split)
            for c in found:
                kinds = moves(space, c.arch)
                counts.update(kinds)
                candidates += 1
                extreme_candidates += any(k != "partial cut" for k in kinds)
                kept_fraction.append(c.resource / base)
        changed = sum(counts.values())
        results[split] = {"candidates": candidates, "changed_dimensions": changed, **dict(counts),
                          "extreme_share_of_changes": (counts["block removed"] + counts["to minimum"]) / changed,
                          "candidates_with_an_extreme": extreme_candidates / candidates,
                          "median_resource_after": float(np.median(kept_fraction))}
        print(f"{split:9s} {candidates} candidates, {changed} changed dimensions: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
              + f"; {results[split]['candidates_with_an_extreme']:.0%} of candidates remove a block or empty a width;"
              f" median resource after {results[split]['median_resource_after']:.3f} of base")
    settings = {"model": args.model, "input": args.input, "metric": args.metric, "reduction": args.reduction,
                "layers": args.layers, "draws": args.draws}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    plot(results, settings, args.out.with_suffix(".png"))
    ratio = results["capacity"]["extreme_share_of_changes"] / results["absolute"]["extreme_share_of_changes"]
    print(f"extreme_move_ratio_capacity_vs_absolute={ratio:.3f}")


if __name__ == "__main__":
    main()
