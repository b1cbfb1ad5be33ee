"""Benchmark: how well do candidates' scores rank them by what they become after fine-tuning, with
batch-norm statistics re-estimated on holdout batches (the old way: the holdout then also scores
them) or on train batches (today's `evaluation.evaluate_candidate`: the holdout only scores)?

Per seed, one search iteration's candidates: MCD's first iteration (`search.propose_iteration`, the
search's own generator and seeding; metric MACs, so no latency table is needed) on an
ordered-dropout super-network of MobileNetV2 trained once (seed 0) on a class-balanced subset of
Fashion-MNIST's train split. Every candidate is scored both ways by `evaluation.evaluate_subnet`:
BN re-estimated on `--bn-batches` batches of the holdout or of train, then scored on the first
`--eval-batches` holdout batches (the same batches the holdout calibration saw, as in the default
setting, where 4 batches of 256 cover the embedded dataset's whole holdout). Each candidate is
then extracted and fine-tuned alike (`--finetune-steps` steps of `finetune.*`'s optimizer and rate
on one cosine, the same batches for every candidate of a seed) and its accuracy measured on the
whole holdout and on test. Reported: Spearman's and Kendall's (tau-b) rank correlation of each
scoring with the fine-tuned accuracies, per seed and as a mean over seeds with a 95% bootstrap
interval (candidates resampled within each seed), and the fine-tuned test accuracy the top-scored
candidate gives up against the best one.

    .venv/bin/python bench/rank_correlation.py --data DIR          # DIR holds fashion-mnist/
    .venv/bin/python bench/rank_correlation.py --data DIR --smoke  # a minute, in a temp folder

The super-network and each finished seed are kept under `--work` (rebuilt when missing), so an
interrupted run goes on. Writes bench/results/rank_correlation.json and .png; `bench/tables.py`
renders its table. Last line: `rank_correlation_train_minus_holdout=<x>`: the mean over seeds of
Spearman's correlation with fine-tuned test accuracy, train-calibrated scores minus holdout-calibrated.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from netadapt import stages
from netadapt.arch import Architecture
from netadapt.checkpoints import load_supernet
from netadapt.config import Config, load_config
from netadapt.data import load_split
from netadapt.evaluation import evaluate_subnet
from netadapt.io import read_json, write_json
from netadapt.models import extract
from netadapt.models.source import model_reference
from netadapt.resources.analytic import MacsModel
from netadapt.schedule import Schedule
from netadapt.search import SearchSettings, mcd_candidates, propose_iteration
from netadapt.training import Loop, accuracy, cosine_schedule, cross_entropy, make_optimizer, train_epoch

from data_folder import add_data_argument, dataset_root  # bench/, this script's folder
from provenance import provenance
from search_quality import locked, prepared, stage_paths

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "rank_correlation.json"
SCORINGS = {"holdout": "BN on holdout batches (old)", "train": "BN on train batches (today)"}
TRUTHS = ("test", "holdout")  # fine-tuned accuracy on test (headline: no image of it scored anything), on holdout
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Setup:
    """Everything a seed's figures depend on besides the seed; its key names the work folder."""

    train_per_class: int = 500  # class-balanced subset of the prepared train split; 0 = all of it
    model: str = "mobilenet_v2"
    width_mult: float = 0.5
    supernet_epochs: int = 2
    candidates: int = 12  # J
    reduction: float = 0.1  # the iteration's cut, a fraction of the base's MACs (search.initial_reduction)
    bn_batches: int = 4  # BN re-estimation batches per scoring (search.bn_recalibration_batches)
    eval_batches: int = 4  # holdout batches each score is taken on (search.eval_batches)
    batch_size: int = 256  # search.batch_size
    finetune_steps: int = 60
    finetune_batch: int = 64
    truth_batches: int = 8  # holdout and test batches (of 256) for the fine-tuned accuracies; 0 = all

    @property
    def key(self) -> str:
        return "-".join(f"{k}{v}" for k, v in asdict(self).items())


SMOKE = Setup(train_per_class=20, width_mult=0.5, supernet_epochs=1, candidates=3, bn_batches=1, eval_batches=1,
              batch_size=32, finetune_steps=2, finetune_batch=16, truth_batches=1)


def config(setup: Setup, data_root: str, seed: int, device: str) -> Config:
    return load_config(REPO / "params.yaml", [
        f"seed={seed}", "data.name=fashion-mnist", f"data.root={data_root}", f"model.name={setup.model}",
        f"model.width_mult={setup.width_mult}", f"supernet.epochs={setup.supernet_epochs}", f"supernet.device={device}",
        "search.metric=macs", f"search.candidates={setup.candidates}", f"search.initial_reduction={setup.reduction}",
        f"search.bn_recalibration_batches={setup.bn_batches}", f"search.eval_batches={setup.eval_batches}",
        f"search.batch_size={setup.batch_size}"])


