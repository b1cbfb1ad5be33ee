"""Benchmark: does the search find more accurate networks than a hand-made shrink at equal measured
latency, and how long does each method take? Side by side on a real dataset, every method with the
same final training.

Methods, each a (dataset, method, budget, seed) *cell*:
- `netadapt_v2`: MCD search (`search.algorithm: mcd`) on the ordered-dropout super-network.
- `netadapt_v1`: NetAdapt V1 (`search.algorithm: netadapt`) on a plainly trained super-network of
  the same epochs; its long-term fine-tune is the final training below (`long_term_epochs: 0`).
  `netadapt_v1_dr0.04` (not in the default list): the same with dR_0 = 4% of the base.
- `netadapt_v1_reference`: V1 at `search.preset: netadapt-reference` (500 short-term steps of 128 per
  proposal, dR_0 2.5% decaying 0.96), on the same plain network; its long-term fine-tune is the final
  training too.
- `uniform`: one width multiplier for every dimension, the largest whose lookup-table estimate meets
  the budget; where width alone cannot reach it, bypassable blocks are removed evenly across the
  network first (uniform depth + width).
- `random`: random widths, then grown/shrunk one grid step at a time on random dimensions until the
  estimate lies in [0.97, 1] x budget (a random network at the same estimate).
- `best_of_n`: N such random networks scored like MCD's candidates (BN re-estimated, holdout accuracy
  with the super-network's weights), the best kept; N = the V2 cell's candidates evaluated.
- `uniform_scratch`: `uniform`'s network trained from scratch (`finetune.init: scratch`) for the
  super-network's epochs + the final training's: the compute V2 is charged, spent on one network.
- `tp_uniform` / `tp_global`: Torch-Pruning (L2 `MetaPruner`, `torch_pruning_baseline.py`) of the
  plainly trained base to the budget's *measured* latency, then the final training.
- `base` (a cell per seed, budget 1.0): the plainly trained base itself (V1's start), its test accuracy.
Every method but V1, Torch-Pruning and `uniform_scratch` starts its final training from the
ordered-dropout super-network's weights (`finetune.init: supernet`, `finetune.epochs` the same for all);
V1 from its own pruned network, Torch-Pruning from the pruned base. Each cell records its provenance
(`provenance.py`), counts that do not depend on load (epochs, candidates scored, fine-tune steps) beside
its seconds, and whether its training plateaued (`stats.plateau`: < 0.3 holdout points gained over the
last 20% of epochs). The summary refuses cells of different code unless `--mix-commits`.

`--regime` picks the settings: `quick` (15k train images, 3 + 2 epochs, no augmentation: the committed
tables), `converged` (all 45k/5k/10k, flip + crop, epochs to plateau, 5 seeds, budgets 0.75/0.5/0.35;
bench/README.md has its GPU plan) or `smoke` (seconds of training, in a temp folder: the machinery only);
a flag given explicitly wins over the regime's value.
The stages are the pipeline's own functions (`netadapt.stages`), so this measures the tool as shipped.

Each cell's figures are written to `--cells` (committed) when it finishes and skipped when present,
so the benchmark can be spread over several sessions; so is the lookup table they were searched with
(`<cells>/<setup>.lut/`), which later runs reuse. The heavy artifacts (prepared data, super-networks,
fine-tuned models) live under `--work` and are rebuilt when missing. At the end of every
run all finished cells' networks (and the base network) are timed side by side in one process,
interleaved in bursts, threads pinned (`network_latencies`), on the bench's backend; that is the
latency every table and plot reports.

    .venv/bin/python bench/search_quality.py --dataset cifar10 --data DIR --budgets 0.5 --seeds 0 1 2

`--data DIR` (or the `NETADAPT_DATA` environment variable) is the folder holding the datasets'
original files, `DIR/cifar-10/` and `DIR/fashion-mnist/` (`data_folder.py`).

Cells can be computed elsewhere (`--device cuda`, `--cells-only`: no timing on a machine that is not
the target) and by several processes at once, each with its own seeds or budgets: the shared data,
table and super-networks are built under file locks, and each finished cell is merged into the cells
file under one. The side-by-side timing then runs on the target (`--measure-only`).

Writes `bench/results/search_quality.json` and `.png` (test accuracy vs measured latency, one curve
per method, error bars over seeds); `bench/tables.py` renders its tables. The headline figures are
stored under `headline` (`search_quality_summary.headline`) and printed last: second-to-last
`v1_over_v2_total_time=<ratio>`, last `v2_minus_best_baseline_pts=<mean paired difference at 0.5>`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from netadapt import stages
from netadapt import evaluation
from netadapt.checkpoints import load_network, load_supernet
from netadapt.config import Config, load_config
from netadapt.data import load_split, prepare_data
from netadapt.data.datasets import RawSplit
from netadapt.data.prepared import write_split
from netadapt.errors import NetAdaptError
from netadapt.evaluation import evaluate_candidate
from netadapt.io import read_json, write_json
from netadapt.layout import Paths
from netadapt.models import build_supernet, extract
from netadapt.models.source import model_reference
from netadapt.resources.lookup_table import LatencyModel
from netadapt.resources.metric import latency_table, profile_settings
from netadapt.resources.timing import module_latencies
from netadapt.training import accuracy

from data_folder import dataset_root  # bench/, this script's folder
from provenance import provenance, require_one_code
from search_quality_baselines import (Infeasible, base_cell, counts, curve, random_architecture, tp_cell,
                                      uniform_architecture)
from search_quality_regimes import METHODS, V1_REFERENCE, arguments
from search_quality_summary import finished, headline, headline_lines, paired_table, summarize
from stats import plateau_record
from torch_pruning_baseline import NoRatio, rebuild, torch_pruning

REPO = Path(__file__).resolve().parents[1]
# V1 proposes one dimension at a time, so a cut that no single dimension can make alone leaves it few
# proposals (often one: removing a block). `netadapt_v1_dr0.04` gives it a finer schedule (dR_0 = 4%
# of the base instead of the 10% MCD uses): more proposals per iteration, more iterations.
V1_FINE = {"initial_reduction": 0.04}
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Setup:
    """What every cell of one dataset shares; part of each cell's identity (a changed setting is a new cell)."""

    dataset: str
    train_per_class: int  # class-balanced subset of the prepared train split; 0 = all of it
    model: str
    backend: str
    supernet_epochs: int
    final_epochs: int
    candidates: int  # J
    eval_batches: int  # holdout batches per candidate score (0 = all)
    augment: bool = False  # flip + crop in the super-network's and the final training
    eval_per_class: int = 0  # holdout and test cut to this many per class (a smoke run); 0: all

    @property
    def key(self) -> str:
        return (f"{self.dataset}-{self.model}-n{self.train_per_class}-s{self.supernet_epochs}-f{self.final_epochs}"
                f"-j{self.candidates}-e{self.eval_batches}-{self.backend}" + ("-aug" if self.augment else "")
                + (f"-v{self.eval_per_class}" if self.eval_per_class else ""))


