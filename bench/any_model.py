"""Benchmark: a user's own trained network (written the ordinary PyTorch way), adapted to half its
measured latency by NetAdaptV2 and NetAdapt V1, against Torch-Pruning at the same measured latency and
the same training budget. Side by side, paired by seed.

Per model (`examples/mymodels.py`: `MobileNetV3Small` at width 1.0 and `ResNet18` at half width, after
torchvision's definitions; at 32x32 both train on the CPU) and seed, the *pre-trained* network is the plain module
trained for `--pretrain-epochs` with the project's training loop (`finetune.train_network`); its state
dict is the user's weights, `model.checkpoint`. Each (model, method, seed) is then a *cell*; every
method gets the same `--finetune-epochs` of training after the pre-trained network:
- `netadapt_v2`: the pipeline's stages on the traced model: the ordered-dropout super-network started
  from the checkpoint (`--supernet-epochs` of the budget), the MCD search to `--budget` of the base's
  measured latency (`search.measure_rounds`: the answer is timed beside the base and the search goes
  on while it measures over), then the final training (the rest of the budget) and `evaluate`.
- `netadapt_v1`: NetAdapt V1 on the checkpoint itself (a super-network of 0 plain epochs: the user's
  network), same budget and measurement; its final training is the whole budget.
- `tp_uniform` / `tp_global`: Torch-Pruning (`MetaPruner`, `MagnitudeImportance(p=2)`, the classifier
  kept, widths rounded to `model.granularity`, uniform or global ranking) of the pre-trained module, its
  pruning ratio the least (a 0.1 grid, then bisection) whose network, timed beside the base, measures
  at most the budget; then the whole budget of training with the same loop, and the same ONNX export.
At the end every finished network and the base are timed side by side in one process on the latency
backend (`timing.module_latencies`, evaluate's warm-up; threads pinned): the latency every figure reports.
V2's paired differences (V2 - each other method, per seed) get their mean, std and a 95% t-interval.

Cells are written to `--cells` as they finish and skipped when present (resumable, several processes
at once: shared data, table, pre-trained networks and super-networks are built under file locks); each
records its provenance (`provenance.py`: git commit, dirty flag, device, versions, settings), and the
summary refuses cells of different code unless `--mix-commits`. `--cells-only` computes cells without the timing (on a
GPU, say: `--device cuda`), `--measure-only` times and summarizes the finished cells on the target.

    .venv/bin/python bench/any_model.py --data ../shared/data/cifar-10            # the real run
    .venv/bin/python bench/any_model.py --data ../shared/data/cifar-10 --smoke    # minutes, in a temp folder

Writes `bench/results/any_model.json` and `.png`. Last line: `v2_minus_torch_pruning_pts=<mean>`, V2's
test accuracy minus the stronger Torch-Pruning mode's (per model, by mean), over models and seeds.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from netadapt import stages
from netadapt.checkpoints import load_network
from netadapt.config import Config, load_config
from netadapt.data import load_split
from netadapt.errors import NetAdaptError
from netadapt.finetune import export_onnx, train_network
from netadapt.io import read_json, write_json
from netadapt.layout import Paths
from netadapt.models import build_supernet, extract
from netadapt.models.source import model_reference
from netadapt.resources.metric import profile_settings
from netadapt.resources.timing import module_latencies
from netadapt.training import accuracy
from provenance import add_cell_arguments, provenance, require_one_code
from search_quality import Infeasible, finished, locked, lookup_table, prepared, save_cell, stage_paths
from stats import interval, paired as paired_difference
from torch_pruning_baseline import NoRatio, prune_to_latency, rebuild, structure, torch_pruning

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
# model -> (model.name, its width argument, its default width). At 32x32, batch 1, narrower networks
# than these are so fast (< 0.1 ms) that per-op overhead dominates: pruning channels alone cannot halve
# their measured latency (Torch-Pruning at a 0.9 ratio: 0.6-0.9 of the base), so no comparison is left.
MODELS = {"mobilenet_v3_small": ("mymodels:MobileNetV3Small", "width_mult", 1.0),
          "resnet18": ("mymodels:ResNet18", "width", 32)}
METHODS = ("netadapt_v2", "netadapt_v1", "tp_uniform", "tp_global")
SMOKE = {"train_per_class": 20, "pretrain_epochs": 1, "finetune_epochs": 2, "supernet_epochs": 1, "candidates": 2,
         "eval_batches": 1, "granularity": 8, "tp_steps": 2, "latency_repeats": 20, "seeds": [0]}
SMOKE_SET = ["profile.repeats=3", "profile.warmup=1", "profile.network_repeats=10", "profile.fidelity_samples=2",
             "profile.max_error=100", "profile.max_attempts=1", "search.initial_reduction=0.25",
             "search.short_term_steps=2", "search.measure_rounds=1", "search.bn_recalibration_batches=1"]
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Setup:
    """What every cell of one model shares; part of each cell's identity (a changed setting is a new cell)."""

    model: str
    width: float
    granularity: int
    train_per_class: int
    pretrain_epochs: int
    finetune_epochs: int  # every method's training after the pre-trained network
    supernet_epochs: int  # V2's share of it (ordered dropout); the rest is its final training
    budget: float
    candidates: int
    eval_batches: int
    backend: str
    # further params overrides (`--set`, the smoke's): recorded in each cell, not in the key, so cells
    # computed elsewhere (e.g. `profile.allow_mismatch=true` on a GPU machine) join the same setup
    extra: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return (f"cifar10-{self.model}-w{self.width:g}-g{self.granularity}-n{self.train_per_class}"
                f"-p{self.pretrain_epochs}-f{self.finetune_epochs}-s{self.supernet_epochs}-b{self.budget:g}"
                f"-j{self.candidates}-e{self.eval_batches}-{self.backend}")

    def module(self) -> nn.Module:
        """The user's network as they build it (10 classes, RGB)."""
        name, arg, _ = MODELS[self.model]
        module_name, attr = name.split(":")
        if str(EXAMPLES) not in sys.path:
            sys.path.insert(0, str(EXAMPLES))
        cls = getattr(__import__(module_name), attr)
        return cls(num_classes=10, in_channels=3, **{arg: self.width})