def supernet(cfg: Config, work: Path, data: Path) -> tuple[Path, dict]:
    """The ordered-dropout super-network (trained once, with `cfg`'s seed: 0) and its stage report."""
    paths = stage_paths(work / "supernet", {"prepared": data})
    with locked(work / "supernet" / ".lock"):
        if not paths.supernet.is_file():
            log.info("supernet: %d epochs", cfg.supernet.epochs)
            stages.supernet(cfg, paths)
    return paths.supernet, read_json(paths.report("supernet"))


def iteration_candidates(model: torch.nn.Module, cfg: Config) -> list[Architecture]:
    """MCD's first iteration from the base network, as the search draws it for `cfg.seed`."""
    space, macs, s = model.space(), MacsModel(model), cfg.search
    schedule = Schedule.from_settings(macs.estimate(space), macs.estimate(space.smallest()), s.budget, s.budget_type,
                                      s.initial_reduction, s.decay, macs.unit)
    generate = mcd_candidates(macs, s.candidates, s.layers_per_candidate, s.split)
    proposal = propose_iteration(0, space, schedule.base, schedule, generate,
                                 SearchSettings(cfg.seed, s.selection, s.max_halvings))
    return [c.arch for c in proposal.candidates]


def fine_tuned(model: torch.nn.Module, arch: Architecture, cfg: Config, setup: Setup, splits: dict,
               device: torch.device) -> dict[str, float]:
    """The candidate extracted and fine-tuned `setup.finetune_steps` steps (the same batches for every
    candidate of a seed); its accuracy on the whole holdout and on test."""
    network = extract(model, arch).to(device)
    f = cfg.finetune
    torch.manual_seed(cfg.seed)
    optimizer = make_optimizer(f.optimizer, network.parameters(), f.lr, f.momentum, f.weight_decay)
    train_epoch(network, splits["train"], optimizer, cosine_schedule(optimizer, setup.finetune_steps),
                Loop(setup.finetune_batch, max_steps=setup.finetune_steps, desc="fine-tune"),
                torch.Generator().manual_seed(cfg.seed), device, cross_entropy())
    return {truth: accuracy(network, splits[truth], 256, device, limit=setup.truth_batches)[1] for truth in TRUTHS}


def run_seed(setup: Setup, cfg: Config, supernet_file: Path, data: Path, device: torch.device, origin: dict) -> dict:
    """One seed's candidates: both scores and the fine-tuned accuracies of each; `origin`: `provenance`."""
    model, _ = load_supernet(supernet_file, model_reference(cfg.model))
    model.to(device)
    splits = {name: load_split(data, name) for name in ("train", "holdout", "test")}
    macs = MacsModel(model)
    rows = []
    for j, arch in enumerate(iteration_candidates(model, cfg)):
        start = time.perf_counter()
        scores = {f"score_{on}": evaluate_subnet(model, arch, splits["holdout"], batch_size=setup.batch_size,
                                                 bn_recalibration_batches=setup.bn_batches,
                                                 eval_batches=setup.eval_batches, device=device,
                                                 calibration=splits[on])
                  for on in SCORINGS}
        tuned = {f"finetuned_{truth}": acc for truth, acc in fine_tuned(model, arch, cfg, setup, splits, device).items()}
        rows.append({"candidate": j, "widths": arch.widths, "macs": macs.estimate(arch), **scores, **tuned,
                     "seconds": round(time.perf_counter() - start, 2)})
        log.info("seed %d candidate %d: %s", cfg.seed, j, {k: round(v, 4) for k, v in {**scores, **tuned}.items()})
    return {"seed": cfg.seed, "setup": asdict(setup), **origin, "candidates": rows}


# -- rank statistics --------------------------------------------------------------------------------