def overrides(setup: Setup, data_root: str, seed: int, device: str = "cpu", extra: tuple[str, ...] = ()) -> list[str]:
    """The pipeline config of this setup: params.yaml with these keys overridden (`extra` last: `--set`)."""
    return [f"seed={seed}", f"data.name={setup.dataset}", f"data.root={data_root}", f"model.name={setup.model}",
            f"profile.backend={setup.backend}", f"supernet.epochs={setup.supernet_epochs}",
            "supernet.largest=batch", "supernet.distill=0.5", f"supernet.device={device}", f"finetune.device={device}",
            f"finetune.epochs={setup.final_epochs}", "finetune.init=supernet",
            f"search.candidates={setup.candidates}", f"search.eval_batches={setup.eval_batches}",
            "search.long_term_epochs=0", f"supernet.augment={str(setup.augment).lower()}",
            f"finetune.augment={str(setup.augment).lower()}",
            "search.measure_rounds=0",  # every method at the table's estimate (the hand-made ones have no other)
            *extra]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created): what one process builds, the others wait for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- shared artifacts -------------------------------------------------------------------------------

def prepared(setup: Setup, cfg: Config, work: Path, eval_per_class: int = 0) -> Path:
    """The dataset prepared once (seed 0 split), its train split cut to `train_per_class` per class
    (and holdout and test to `eval_per_class`, for a smoke run; 0: all of them)."""
    folder = work / "prepared"
    if (folder / "meta.json").is_file():
        return folder
    full = work / "prepared-full"
    if not (full / "meta.json").is_file():
        prepare_data(cfg.data, 0, full)
    cut = {"train": setup.train_per_class, "holdout": eval_per_class, "test": eval_per_class}
    if not any(cut.values()):
        full.rename(folder)
        return folder
    tmp = work / "prepared.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    meta = read_json(full / "meta.json")
    for name, per_class in cut.items():
        if not per_class:
            for suffix in (".pt", ".images.npy"):
                os.link(full / f"{name}{suffix}", tmp / f"{name}{suffix}")
            continue
        split = load_split(full, name)
        labels = split.labels.numpy()
        index = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class]
                                        for c in np.unique(labels)]))  # prepared order is seeded, class-mixed
        source = RawSplit(split.images[torch.from_numpy(index)].numpy(), labels[index])
        meta["counts"][name] = write_split(tmp, name, source, np.arange(len(index)), [0, 4])
    write_json(tmp / "meta.json", meta)
    tmp.rename(folder)
    return folder