def config(setup: Setup, data_root: str, seed: int, device: str, checkpoint: Path | None = None) -> Config:
    name, arg, _ = MODELS[setup.model]
    return load_config(REPO / "params.yaml", [
        f"seed={seed}", "data.name=cifar10", f"data.root={data_root}", f"model.name={name}",
        f"model.path={EXAMPLES}", f"model.kwargs={{{arg}: {setup.width}}}", f"model.granularity={setup.granularity}",
        f"model.checkpoint={checkpoint or 'null'}", f"profile.backend={setup.backend}",
        f"supernet.epochs={setup.supernet_epochs}", f"supernet.device={device}", f"finetune.device={device}",
        f"finetune.epochs={setup.finetune_epochs - setup.supernet_epochs}", f"search.budget={setup.budget}",
        f"search.candidates={setup.candidates}", f"search.eval_batches={setup.eval_batches}",
        "search.long_term_epochs=0", *setup.extra])


def score_test(model: nn.Module, data: Path, device: torch.device) -> float:
    return accuracy(model, load_split(data, "test"), 512, device)[1]


# -- the user's pre-trained network -----------------------------------------------------------------

def pretrained(setup: Setup, cfg: Config, work: Path, data: Path, device: torch.device, cells: dict,
               cells_file: Path) -> Path:
    """The seed's plainly trained network (a state dict), trained once; its figures are a cell."""
    folder = work / f"s{cfg.seed}"
    path, key = folder / "pretrained.pt", f"pretrained-s{cfg.seed}"
    with locked(folder / ".pretrain.lock"):
        if not path.is_file():
            log.info("pre-train %s seed %d", setup.model, cfg.seed)
            torch.manual_seed(cfg.seed)
            model, start = setup.module(), time.perf_counter()
            plain = replace(cfg.finetune, epochs=setup.pretrain_epochs, lr=cfg.supernet.lr)  # training from scratch
            train, holdout = load_split(data, "train"), load_split(data, "holdout")
            curve = train_network(model, train, holdout, plain, cfg.seed, device)
            seconds = time.perf_counter() - start
            cell = {"method": "pretrained", "seed": cfg.seed, "test_acc": score_test(model, data, device),
                    "final_holdout_acc": curve[-1].holdout_acc, "seconds": {"pretrain": round(seconds, 2)},
                    "provenance": provenance(device, asdict(setup))}
            model.cpu()
            torch.save(model.state_dict(), path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
            save_cell(cells_file, key, cell, cells)
    return path


# -- the methods ------------------------------------------------------------------------------------

def netadapt_cell(method: str, cfg: Config, work: Path, data: Path, lut: Paths, device: torch.device) -> dict:
    """V2 or V1 through the pipeline's stages, from the user's checkpoint."""
    v1 = method == "netadapt_v1"
    if v1:  # the user's network itself is V1's start: no super-network epochs, the whole budget after
        cfg = replace(cfg, supernet=replace(cfg.supernet, sampling="none", epochs=0),
                      finetune=replace(cfg.finetune, epochs=cfg.finetune.epochs + cfg.supernet.epochs),
                      search=replace(cfg.search, algorithm="netadapt"))
    root = work / f"s{cfg.seed}"
    sn = stage_paths(root / ("plain" if v1 else "od"), {"prepared": data})
    with locked(sn.supernet.parent.parent / ".lock"):
        if not sn.supernet.is_file():
            stages.supernet(cfg, sn)
    paths = stage_paths(root / method, {"prepared": data, "supernet": sn.supernet.parent, "profile": lut.lut.parent})
    start = time.perf_counter()
    found = stages.search(replace(cfg, search=replace(cfg.search, algorithm="netadapt" if v1 else "mcd")), paths)
    search_seconds = time.perf_counter() - start
    tuned = stages.finetune(cfg, paths)
    evaluated = stages.evaluate(cfg, paths)
    model, arch = load_network(paths.final, model_reference(cfg.model))
    return {"test_acc": score_test(model.to(device), data, device), "final_holdout_acc": tuned["holdout_acc"],
            "widths": arch.widths,
            **{k: found[k] for k in ("iterations", "candidates_evaluated", "holdout_acc") if k in found},
            "search_measured_over_budget": found.get("measured_over_budget"),
            "evaluate_latency_ratio": evaluated["latency_ratio"], "evaluate_budget_met": evaluated["budget_met"],
            "seconds": {"supernet": float(read_json(sn.report("supernet"))["seconds"]),
                        "search": round(search_seconds, 2), "final": float(tuned["seconds"])}}


def tp_cell(method: str, setup: Setup, cfg: Config, work: Path, data: Path, weights: Path, steps: int,
            repeats: int, device: torch.device) -> dict:
    """Torch-Pruning at the budget's measured latency, each try timed beside the base: the smallest ratio
    of `TP_RATIOS` that measures within the budget, then bisected `steps` times below it."""
    base = setup.module()
    base.load_state_dict(torch.load(weights, weights_only=True))
    shape = (3, 32, 32)
    settings = replace(profile_settings(cfg.profile), warmup=cfg.evaluate.latency_warmup, network_repeats=repeats)
    start = time.perf_counter()
    try:
        pruned = prune_to_latency(base, setup.budget, method == "tp_global", shape, setup.granularity, settings,
                                  cfg.seed, steps)
    except NoRatio as exc:
        raise Infeasible(str(exc)) from None
    model, best, tries = pruned.model, pruned.ratio, pruned.tries
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    train, holdout = load_split(data, "train"), load_split(data, "holdout")
    torch.manual_seed(cfg.seed)
    curve = train_network(model, train, holdout, replace(cfg.finetune, epochs=setup.finetune_epochs), cfg.seed, device)
    final_seconds = time.perf_counter() - start
    folder = work / f"s{cfg.seed}" / method
    folder.mkdir(parents=True, exist_ok=True)
    test_acc = score_test(model, data, device)
    model.cpu().eval()
    export_onnx(model, shape, folder / "model.onnx")  # the pruned network as deployed
    return {"test_acc": test_acc, "final_holdout_acc": curve[-1].holdout_acc if curve else 0.0,
            "pruning_ratio": best, "bisection": tries, "params": sum(p.numel() for p in model.parameters()),
            "structure": structure(model),
            "seconds": {"supernet": 0.0, "search": round(search_seconds, 2), "final": round(final_seconds, 2)}}


# -- side-by-side latency, statistics, plot ---------------------------------------------------------

def final_network(setup: Setup, traced: nn.Module, cell: dict) -> nn.Module:
    """A cell's network rebuilt from its record (so timing needs only the cells file)."""
    if cell["method"].startswith("tp_"):
        return rebuild(setup.module(), cell["structure"], cell["params"])
    return extract(traced, traced.space().with_widths(cell["widths"]))


def measure(setup: Setup, cfg: Config, data: Path, cells: dict, repeats: int) -> dict[str, float]:
    """The base (the user's module, and the traced model's full extraction) and every finished
    network, timed in one process, interleaved (ms)."""
    keys = sorted(k for k, c in finished(cells).items() if c["method"] != "pretrained")
    traced = build_supernet(stages.model_spec(cfg, data)).eval()
    modules = [setup.module().eval(), extract(traced, traced.space())] + [final_network(setup, traced, cells[k])
                                                                          for k in keys]
    settings = replace(profile_settings(cfg.profile), warmup=cfg.evaluate.latency_warmup, network_repeats=repeats)
    times = module_latencies(modules, traced.spec.input_shape, settings, cfg.seed)
    return {"base": times[0], "base_traced": times[1], **dict(zip(keys, times[2:]))}


def summarize(cells: dict, latency: dict) -> tuple[dict, dict]:
    """Per method: accuracy and latency over seeds; per other method: V2's paired differences (points)."""
    rows: dict[str, list[dict]] = {}
    for key, cell in finished(cells).items():
        ms = latency["base"] if cell["method"] == "pretrained" else latency[key]
        rows.setdefault(cell["method"], []).append({**cell, "latency_ms": ms})
    summary = {}
    for method, rs in rows.items():
        accs, ms = [r["test_acc"] for r in rs], [r["latency_ms"] for r in rs]
        seconds = {part: statistics.mean(r["seconds"].get(part, 0.0) for r in rs)
                   for part in ("pretrain", "supernet", "search", "final")}
        summary[method] = {"method": method, "seeds": sorted(r["seed"] for r in rs),
                           "test_acc": interval([100 * a for a in accs]), "latency_ms_mean": statistics.mean(ms),
                           "latency_ratio_mean": statistics.mean(ms) / latency["base"],
                           "latency_ratio_max": max(ms) / latency["base"], "seconds_mean": seconds}
    acc = {(c["method"], c["seed"]): 100 * c["test_acc"] for c in finished(cells).values()}
    paired = {}
    for other in [m for m in (*METHODS, "pretrained") if m != "netadapt_v2" and m in rows]:
        if (diff := paired_difference(acc, "netadapt_v2", other)) is not None:
            paired[other] = diff
    return summary, paired


def stronger_tp(entry: dict) -> str | None:
    """The Torch-Pruning mode with the higher mean test accuracy (the headline's baseline)."""
    modes = [m for m in ("tp_uniform", "tp_global") if m in entry["summary"] and m in entry["paired"]]
    return max(modes, key=lambda m: entry["summary"][m]["test_acc"]["mean"]) if modes else None


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.5), squeeze=False)
    for ax, name in zip(axes[0], models):
        entry = results["models"][name]
        for method in ("pretrained", *METHODS):
            cells = [(k, c) for k, c in finished(entry["cells"]).items() if c["method"] == method]
            if not cells:
                continue
            xs = [entry["latency_ms"]["base" if method == "pretrained" else k] for k, _ in cells]
            ys = [100 * c["test_acc"] for _, c in cells]
            dots = ax.scatter(xs, ys, s=14, alpha=0.5)
            s = entry["summary"][method]
            ax.errorbar([s["latency_ms_mean"]], [s["test_acc"]["mean"]], yerr=[s["test_acc"]["std"]], marker="o",
                        capsize=3, color=dots.get_facecolor()[0][:3], label=method)
        ax.axvline(setup_budget_ms(entry), color="grey", ls=":", lw=1)
        s = entry["setup"]
        ax.set_title(f"{name} ({MODELS[name][1]} {s['width']:g}) on CIFAR-10, {s['train_per_class']}/class; "
                     f"budget {s['budget']:g} of base\npre-train {s['pretrain_epochs']}, then {s['finetune_epochs']} "
                     f"epochs each; {s['backend']}", fontsize=9)
        ax.set_xlabel("latency measured side by side (ms, batch 1)")
        ax.set_ylabel("test accuracy (%): seeds, mean ± std")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def setup_budget_ms(entry: dict) -> float:
    return entry["setup"]["budget"] * entry["latency_ms"]["base"]