def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        r[x == value] = r[x == value].mean()
    return r


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of the ranks (NaN when either side is constant)."""
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denominator) if denominator else float("nan")


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b: (concordant - discordant pairs) over the pairs untied in x and in y."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    upper = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[:, None] - x[None, :])[upper], np.sign(y[:, None] - y[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denominator) if denominator else float("nan")


CORRELATIONS = {"spearman": spearman, "kendall": kendall}


def correlations(rows: list[dict]) -> dict[str, float]:
    """`<method>_<scoring>_<truth>` for every pair, and `<method>_diff_<truth>`: train minus holdout."""
    out = {}
    for method, corr in CORRELATIONS.items():
        for truth in TRUTHS:
            truth_values = np.array([r[f"finetuned_{truth}"] for r in rows])
            for on in SCORINGS:
                out[f"{method}_{on}_{truth}"] = corr(np.array([r[f"score_{on}"] for r in rows]), truth_values)
            out[f"{method}_diff_{truth}"] = out[f"{method}_train_{truth}"] - out[f"{method}_holdout_{truth}"]
    return out


def regret(rows: list[dict], on: str) -> float:
    """Points of fine-tuned test accuracy the top-scored candidate gives up against the best one."""
    best = max(r["finetuned_test"] for r in rows)
    return 100 * (best - max(rows, key=lambda r: r[f"score_{on}"])["finetuned_test"])


def summarize(seeds: list[dict], draws: int, rng: np.random.Generator) -> dict:
    """Per seed and mean over seeds; a 95% percentile interval from `draws` resamples of each seed's
    candidates (with replacement, within the seed)."""
    warnings.filterwarnings("ignore", "Mean of empty slice|All-NaN slice", RuntimeWarning)  # a constant resample
    per_seed = [correlations(s["candidates"]) for s in seeds]
    names = list(per_seed[0])
    boot = np.array([[correlations([rows[i] for i in rng.integers(0, len(rows), len(rows))])[n] for n in names]
                     for rows in (s["candidates"] for s in seeds) for _ in range(draws)])
    boot = np.nanmean(boot.reshape(len(seeds), draws, len(names)), axis=0)  # each draw: the mean over seeds
    summary = {n: {"per_seed": [p[n] for p in per_seed], "mean": float(np.nanmean([p[n] for p in per_seed])),
                   "ci95": [float(np.nanpercentile(boot[:, i], 2.5)), float(np.nanpercentile(boot[:, i], 97.5))]}
               for i, n in enumerate(names)}
    for on in SCORINGS:
        values = [regret(s["candidates"], on) for s in seeds]
        summary[f"regret_{on}"] = {"per_seed": values, "mean": float(np.mean(values))}
    shift = [100 * np.mean([r["score_holdout"] - r["score_train"] for r in s["candidates"]]) for s in seeds]
    summary["score_holdout_minus_train_points"] = {"per_seed": shift, "mean": float(np.mean(shift))}
    return summary


def plot(result: dict, path: Path) -> None:
    """Each candidate's two scores against its fine-tuned test accuracy, one panel per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = result["seeds"]
    fig, axes = plt.subplots(1, len(seeds), figsize=(4.2 * len(seeds), 3.8), squeeze=False)
    for ax, s in zip(axes[0], seeds):
        rows, c = s["candidates"], correlations(s["candidates"])
        truth = [100 * r["finetuned_test"] for r in rows]
        for i, (on, label) in enumerate(SCORINGS.items()):
            ax.plot(truth, [100 * r[f"score_{on}"] for r in rows], "o^"[i], color=f"C{i}", alpha=0.8,
                    label=f"{label}: Spearman {c[f'spearman_{on}_test']:+.2f}")
        ax.set_xlabel("fine-tuned test accuracy (%)")
        ax.set_ylabel("score: holdout accuracy (%)")
        ax.set_title(f"seed {s['seed']}: {len(rows)} candidates", fontsize=9)
        ax.legend(fontsize=7)
    d = result["summary"]["spearman_diff_test"]
    fig.suptitle(f"Candidates' scores vs fine-tuned accuracy; Spearman, train minus holdout: {d['mean']:+.2f} "
                 f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    defaults = Setup()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples for the intervals")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny settings, one seed, in a temporary folder")
    parser.add_argument("--work", type=Path, default=None,
                        help="kept super-network and seeds (default bench/work/rank_correlation; --smoke: a temp folder)")
    parser.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS.relative_to(REPO)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    root = str(dataset_root(parser, args.data, "fashion-mnist"))
    if args.smoke:
        setup, seeds, draws = SMOKE, args.seeds[:1], 50
        scratch = Path(tempfile.mkdtemp(prefix="netadapt-bench-rank-")) if not (args.work and args.out) else None
        work, out = args.work or scratch / "work", args.out or scratch / "rank_correlation.json"
    else:
        setup = Setup(**{name: getattr(args, name) for name in asdict(defaults)})
        seeds, draws = args.seeds, args.bootstrap
        work, out = args.work or REPO / "bench" / "work" / "rank_correlation", args.out or RESULTS
    work = work / setup.key
    device = torch.device(args.device)
    origin = {"provenance": provenance(device, asdict(setup))}
    base = config(setup, root, 0, args.device)
    with locked(work / ".lock"):
        data = prepared(setup, base, work)
    supernet_file, report = supernet(base, work, data)
    done = []
    for seed in seeds:
        cell = work / f"seed{seed}.json"
        if not cell.is_file():
            write_json(cell, run_seed(setup, config(setup, root, seed, args.device), supernet_file, data, device, origin))
        done.append(read_json(cell))
    counts = read_json(data / "meta.json")["counts"]
    result = {"setup": asdict(setup), "data": {"dataset": "fashion-mnist", **counts},
              "supernet": {k: report[k] for k in ("epochs", "seconds", "holdout_acc_largest", "holdout_acc_smallest")},
              "finetune": {k: getattr(base.finetune, k) for k in ("optimizer", "lr", "momentum", "weight_decay")},
              "bootstrap": draws, "seeds": done, "summary": summarize(done, draws, np.random.default_rng(0))}
    write_json(out, result)
    plot(result, out.with_suffix(".png"))
    s = result["summary"]
    for truth in TRUTHS:
        for method in CORRELATIONS:
            print(f"{method:8s} with fine-tuned {truth:7s}: " + "  ".join(
                f"{on}-BN {s[f'{method}_{on}_{truth}']['mean']:+.3f}" for on in (*SCORINGS, "diff")))
    print(f"wrote {out} and its .png")
    print(f"rank_correlation_train_minus_holdout={s['spearman_diff_test']['mean']:.3f}")


if __name__ == "__main__":
    main()