def link(artifacts: Path, name: str, target: Path) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    if not (artifacts / name).exists():
        with contextlib.suppress(FileExistsError):  # another process's cell of the seed linked it first
            (artifacts / name).symlink_to(target.resolve())


def stage_paths(root: Path, shared: dict[str, Path]) -> Paths:
    """A stage's own folder whose `artifacts/` links to the shared inputs (`prepared`, `supernet`, `profile`)."""
    for name, target in shared.items():
        link(root / "artifacts", name, target)
    return Paths(root / "artifacts", root / "metrics", root / "plots")


def lookup_table(cfg: Config, work: Path, data: Path, pinned: Path) -> Paths:
    """The table every cell of this setup searches with: the one pinned beside the cells (committed,
    so cells finished in later sessions use the same one), else a fresh profile, then pinned."""
    paths = stage_paths(work / "lut", {"prepared": data})
    files = [paths.lut, paths.lut.with_suffix(".json")]
    if pinned.is_dir() and not paths.lut.is_file():
        paths.lut.parent.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(pinned / f.name, f)
        # the profile stage's report is absent: the table's own figures are in lut.json
    if not paths.lut.is_file():
        log.info("profile (%s)", cfg.profile.backend)
        stages.profile(cfg, paths)
    if not pinned.is_dir():
        pinned.mkdir(parents=True)
        for f in files:
            shutil.copy(f, pinned / f.name)
    elif any((pinned / f.name).read_bytes() != f.read_bytes() for f in files):
        raise SystemExit(f"{paths.lut.parent} differs from the table pinned in {pinned}, which this setup's cells "
                         f"were searched with: remove one of them")
    return paths


def supernet(cfg: Config, work: Path, data: Path, plain: bool) -> tuple[Path, float]:
    """The seed's super-network (ordered dropout, or plain for V1) and its training seconds."""
    root = work / f"s{cfg.seed}" / ("plain" if plain else "od")
    paths = stage_paths(root, {"prepared": data})
    with locked(root / ".lock"):  # another process's cell of this seed may be training it
        if not paths.supernet.is_file():
            log.info("supernet seed %d (%s)", cfg.seed, "plain" if plain else "ordered dropout")
            stages.supernet(replace(cfg, supernet=replace(cfg.supernet, sampling="none")) if plain else cfg, paths)
    return paths.supernet.parent, float(read_json(paths.report("supernet"))["seconds"])