# -- the run ----------------------------------------------------------------------------------------

REAL = {"train_per_class": 1000, "pretrain_epochs": 6, "finetune_epochs": 4, "supernet_epochs": 2, "candidates": 8,
        "eval_batches": 8, "granularity": 8, "tp_steps": 8, "latency_repeats": 200, "seeds": [0, 1, 2]}


def run_cells(setup: Setup, root: str, work: Path, data: Path, lut: Paths, cells: dict, cells_file: Path,
              args: argparse.Namespace, settings: dict) -> None:
    """Every missing cell of the seeds, each saved as it finishes (an infeasible one too)."""
    device = torch.device(args.device)
    for seed in settings["seeds"]:
        todo = [m for m in METHODS if m in args.methods and f"{m}-s{seed}" not in cells]
        if not todo:
            continue
        weights = pretrained(setup, config(setup, root, seed, args.device), work, data, device, cells, cells_file)
        cfg = config(setup, root, seed, args.device, weights)
        for method in todo:
            key = f"{method}-s{seed}"
            log.info("cell %s %s", setup.key, key)
            try:
                if method.startswith("netadapt_"):
                    cell = netadapt_cell(method, cfg, work, data, lut, device)
                else:
                    cell = tp_cell(method, setup, cfg, work, data, weights, settings["tp_steps"],
                                   settings["latency_repeats"], device)
                log.info("cell %s: test acc %.4f, seconds %s", key, cell["test_acc"], cell["seconds"])
            except (Infeasible, NetAdaptError) as exc:  # a budget the method cannot reach
                log.warning("cell %s: infeasible: %s", key, exc)
                cell = {"infeasible": str(exc)}
            overrides = {"overrides": list(setup.extra)} if setup.extra else {}
            save_cell(cells_file, key, {"method": method, "seed": seed, **cell, **overrides,
                                        "provenance": provenance(device, asdict(setup))}, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of CIFAR-10's original files")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a minutes-long end-to-end check ({SMOKE}; {' '.join(SMOKE_SET)}), in a temp folder")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="*", help=f"default {REAL['seeds']}; none: only data and tables")
    for name in ("train_per_class", "pretrain_epochs", "finetune_epochs", "supernet_epochs", "candidates",
                 "eval_batches", "granularity", "tp_steps", "latency_repeats"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"default {REAL[name]}")
    parser.add_argument("--mobilenet-width-mult", type=float, help=f"default {MODELS['mobilenet_v3_small'][2]}")
    parser.add_argument("--resnet-width", type=int, help=f"default {MODELS['resnet18'][2]}")
    parser.add_argument("--budget", type=float, default=0.5, help="fraction of the base's measured latency")
    parser.add_argument("--backend", default="onnxruntime-cpu")
    add_cell_arguments(parser, "where training and search run (not timing)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    preset = SMOKE if args.smoke else REAL
    settings = {k: getattr(args, k) if getattr(args, k) is not None else preset[k] for k in REAL}
    scratch = Path(tempfile.gettempdir()) / "netadapt-any-model-smoke"
    base = scratch if args.smoke else REPO / "bench"
    work = args.work or base / "work" / "any_model"
    cells_dir = args.cells or (scratch if args.smoke else REPO / "bench" / "results") / "any_model_cells"
    out = args.results or (scratch if args.smoke else REPO / "bench" / "results") / "any_model.json"
    if not args.data.is_dir():
        raise SystemExit(f"--data: no folder {args.data} (CIFAR-10's original files)")
    if {"tp_uniform", "tp_global"} & set(args.methods):
        torch_pruning()  # before hours of training: say how to install it
    root = str(args.data.resolve())
    extra = tuple((SMOKE_SET if args.smoke else []) + args.extra)
    widths = {"mobilenet_v3_small": args.mobilenet_width_mult, "resnet18": args.resnet_width}
    results = read_json(out) if out.is_file() else {"models": {}}
    for model in args.models:
        width = widths[model] if widths[model] is not None else MODELS[model][2]
        setup = Setup(model, width, settings["granularity"], settings["train_per_class"], settings["pretrain_epochs"],
                      settings["finetune_epochs"], settings["supernet_epochs"], args.budget, settings["candidates"],
                      settings["eval_batches"], args.backend, extra)
        if not 0 <= setup.supernet_epochs <= setup.finetune_epochs:
            raise SystemExit("--supernet-epochs: V2's share of --finetune-epochs, at most all of it")
        cells_file = cells_dir / f"{setup.key}.json"
        cells = read_json(cells_file) if cells_file.is_file() else {}
        cells["_setup"] = asdict(setup)
        cfg = config(setup, root, 0, args.device)
        with locked(work / ".data.lock"):  # both models share the prepared data
            data = prepared(setup, cfg, work / f"cifar10-n{setup.train_per_class}")
        with locked(work / setup.key / ".lock"):
            lut = lookup_table(cfg, work / setup.key, data, cells_dir / f"{setup.key}.lut")
        if not args.measure_only:
            run_cells(setup, root, work / setup.key, data, lut, cells, cells_file, args, settings)
        if args.cells_only:
            continue
        require_one_code(parser, cells, args.mix_commits, cells_file.name)
        latency = measure(setup, cfg, data, cells, settings["latency_repeats"])
        summary, paired = summarize(cells, latency)
        results["models"][model] = {
            "setup": asdict(setup), "kwargs": {MODELS[model][1]: width}, "latency_ms": latency, "summary": summary,
            "paired": paired,
            "cells": {k: v for k, v in cells.items() if not k.startswith("_")},
            "lut": read_json(lut.lut.with_suffix(".json")), "threads": torch.get_num_threads(),
            "measured_on": provenance(torch.device("cpu")),
            "torch_pruning": importlib.metadata.version("torch-pruning")}
    if args.cells_only:
        return
    write_json(out, results)
    plot(results, out.with_suffix(".png"))
    headline = []
    for model, entry in results["models"].items():
        for method in [m for m in ("pretrained", *METHODS) if m in entry["summary"]]:
            s, p = entry["summary"][method], entry["paired"].get(method)
            diff = f"  V2 - it {p['mean']:+.2f} pts (std {p['std']:.2f}, n={len(p['seeds'])})" if p else ""
            print(f"{model} {method:12s} test acc {s['test_acc']['mean']:.2f} ± {s['test_acc']['std']:.2f} "
                  f"(n={len(s['seeds'])})  latency x{s['latency_ratio_mean']:.3f} of base{diff}", flush=True)
        if tp := stronger_tp(entry):
            headline += entry["paired"][tp]["values"]
    print(f"wrote {out}")
    print(f"v2_minus_torch_pruning_pts={round(statistics.mean(headline), 2) if headline else 'nan'}")


if __name__ == "__main__":
    main()
