"""Benchmark: MCD with and without stage and kernel dimensions, on the embedded dataset.

`netadapt run` with the default params (MCD, latency budget 0.5 of the base network measured on
onnxruntime-cpu, 1 thread, batch 1; the embedded Fashion-MNIST t10k) on `model.name: mobilenet_v3`
(small), per seed twice: with every dimension (`all`) and with `model.fixed: ["*.stage", "*.kernel"]`
(`fixed`: expansion widths, squeeze-excite reductions, depth and the head only). Each run is a fresh
project (a clone of this repository's HEAD) under `--work`; `--jobs` runs go side by side (one
process each). A cell keeps what `evaluate` measured (test accuracy; the final network's latency timed
beside the base's, in one rotation) and the search's dimension counts. A cell in the results is
kept; any other runs from the start (`netadapt run` does not cache); a run that fails is named and
the others go on (exit 1 at the end).

    .venv/bin/python bench/search_space.py [--seeds 0 1 2] [--jobs 2]

Writes `bench/results/search_space.json`; the last line is `fixed_minus_all_test_acc_pts=<mean>`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from provenance import provenance, require_one_code
from stats import paired

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"all": [], "fixed": ["-S", 'model.fixed=["*.stage", "*.kernel"]']}
MODEL = ["-S", "model.name=mobilenet_v3"]


def run_cell(variant: str, seed: int, work: Path, code: dict) -> dict | None:
    """One `netadapt run` in its own project; its evaluate and search metrics (`code`: the
    provenance taken when the benchmark started, before any cell ran)."""
    project = work / f"{variant}-s{seed}"
    if not (project / ".git").exists():
        shutil.rmtree(project, ignore_errors=True)
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(project)], check=True)
    cli = [str(REPO / ".venv" / "bin" / "netadapt"), "run", *MODEL, *VARIANTS[variant], "-S", f"seed={seed}"]
    with open(project / "run.log", "a") as log:
        done = subprocess.run(cli, cwd=project, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        last = (project / "run.log").read_text().strip().splitlines()[-1:]
        print(f"{variant}-s{seed}: failed (exit {done.returncode}): {last[0] if last else ''}", flush=True)
        return None
    metrics = {stage: json.loads((project / "metrics" / f"{stage}.json").read_text()) for stage in ("evaluate", "search")}
    dims = json.loads((project / "artifacts" / "search" / "arch.json").read_text())["dimensions"]
    e = metrics["evaluate"]
    return {"variant": variant, "seed": seed, "test_acc": e["test_acc"], "latency_ratio": e["latency_ratio"],
            "latency_measured_ms": e["latency_measured_ms"], "budget_met": e.get("budget_met"),
            "params": e["params"], "macs": e["macs"], "dimensions": len(dims),
            "searched_dimensions": sum(d["min_width"] != d["max_width"] for d in dims),
            "search": {k: metrics["search"][k] for k in ("iterations", "resource_estimated") if k in metrics["search"]},
            "provenance": {**code, "settings": {"model": "mobilenet_v3", "params": "params.yaml defaults",
                                                "override": VARIANTS[variant], "jobs": code["settings"]["jobs"]}}}


def summary(cells: dict[str, dict]) -> dict:
    """Fixed minus every dimension, test accuracy in points, paired by seed (`stats.paired`)."""
    acc = {(c["variant"], c["seed"]): 100 * c["test_acc"] for c in cells.values()}
    return {"fixed_minus_all_test_acc_pts": paired(acc, "fixed", "all")}


def save(cells: dict[str, dict], path: Path) -> dict | None:
    """Write the cells and their summary; the summary (None before a seed has both variants)."""
    head = summary(cells)
    path.write_text(json.dumps({"cells": cells, **head}, indent=2) + "\n")
    return head["fixed_minus_all_test_acc_pts"]


def plot(cells: dict[str, dict], path: Path) -> None:
    """Test accuracy against measured latency / base, one point per run, a colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for variant, label in (("all", "every dimension"), ("fixed", "stage widths and kernels fixed")):
        mine = [c for c in cells.values() if c["variant"] == variant]
        ax.scatter([c["latency_ratio"] for c in mine], [100 * c["test_acc"] for c in mine], label=label)
        for c in mine:
            ax.annotate(f"s{c['seed']}", (c["latency_ratio"], 100 * c["test_acc"]), fontsize=8,
                        xytext=(3, 3), textcoords="offset points")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("measured latency / base (budget 0.5)")
    ax.set_ylabel("test accuracy %")
    ax.set_title("MCD on mobilenet_v3, Fashion-MNIST t10k", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one process each)")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "search_space")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "search_space.json")
    parser.add_argument("--mix-commits", action="store_true")
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.exists() else {"cells": {}}
    cells: dict[str, dict] = results["cells"]
    todo = [(v, s) for s in args.seeds for v in VARIANTS if f"{v}-s{s}" not in cells]
    args.work.mkdir(parents=True, exist_ok=True)
    code = provenance(torch.device("cpu"), {"jobs": args.jobs})
    failed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for cell in pool.map(lambda vs: run_cell(*vs, args.work, code), todo):
            if cell is None:
                failed += 1
                continue
            cells[f"{cell['variant']}-s{cell['seed']}"] = cell
            save(cells, args.results)
            print(f"{cell['variant']}-s{cell['seed']}: test acc {cell['test_acc']:.3f} at {cell['latency_ratio']:.3f} "
                  f"of the base's measured latency", flush=True)
    require_one_code(parser, cells, args.mix_commits, str(args.results))
    head = save(cells, args.results)
    plot(cells, args.results.with_suffix(".png"))  # the table: bench/tables.py (search_space)
    if head is not None:
        print(f"fixed_minus_all_test_acc_pts={head['mean']:.2f}")
    if failed:
        sys.exit(f"{failed} run(s) failed: run the benchmark again for them")


if __name__ == "__main__":
    main()