# -- one cell ---------------------------------------------------------------------------------------

def run_cell(method: str, budget: float, cfg: Config, work: Path, data: Path, lut: Paths, cells: dict,
             device: torch.device, tp_steps: int = 6) -> dict:
    """Search (or pick, or prune) the network, give it the final training, score it on test; figures,
    seconds, counts and whether the final training plateaued."""
    cfg = replace(cfg, search=replace(cfg.search, budget=budget))
    plain = method.startswith("netadapt_v1") or method.startswith("tp_")
    supernet_dir, supernet_seconds = supernet(cfg, work, data, plain)
    if method.startswith("tp_"):
        try:
            return tp_cell(method, cfg, supernet_dir, supernet_seconds, data, budget, device, tp_steps)
        except NoRatio as exc:
            raise Infeasible(str(exc)) from None
    root = work / f"s{cfg.seed}" / f"{method}-{budget}"
    paths = stage_paths(root, {"prepared": data, "supernet": supernet_dir, "profile": lut.lut.parent})
    start, details, scored, steps = time.perf_counter(), {}, 0, 0
    if method.startswith("netadapt_"):
        algorithm = "mcd" if method == "netadapt_v2" else "netadapt"
        schedule = V1_FINE if method == "netadapt_v1_dr0.04" else {}
        report = stages.search(replace(cfg, search=replace(cfg.search, algorithm=algorithm, **schedule)), paths)
        details = {k: report[k] for k in ("iterations", "candidates_evaluated", "holdout_acc", "resource_estimated")}
        scored = int(report["candidates_evaluated"])
        steps = scored * cfg.search.short_term_steps if algorithm == "netadapt" else 0  # V1: each proposal's
    else:
        model, _ = load_supernet(paths.supernet, model_reference(cfg.model))
        space, latency = model.space(), LatencyModel(model, latency_table(cfg.profile, paths.lut))
        target = budget * latency.estimate(space)
        rng = random.Random(cfg.seed * 1000 + round(budget * 100))
        if method in ("uniform", "uniform_scratch"):
            arch, details = uniform_architecture(space, latency, target)
        elif method == "random":
            arch = random_architecture(space, latency, target, rng)
        else:
            v2 = cells.get(cell_key(cfg, "netadapt_v2", budget))
            if v2 is None:
                raise RuntimeError("best_of_n needs the netadapt_v2 cell of the same seed and budget first")
            if "infeasible" in v2:
                raise Infeasible(f"its N comes from netadapt_v2, which was infeasible ({v2['infeasible']})")
            n = int(v2["candidates_evaluated"])
            archs = [random_architecture(space, latency, target, rng) for _ in range(n)]
            kwargs = evaluation.candidate_settings(cfg, paths)
            scores = [evaluate_candidate(a.to_json(), **kwargs)[0] for a in archs]
            arch = archs[int(np.argmax(scores))]
            details, scored = {"candidates_evaluated": n, "holdout_acc": max(scores)}, n
        (paths.search).mkdir(parents=True, exist_ok=True)
        (paths.search / "arch.json").write_text(arch.to_json() + "\n")
        details["resource_estimated"] = latency.estimate(arch)
    search_seconds = time.perf_counter() - start
    supernet_epochs = cfg.supernet.epochs
    if method == "uniform_scratch":  # the compute V2 is charged, all of it on this one network
        cfg = replace(cfg, finetune=replace(cfg.finetune, init="scratch",
                                            epochs=cfg.supernet.epochs + cfg.finetune.epochs))
        supernet_seconds, supernet_epochs = 0.0, 0
    tuned = stages.finetune(cfg, paths)
    model, arch = load_network(paths.final, model_reference(cfg.model))
    model.to(device)
    test = load_split(paths.prepared, "test")
    return {"test_acc": accuracy(model, test, 512, device)[1], "final_holdout_acc": tuned["holdout_acc"],
            "widths": arch.widths, **details, **plateau_record(curve(paths.plots / "finetune.csv", "holdout_acc")),
            "counts": counts(supernet_epochs, cfg.finetune.epochs, scored, steps),
            "seconds": {"supernet": supernet_seconds, "search": round(search_seconds, 2),
                        "final": float(tuned["seconds"])}}


def run_base(cfg: Config, work: Path, data: Path, device: torch.device) -> dict:
    """The seed's plainly trained base (V1's and Torch-Pruning's start) as a cell of budget 1.0."""
    plain, seconds = supernet(cfg, work, data, plain=True)
    return base_cell(cfg, plain, seconds, work / f"s{cfg.seed}" / "plain" / "plots", data, device)


def save_cell(path: Path, key: str, cell: dict, cells: dict) -> None:
    """Merge one finished cell into the cells file, under a lock (other processes may be writing
    theirs), and take the others' cells into `cells`."""
    with locked(path.with_suffix(".lock")):
        on_disk = read_json(path) if path.is_file() else {}
        cells.update({k: v for k, v in on_disk.items() if k != key})
        cells[key] = cell
        write_json(path, cells)


def cell_key(cfg: Config, method: str, budget: float) -> str:
    return f"{method}-b{budget}-s{cfg.seed}"


# -- side-by-side latency, plot ---------------------------------------------------------------------

def measure(setup: Setup, cfg: Config, work: Path, data: Path, cells: dict, repeats: int) -> dict[str, float]:
    """Every finished cell's network and the base, timed in one process, interleaved (ms); Torch-Pruning's
    rebuilt from their recorded shapes."""
    model = build_supernet(stages.model_spec(cfg, data)).eval()  # latency does not depend on weights
    space = model.space()
    base = extract(model, space)
    keys = sorted(finished(cells))
    modules = [base] + [rebuild(base, cells[k]["structure"], cells[k]["params"]) if "structure" in cells[k]
                        else extract(model, space.with_widths(cells[k]["widths"])) for k in keys]
    settings = replace(profile_settings(cfg.profile), warmup=10, network_repeats=repeats)
    times = module_latencies(modules, model.spec.input_shape, settings, cfg.seed)
    return {"base": times[0], **dict(zip(keys, times[1:]))}


def trained_on(cell: dict) -> str:
    device = (cell.get("provenance") or {}).get("device") or cell.get("ran_on", "cpu")
    return device.removeprefix("cuda: ") if device.startswith("cuda") else "CPU"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(results["datasets"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        entry = results["datasets"][name]
        for method in ("base", *METHODS):
            points = sorted((s["latency_ms_mean"], s["test_acc_mean"], s["test_acc_std"], s["budget"])
                            for s in entry["summary"].values() if s["method"] == method)
            if points:
                xs, ys, es, _ = zip(*points)
                ax.errorbar(xs, [100 * y for y in ys], yerr=[100 * e for e in es], marker="*" if method == "base"
                            else "o", capsize=3, label=method)
        ax.axvline(entry["latency_ms"]["base"], color="grey", ls=":", lw=1)
        s = entry["setup"]
        ran = sorted({trained_on(c) for c in finished(entry["cells"]).values()})
        ax.set_title(f"{name}: {s['model']}, {s['backend']}, supernet {s['supernet_epochs']} + final "
                     f"{s['final_epochs']} epochs{', augmented' if s.get('augment') else ''}\n"
                     f"(trained on {', '.join(ran)})", fontsize=9)
        ax.set_xlabel("latency measured side by side (ms, batch 1)")
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser, args = arguments()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    setup = Setup(args.dataset, args.train_per_class, args.model, args.backend, args.supernet_epochs,
                  args.final_epochs, args.candidates, args.eval_batches, args.augment, args.eval_per_class)
    root = str(dataset_root(parser, args.data, args.dataset))
    if {"tp_uniform", "tp_global"} & set(args.methods):
        torch_pruning()  # before hours of training: say how to install it
    work = args.work / setup.key
    cells_file = args.cells / f"{setup.key}.json"
    cells = read_json(cells_file) if cells_file.is_file() else {}
    cells["_dataset"], cells["_setup"] = setup.dataset, asdict(setup)
    extra = tuple(args.extra)
    base_cfg = load_config(REPO / "params.yaml", overrides(setup, root, 0, args.device, extra))
    with locked(work / ".lock"):  # parallel processes: one prepares the data and table, the others wait
        data = prepared(setup, base_cfg, work, setup.eval_per_class)
        lut = lookup_table(base_cfg, work, data, args.cells / f"{setup.key}.lut")
    device = torch.device(args.device)
    methods = [m for m in ("base", *METHODS) if m in args.methods]  # V2 before best_of_n, which takes its N from it
    for seed in ([] if args.measure_only else args.seeds):
        cfg = load_config(REPO / "params.yaml", overrides(setup, root, seed, args.device, extra))
        for budget in args.budgets:
            for method in methods:
                key = f"base-s{seed}" if method == "base" else cell_key(cfg, method, budget)
                if key in cells:
                    continue
                log.info("cell %s %s", setup.key, key)
                try:
                    if method == "base":
                        cell = run_base(cfg, work, data, device)
                    else:
                        method_cfg = cfg if method != "netadapt_v1_reference" else load_config(
                            REPO / "params.yaml", overrides(setup, root, seed, args.device, (*V1_REFERENCE, *extra)))
                        cell = run_cell(method, budget, method_cfg, work, data, lut, cells, device, args.tp_steps)
                    log.info("cell %s: test acc %.4f, seconds %s", key, cell["test_acc"], cell["seconds"])
                except (Infeasible, NetAdaptError) as exc:  # a budget below what the method can reach
                    log.warning("cell %s: infeasible: %s", key, exc)
                    cell = {"infeasible": str(exc)}
                budget_of = 1.0 if method == "base" else budget
                settings = {**asdict(setup), "budget": budget_of, "seed": seed, "overrides": list(extra)}
                save_cell(cells_file, key, {"dataset": setup.dataset, "method": method, "budget": budget_of,
                                            "seed": seed, **cell,
                                            **({"overrides": list(extra)} if extra else {}),
                                            "provenance": provenance(device, settings)}, cells)
    if args.cells_only:
        return
    require_one_code(parser, cells, args.mix_commits, cells_file.name)
    latency = measure(setup, base_cfg, work, data, cells, args.latency_repeats)
    out = args.results
    results = read_json(out) if out.is_file() else {"datasets": {}}
    summary = summarize(cells, latency)
    entry = {"setup": asdict(setup), "regime": args.regime, "latency_ms": latency, "summary": summary,
             "paired": paired_table(cells), "headline": headline(cells, summary),
             "cells": {k: v for k, v in cells.items() if not k.startswith("_")},
             "lut": read_json(lut.lut.with_suffix(".json")), "threads": torch.get_num_threads(),
             "measured_on": provenance(torch.device("cpu"))}
    results["datasets"][setup.dataset] = entry
    cifar = results["datasets"].get("cifar10", entry)
    results["headline"] = {**cifar["headline"], "dataset": cifar["setup"]["dataset"]}
    write_json(out, results)
    plot(results, out.with_suffix(".png"))
    for name, s in entry["summary"].items():
        t = s["seconds_mean"]
        print(f"{setup.dataset} {name:26s} test acc {100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f} "
              f"(n={len(s['seeds'])}, plateaued {s['plateaued']})  latency x{s['latency_ratio_mean']:.3f} of base  "
              f"seconds supernet {t['supernet']:.0f} search {t['search']:.0f} final {t['final']:.0f}", flush=True)
    print(f"wrote {out}")
    for line in headline_lines(results["headline"]):
        print(line, flush=True)


if __name__ == "__main__":
    main()
