"""The measurement tables quoted in README.md and bench/README.md, rendered from bench/results/*.json.

A quoted table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; it is a settings
caption taken from the JSON followed by the markdown table. Figures are never typed by hand: edit
the JSON (by re-running the benchmark) and rewrite the blocks.

    python bench/tables.py            # print every table
    python bench/tables.py --write    # rewrite the blocks in README.md and bench/README.md
    python bench/tables.py --check    # exit 1 naming each quoted table that differs from its JSON

Standard library only (json), so the check is fast and needs no torch.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "bench/README.md")
BLOCK = re.compile(r"(<!-- table:([a-z0-9_]+) -->\n)(.*?)(<!-- /table:\2 -->)", re.S)

# search_quality.py's methods, in its order; a label for the headline table
METHODS = {"netadapt_v2": "NetAdaptV2 (MCD)", "netadapt_v1": "NetAdapt (V1)", "uniform": "uniform width multiplier",
           "random": "random network", "best_of_n": "best of N random", "netadapt_v1_dr0.04": "NetAdapt (V1), dR₀ = 4%"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST"}


def read(results: Path, name: str) -> dict:
    return json.loads((results / name).read_text())


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def block(caption: str, header: list[str], rows: list[list[str]]) -> str:
    return f"{caption}\n\n{table(header, rows)}"


def spread(median: float, low: float, high: float, fmt: str = ".3f") -> str:
    return f"{median:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def span(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def signed(values: list[float]) -> str:
    return ", ".join(f"{v:+.2f}" for v in values)


# -- search quality ---------------------------------------------------------------------------------

def finished_cells(entry: dict) -> dict:
    return {k: c for k, c in entry["cells"].items() if "infeasible" not in c}


def train_images(setup: dict) -> str:
    n = setup["train_per_class"]
    return "all train images" if n == 0 else f"{n} train images per class"


def where(cell: dict) -> tuple[str, str]:
    """(device, commit) as a cell records them (`provenance.py`'s record; older cells: `ran_on`, `commit`)."""
    record = cell.get("provenance") or {}
    commit = record.get("git_commit", "") + ("+dirty" if record.get("dirty") else "")
    return record.get("device") or cell.get("ran_on") or "?", commit or cell.get("commit") or "?"


def ran_on(entry: dict) -> list[str]:
    """Where the cells' training and search ran, as the cells record it."""
    return sorted({where(c)[0] for c in entry["cells"].values() if where(c)[0] != "?"})


def sq_caption(entry: dict) -> str:
    s, ctx = entry["setup"], entry["lut"]["context"]
    train = train_images(s)
    return (f"*{DATASET_NAMES.get(s['dataset'], s['dataset'])}, {s['model']}, {train}; super-network "
            f"{s['supernet_epochs']} epochs, final training {s['final_epochs']} epochs; J = {s['candidates']} "
            f"candidates per iteration, each scored on {s['eval_batches']} holdout batches. Latency: "
            f"{ctx['backend']} (onnxruntime {ctx['onnxruntime_version']}, torch {ctx['torch_version']}), "
            f"{ctx['threads']} thread, batch {ctx['batch_size']}, on {ctx['cpu']}; lookup table of "
            f"{entry['lut']['entries']} units. Training and search ran on: {'; '.join(ran_on(entry))}.*")


def sq_rows(entry: dict) -> list[dict]:
    order = list(SQ_LABELS)  # every method search_quality.py writes, the base first
    return sorted(entry["summary"].values(), key=lambda s: (-s["budget"], order.index(s["method"])))


def search_quality_full(results: Path, dataset: str) -> str:
    """One dataset's summary: a row per (budget, method), budgets tightest last."""
    entry = read(results, "search_quality.json")["datasets"][dataset]
    rows = []
    for s in sq_rows(entry):
        t = s["seconds_mean"]
        rows.append([f"{s['budget']:g}", s["method"],
                     f"{100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f} "
                     f"({100 * s['test_acc_min']:.2f}-{100 * s['test_acc_max']:.2f})", str(len(s["seeds"])),
                     f"{s['latency_ratio_mean']:.3f} ({s['latency_ratio_max']:.3f})", f"{t['supernet']:.0f}",
                     f"{t['search']:.0f}", f"{t['final']:.0f}", f"{sum(t.values()):.0f}"])
    header = ["budget", "method", "test acc %, mean ± std (min-max)", "seeds", "measured latency / base, mean (max)",
              "super-network s", "search s", "final training s", "total s"]
    return block(sq_caption(entry), header, rows)


def search_quality(results: Path) -> str:
    """The headline: test accuracy and measured latency per method and budget, both datasets."""
    datasets = read(results, "search_quality.json")["datasets"]
    columns = [(d, b) for d in datasets for b in sorted({s["budget"] for s in datasets[d]["summary"].values()},
                                                       reverse=True)]
    rows = []
    for method, label in METHODS.items():
        cells = []
        for d, b in columns:
            s = datasets[d]["summary"].get(f"{method}@{b}")
            cells.append("-" if s is None else f"{100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f} "
                                               f"· {s['latency_ratio_mean']:.3f}")
        rows.append([label] + cells)
    header = ["method"] + [f"{DATASET_NAMES.get(d, d)} @ {b:g}" for d, b in columns]
    setups = "; ".join(f"{DATASET_NAMES.get(d, d)}: {e['setup']['model']}, {train_images(e['setup'])}, super-network "
                       f"{e['setup']['supernet_epochs']} epochs + final training {e['setup']['final_epochs']}, "
                       f"trained on {', '.join(ran_on(e))}" for d, e in datasets.items())
    ctx = next(iter(datasets.values()))["lut"]["context"]
    caption = (f"*Test accuracy %, mean ± std over seeds · measured latency / base network, at a latency budget of "
               f"0.75, 0.5 and 0.35 of the base. {setups}. Latency: {ctx['backend']}, {ctx['threads']} thread, "
               f"batch {ctx['batch_size']}, on {ctx['cpu']}.*")
    return block(caption, header, rows)


def paired(entry: dict, a: str, b: str, budget: float) -> list[float]:
    """Per seed (in order), method a's test accuracy minus b's in points, where both finished."""
    acc = {(c["method"], c["seed"]): c["test_acc"] for c in finished_cells(entry).values() if c["budget"] == budget}
    seeds = sorted({s for m, s in acc if m == a} & {s for m, s in acc if m == b})
    return [100 * (acc[(a, s)] - acc[(b, s)]) for s in seeds]


def search_quality_paired(results: Path) -> str:
    """V2 minus every other method, paired by seed."""
    datasets = read(results, "search_quality.json")["datasets"]
    others = [m for m in METHODS if m != "netadapt_v2"]
    rows = []
    for d, entry in datasets.items():
        for budget in sorted({s["budget"] for s in entry["summary"].values()}, reverse=True):
            cells = []
            for m in others:
                diffs = paired(entry, "netadapt_v2", m, budget)
                cells.append(f"**{statistics.mean(diffs):+.2f}** ({signed(diffs)})" if diffs else "-")
            rows.append([DATASET_NAMES.get(d, d), f"{budget:g}"] + cells)
    caption = ("*NetAdaptV2's test accuracy minus each method's, in points: mean over seeds (per seed 0, 1, 2); "
               "same cells as the tables above.*")
    return block(caption, ["dataset", "budget"] + [f"V2 - {m}" for m in others], rows)


def search_quality_effort(results: Path) -> str:
    """How many networks each search scored, and what it cost against V2's total time."""
    datasets = read(results, "search_quality.json")["datasets"]
    rows = []
    for d, entry in datasets.items():
        cells = finished_cells(entry)
        for s in sq_rows(entry):
            if s["method"] not in ("netadapt_v2", "netadapt_v1", "netadapt_v1_dr0.04", "best_of_n"):
                continue
            mine = [c for c in cells.values() if c["method"] == s["method"] and c["budget"] == s["budget"]]
            iters = [c["iterations"] for c in mine if "iterations" in c]
            scored = [c["candidates_evaluated"] for c in mine]
            v2 = entry["summary"][f"netadapt_v2@{s['budget']}"]["seconds_mean"]
            total = sum(s["seconds_mean"].values())
            rows.append([DATASET_NAMES.get(d, d), f"{s['budget']:g}", s["method"],
                         span(iters), span(scored),
                         f"{total:.0f}", f"{total / sum(v2.values()):.2f}"])
    caption = ("*Per (dataset, budget, method), over seeds: search iterations, networks scored (MCD candidates; "
               "V1 proposals, each after its short-term fine-tune; best-of-N's N), total seconds (super-network + "
               "search + final training, mean) and that total over NetAdaptV2's. Hardware: as in each dataset's table.*")
    return block(caption, ["dataset", "budget", "method", "iterations", "networks scored", "total s", "total / V2's"],
                 rows)


# -- search quality, converged regime (search_quality.py --regime converged) -------------------------

CONVERGED = "search_quality_converged.json"
SQ_LABELS = {"base": "plain base (unpruned)", **METHODS, "netadapt_v1_reference": "NetAdapt (V1), reference preset",
             "uniform_scratch": "uniform, from scratch", "tp_uniform": "Torch-Pruning, uniform",
             "tp_global": "Torch-Pruning, global"}
NOT_MEASURED = ("*Not measured yet: `bench/search_quality.py --regime converged` (GPU plan below) writes "
                f"`bench/results/{CONVERGED}`, then `bench/tables.py --write` fills this table.*")


def converged_entry(results: Path) -> dict | None:
    if not (results / CONVERGED).is_file():
        return None
    return read(results, CONVERGED)["datasets"]["cifar10"]


def ci(diff: dict | None) -> str:
    if not diff:
        return "-"
    interval = f" [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]" if diff.get("ci95") else ""
    return f"**{diff['mean']:+.2f}**{interval}"


def converged_rows(entry: dict) -> list[dict]:
    """The converged run's per-(budget, method) summaries: budgets from the loosest, methods in table order."""
    order = list(SQ_LABELS)
    return sorted(entry["summary"].values(), key=lambda s: (-s["budget"], order.index(s["method"])))


def search_quality_converged(results: Path) -> str:
    """Per (budget, method): test accuracy over seeds, measured latency, V2 minus it with its 95%
    interval, plateaued cells; the base row first; the headline figures in the caption."""
    entry = converged_entry(results)
    if entry is None:
        return NOT_MEASURED
    rows = []
    for s in converged_rows(entry):
        diff = entry["paired"].get(str(s["budget"]), {}).get(s["method"])
        rows.append([f"{s['budget']:g}", SQ_LABELS[s["method"]],
                     f"{100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f}", str(len(s["seeds"])),
                     f"{s['plateaued']}/{len(s['seeds'])}",
                     f"{s['latency_ratio_mean']:.3f} ({s['latency_ratio_max']:.3f})", ci(diff)])
    h, st = entry["headline"], entry["setup"]
    best, ratio = h["v2_minus_best_baseline_pts"], h["v1_over_v2_total_time"]
    devices = sorted({where(c)[0] for c in entry["cells"].values()})
    times = f"{ratio['ratio']:.2f}" if ratio else "-"
    acc = h["base_test_acc"]
    base = "-" if acc is None else f"{acc['mean']:.2f}" + (
        f" [{acc['ci95'][0]:.2f}, {acc['ci95'][1]:.2f}]" if acc["ci95"] else "")
    caption = (f"*CIFAR-10, {st['model']}, {train_images(st)}, flip + crop: {'yes' if st.get('augment') else 'no'}; "
               f"super-network {st['supernet_epochs']} epochs, final training {st['final_epochs']} epochs, J = "
               f"{st['candidates']}. Test accuracy %, mean ± std over seeds; plateaued: cells whose training gained "
               f"< 0.3 holdout points over its last 20% of epochs; V2 - it: paired by seed, mean [95% t-interval]. "
               f"Base test accuracy {base}; V2 - strongest other at "
               f"{best['budget'] if best else 0.5:g} ({best['vs'] if best else '-'}): {ci(best)}; V1 (reference "
               f"preset) / V2 total time: {times}. Trained on: "
               f"{'; '.join(devices)}.*")
    header = ["budget", "method", "test acc %", "seeds", "plateaued", "measured latency / base, mean (max)",
              "V2 - it, points [95% CI]"]
    return block(caption, header, rows)


def search_quality_time(results: Path) -> str:
    """The paper-style time table: per method (at each budget), super-network / search / final training,
    in seconds and as counts that do not depend on load."""
    entry = converged_entry(results)
    if entry is None:
        return NOT_MEASURED
    rows = []
    for s in converged_rows(entry):
        t, n = s["seconds_mean"], s.get("counts_mean")
        counted = ["-"] * 4 if n is None else [f"{n['supernet_epochs']:g}", f"{n['candidates_scored']:g}",
                                               f"{n['finetune_steps']:g}", f"{n['final_epochs']:g}"]
        rows.append([f"{s['budget']:g}", SQ_LABELS[s["method"]], f"{t['supernet']:.0f}", counted[0],
                     f"{t['search']:.0f}", counted[1], counted[2], f"{t['final']:.0f}", counted[3],
                     f"{sum(t.values()):.0f}"])
    devices = sorted({where(c)[0] for c in entry["cells"].values()})
    caption = (f"*Mean over seeds per (budget, method). Seconds are wall-clock on the device that trained the cell "
               f"({'; '.join(devices)}), one process per (method, seed) sharing it, so they vary with load; the "
               f"counts do not: super-network epochs (V1 and Torch-Pruning: the plain base's), networks scored "
               f"(MCD candidates; V1 proposals; best-of-N's N; Torch-Pruning's ratios timed), V1's short-term "
               f"fine-tune steps, final-training epochs.*")
    header = ["budget", "method", "super-network s", "epochs", "search s", "scored", "fine-tune steps",
              "final training s", "epochs", "total s"]
    return block(caption, header, rows)


# -- super-network ----------------------------------------------------------------------------------

def sn_caption(settings: dict, model: str = "") -> str:
    seeds = ", ".join(str(s) for s in settings["seeds"])
    return (f"*{model or settings['model']} on {settings['data']} ({settings['train']} train / {settings['holdout']} holdout "
            f"images), {settings['epochs']} epochs, batch {settings['batch_size']}, groups of "
            f"{settings['group_size']}, seeds {seeds}; device: {settings.get('device', 'cpu')}.*")


def supernet_overhead(results: Path, name: str = "supernet_overhead_mobilenet_v2.json") -> str:
    d = read(results, name)
    s = d["settings"]
    rows = [[name, spread(v["seconds_median"], v["seconds_min"], v["seconds_max"], ".1f"),
             spread(v["ratio_median"], v["ratio_min"], v["ratio_max"], ".2f")] for name, v in d["summary"].items()]
    timed = f", the first {s['steps']} batches of an epoch timed" if s.get("steps") else ""
    caption = (f"*{s['model']} on {s['data']} ({s['train']} train images{timed}), batch {s['batch_size']}, groups of "
               f"{s['group_size']}, {s['repeats']} interleaved repeats; torch {s['torch']}, {s['torch_threads']} "
               f"threads on {s['cpus']} CPU cores. Configured default: {s['configured']}.*")
    return block(caption, ["layout", "epoch s, median [min, max]", "/ plain epoch, median [min, max]"], rows)


def supernet_quality(results: Path) -> str:
    """The four training layouts, per model: the largest sub-network against plain training."""
    variants = ["plain", "od, largest on group 0", "od, largest on the batch", "od, largest on the batch + distill 0.5"]
    rows, captions = [], set()
    for model in ("plain_cnn", "mobilenet_v2"):
        d = read(results, f"supernet_quality_{model}.json")
        s = d["summary"]
        p = s["plain"]
        rows.append([model, spread(p["largest_median"], p["largest_min"], p["largest_max"])]
                    + [f"{s[v]['largest_median']:.3f}, gap {s[v]['gap_points']:+.2f}" for v in variants[1:]]
                    + [" / ".join(f"{s[v]['epoch_ratio_to_plain']:.2f}" for v in variants[1:])])
        captions.add(sn_caption(d["settings"], "each model"))
    header = ["model", "plain, median [min, max]", "largest: group", "largest: batch", "batch + distill 0.5",
              "epoch time / plain (group / batch / distill)"]
    return block(" ".join(sorted(captions)), header, rows)


def supernet_variants(results: Path, name: str, loss: bool, timing: bool = True) -> str:
    """A run of several variants against plain: the largest sub-network, its gap per seed, the smallest."""
    d = read(results, name)
    runs, summary = d["runs"], d["summary"]
    plain = [r["largest"] for r in runs["plain"]]
    rows = []
    for variant, s in summary.items():
        gaps = [100 * (p - r["largest"]) for p, r in zip(plain, runs[variant])]
        row = [variant, spread(s["largest_median"], s["largest_min"], s["largest_max"]),
               "-" if variant == "plain" else f"{s['gap_points']:.2f} / {statistics.mean(gaps):.2f} ({signed(gaps)})",
               f"{s['smallest_median']:.3f}"] + ([f"{s['epoch_ratio_to_plain']:.2f}"] if timing else [])
        if loss:
            row.append(f"{statistics.median(r['loss'] for r in runs[variant]):.2f}")
        rows.append(row)
    header = ["variant", "largest, median [min, max]", "gap to plain, points: median / mean (per seed)",
              "smallest, median"] + (["epoch time / plain"] if timing else []) + (["final train loss, median"] if loss else [])
    return block(sn_caption(d["settings"]), header, rows)


# -- latency, memory, throughput, moves -------------------------------------------------------------

def latency_reach(results: Path) -> str:
    d = read(results, "latency_reach.json")
    s = d["settings"]
    rows = [[r["model"], r["backend"], f"{r['units']}", f"{r['base_ms']:.3g}",
             f"{r['width_only_min_ratio_estimated']:.2f} / {r['width_only_min_ratio_measured']:.2f}",
             f"{r['min_ratio_estimated']:.2f} / {r['min_ratio_measured']:.2f}",
             f"{100 * r['lut_held_out_mean_error']:.1f}%"] for r in d["rows"]]
    caption = (f"*Input {'x'.join(str(x) for x in s['input'])}, batch {s['batch_size']}, {s['threads']} thread, "
               f"{s['repeats']} timed runs per network in interleaved bursts; torch {s['torch']} on {s['machine']}.*")
    header = ["model", "backend", "table units", "base ms", "width alone: table / measured",
              "smallest: table / measured", "table's held-out error"]
    return block(caption, header, rows)


def data_rss(results: Path) -> str:
    d = read(results, "data_rss.json")
    s, r = d["settings"], d["results"]
    rows = [[f"`netadapt {stage}`"] + [f"{r[k][stage]['peak_rss_mib']:.0f} MiB" for k in
                                       ("before", "after", "after_small_dataset")] for stage in ("prepare", "supernet")]
    caption = (f"*Peak RSS of one stage process. {s['data']}, {r['after']['prepared_mib']:.0f} MiB of prepared "
               f"splits; small dataset: {r['after_small_dataset']['prepared_mib']:.1f} MiB prepared; model "
               f"{s['model']}, {s['epochs']} epoch, {s['repeats']} run each; {d['machine']}.*")
    header = ["stage", "splits loaded whole (baseline)", "read by the batch", "read by the batch, small dataset"]
    return block(caption, header, rows)


def candidates_throughput(results: Path) -> str:
    d = read(results, "candidates_throughput.json")
    s, m, p = d["settings"], d["machine"], d["prefect"]
    load = [float(x.rsplit(": ", 1)[1]) for x in d["loadavg_1min_before_each_run"]]

    def rate(k: str) -> str:
        c = p[k]["candidates_per_s"]
        return f"{c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f})"
    sp = p["speedup_per_repeat"]
    rows = [[f"{m['processor']}, {m['cpus']} CPUs; 1-min load {min(load):.1f}-{max(load):.1f}", str(s["repeats"]),
             rate("1_workers"), rate("2_workers"), f"**{p['speedup_2_workers']:.2f}** ({min(sp):.2f}-{max(sp):.2f})"]]
    caption = (f"*{s['candidates']} random architectures of {s['model']}, scored on the {s['data']} "
               f"(BN re-estimated on {s['bn_recalibration_batches']} batches of {s['batch_size']}), device "
               f"{s['device']}, {s['threads_per_worker']} thread and {s['torch_threads_per_worker']} torch thread "
               f"per worker. Candidates/s: median (min-max) over repeats.*")
    return block(caption, ["machine", "repeats", "1 worker", "2 workers", "speedup, median (min-max)"], rows)


def mcd_moves(results: Path) -> str:
    rows, s = [], {}
    for metric in ("latency", "macs"):
        d = read(results, f"mcd_moves_{metric}.json")
        s = d["settings"]
        for split in ("absolute", "capacity"):
            r = d["results"][split]
            rows.append([metric, split, str(r["candidates"]), str(r["partial cut"]), str(r["to minimum"]),
                         str(r["block removed"]), f"{r['extreme_share_of_changes']:.2f}"])
    caption = (f"*First iteration of a search on {s['model']} ({s['input']}), dR = {100 * s['reduction']:g}% of "
               f"the base, L = {s['layers']}, {s['draws']} seeded draws per split; deterministic.*")
    header = ["metric", "split", "candidates", "partial cuts", "to minimum", "blocks removed",
              "extreme share of changes"]
    return block(caption, header, rows)


# -- rank correlation --------------------------------------------------------------------------------

def _interval(entry: dict, fmt: str = "+.2f") -> str:
    per_seed = ", ".join(f"{v:{fmt}}" for v in entry["per_seed"])
    ci = f" [{entry['ci95'][0]:{fmt}}, {entry['ci95'][1]:{fmt}}]" if "ci95" in entry else ""
    return f"**{entry['mean']:{fmt}}**{ci} ({per_seed})"


def rank_correlation(results: Path) -> str:
    """Candidates' scores (BN re-estimated on holdout or on train) against their fine-tuned accuracy."""
    if not (results / "rank_correlation.json").is_file():
        return ("*Not measured yet: `bench/rank_correlation.py` writes `bench/results/rank_correlation.json`, "
                "then `bench/tables.py --write` fills this table.*")
    d = read(results, "rank_correlation.json")
    s, n, summary, seeds = d["setup"], d["data"], d["summary"], d["seeds"]
    rows = [[truth, method.capitalize()] + [_interval(summary[f"{method}_{on}_{truth}"]) for on in ("holdout", "train", "diff")]
            for truth in ("test", "holdout") for method in ("spearman", "kendall")]
    regret = [summary["regret_holdout"], summary["regret_train"]]
    gap = {"mean": regret[1]["mean"] - regret[0]["mean"],
           "per_seed": [b - a for a, b in zip(regret[0]["per_seed"], regret[1]["per_seed"])]}
    rows.append(["test", "points the top-scored candidate trails the best"] + [_interval(r) for r in (*regret, gap)])
    origin = sorted({f"{where(c)[0]}, torch {(c.get('provenance') or c)['torch']}, commit "
                     f"{where(c)[1].removesuffix('+dirty')[:10]}{' (dirty)' if where(c)[1].endswith('+dirty') or c.get('dirty') else ''}"
                     for c in seeds})
    truth = "all" if not s["truth_batches"] else f"the first {s['truth_batches']} batches of 256"
    caption = (f"*Fashion-MNIST, {s['model']} x{s['width_mult']:g}, {s['train_per_class']} train images per class "
               f"({n['train']}), {n['holdout']} holdout, {n['test']} test; ordered-dropout super-network "
               f"{d['supernet']['epochs']} epochs (seed 0; holdout accuracy of the largest "
               f"{d['supernet']['holdout_acc_largest']:.3f}). Per seed: MCD's first iteration, J = {s['candidates']} "
               f"candidates cutting {100 * s['reduction']:g}% of the base's MACs; each scored with BN re-estimated on "
               f"{s['bn_batches']} batches of {s['batch_size']} (holdout or train), on the first {s['eval_batches']} "
               f"holdout batches; then fine-tuned {s['finetune_steps']} steps of {s['finetune_batch']} "
               f"({d['finetune']['optimizer']}, lr {d['finetune']['lr']:g}, one cosine) and measured on {truth} of "
               f"holdout and test. Mean over seeds {', '.join(str(c['seed']) for c in seeds)} [95% bootstrap interval, "
               f"{d['bootstrap']} resamples of each seed's candidates] (per seed). Ran on: {'; '.join(origin)}.*")
    header = ["fine-tuned accuracy on", "rank correlation", "BN on holdout (old)", "BN on train (today)",
              "train - holdout"]
    return block(caption, header, rows)


# -- any model ---------------------------------------------------------------------------------------

AM_METHODS = {"pretrained": "pre-trained (the base)", "netadapt_v2": "NetAdaptV2 (MCD)", "netadapt_v1": "NetAdapt (V1)",
              "tp_uniform": "Torch-Pruning, uniform", "tp_global": "Torch-Pruning, global"}


def any_model(results: Path) -> str:
    """A user's trained network adapted to half its measured latency: V2, V1 and Torch-Pruning, per model."""
    if not (results / "any_model.json").is_file():
        return ("*Not measured yet: `bench/any_model.py` (commands below) writes `bench/results/any_model.json`, "
                "then `bench/tables.py --write` fills this table.*")
    models = read(results, "any_model.json")["models"]
    rows, setups, ran = [], [], {}
    for model, entry in models.items():
        cells = entry["cells"].values()
        setups.append(f"{model} ({', '.join(f'{k}={v:g}' for k, v in entry['kwargs'].items())})")
        for c in cells:
            device, commit = where(c)
            ran.setdefault(device, set()).add(commit[:10])
        for method, label in AM_METHODS.items():
            mine = [c for c in cells if c["method"] == method]
            summary, diff = entry["summary"].get(method), entry["paired"].get(method)
            infeasible = sum("infeasible" in c for c in mine)
            if summary is None:
                if infeasible:
                    rows.append([model, label, "-", f"0 ({infeasible} infeasible)", "-", "-", "-"])
                continue
            acc, t = summary["test_acc"], summary["seconds_mean"]
            low, high = min(acc["values"]), max(acc["values"])
            ci = f" [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]" if diff and diff["ci95"] else ""
            rows.append([model, label, f"{acc['mean']:.2f} ± {acc['std']:.2f} ({low:.2f}-{high:.2f})",
                         f"{len(summary['seeds'])}" + (f" ({infeasible} infeasible)" if infeasible else ""),
                         f"{summary['latency_ratio_mean']:.3f} ({summary['latency_ratio_max']:.3f})",
                         f"**{diff['mean']:+.2f}**{ci} ({signed(diff['values'])})" if diff else "-",
                         f"{sum(t.values()):.0f}"])
    ran_where = [f"{device} (commits {', '.join(sorted(commits))})" for device, commits in sorted(ran.items())]
    first = next(iter(models.values()))
    s, ctx = first["setup"], first["lut"]["context"]
    caption = (f"*CIFAR-10, {s['train_per_class']} train images per class, all holdout and test images; "
               f"{', '.join(setups)} from `examples/mymodels.py`. Pre-trained {s['pretrain_epochs']} epochs, then "
               f"{s['finetune_epochs']} epochs of training per method (V2: {s['supernet_epochs']} of them on the "
               f"super-network); budget {s['budget']:g} of the base's measured latency; J = {s['candidates']}; "
               f"Torch-Pruning {first['torch_pruning']}. Latency: {ctx['backend']} (onnxruntime "
               f"{ctx['onnxruntime_version']}, torch {ctx['torch_version']}), {ctx['threads']} thread, batch "
               f"{ctx['batch_size']}, on {ctx['cpu']}, all networks side by side. Cells ran on: {'; '.join(ran_where)}.*")
    header = ["model", "method", "test acc %, mean ± std (min-max)", "seeds", "measured latency / base, mean (max)",
              "V2 - it, points: mean [95% CI] (per seed)",
              "seconds, mean (base: pre-training; others: super-network + search + final training)"]
    return block(caption, header, rows)


TABLES: dict[str, Callable[[Path], str]] = {
    "search_quality": search_quality,
    "search_quality_cifar10": lambda r: search_quality_full(r, "cifar10"),
    "search_quality_fashion_mnist": lambda r: search_quality_full(r, "fashion-mnist"),
    "search_quality_paired": search_quality_paired,
    "search_quality_effort": search_quality_effort,
    "search_quality_converged": search_quality_converged,
    "search_quality_time": search_quality_time,
    "supernet_overhead": supernet_overhead,
    "supernet_quality": supernet_quality,
    "supernet_quality_weighting": lambda r: supernet_variants(r, "supernet_quality_mobilenet_v2_weighting.json", False,
                                                               timing=False),
    "supernet_quality_augment": lambda r: supernet_variants(r, "supernet_quality_mobilenet_v2_augment.json", True),
    "supernet_overhead_onepass": lambda r: supernet_overhead(r, "supernet_overhead_mobilenet_v2_onepass.json"),
    "supernet_overhead_onepass_candidate": lambda r: supernet_overhead(
        r, "supernet_overhead_mobilenet_v2_onepass_candidate.json"),
    # one-pass variants: epoch times left out (measured under heavy sharing; supernet_overhead_onepass has the cost)
    "supernet_quality_onepass_screen": lambda r: supernet_variants(
        r, "supernet_quality_plain_cnn_onepass_screen.json", False, timing=False),
    "supernet_quality_onepass": lambda r: supernet_variants(r, "supernet_quality_plain_cnn_onepass.json", False,
                                                            timing=False),
    "supernet_quality_onepass_mobilenet": lambda r: supernet_variants(
        r, "supernet_quality_mobilenet_v2_onepass.json", False, timing=False),
    "supernet_quality_onepass_mobilenet_seeds": lambda r: supernet_variants(
        r, "supernet_quality_mobilenet_v2_onepass_seeds.json", False, timing=False),
    "latency_reach": latency_reach,
    "data_rss": data_rss,
    "candidates_throughput": candidates_throughput,
    "mcd_moves": mcd_moves,
    "any_model": any_model,
    "rank_correlation": rank_correlation,
}


def render(results: Path) -> dict[str, str]:
    return {name: make(results) for name, make in TABLES.items()}


def rewrite(text: str, tables: dict[str, str]) -> str:
    """The document with every quoted block replaced by its rendering (an unknown name is an error)."""
    def fill(m: re.Match) -> str:
        if m.group(2) not in tables:
            raise KeyError(f"unknown table {m.group(2)!r}")
        return f"{m.group(1)}{tables[m.group(2)]}\n{m.group(4)}"
    return BLOCK.sub(fill, text)


def stale(root: Path) -> list[str]:
    """`document: table` for every quoted table under `root` that differs from its JSON's rendering."""
    tables = render(root / "bench" / "results")
    found = []
    for doc in DOCUMENTS:
        for m in BLOCK.finditer((root / doc).read_text()):
            if tables.get(m.group(2)) != m.group(3).rstrip("\n"):
                found.append(f"{doc}: {m.group(2)}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the quoted tables in the documents")
    action.add_argument("--check", action="store_true", help="exit 1 if a quoted table differs from its JSON")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository root (documents and bench/results)")
    args = parser.parse_args()
    if args.check:
        differ = stale(args.root)
        for name in differ:
            print(f"stale table, run bench/tables.py --write: {name}", file=sys.stderr)
        sys.exit(1 if differ else 0)
    tables = render(args.root / "bench" / "results")
    if args.write:
        for doc in DOCUMENTS:
            path = args.root / doc
            text = path.read_text()
            if (new := rewrite(text, tables)) != text:
                path.write_text(new)
                print(f"wrote {doc}")
        return
    for name, text in tables.items():
        print(f"<!-- table:{name} -->\n{text}\n<!-- /table:{name} -->\n")


if __name__ == "__main__":
    main()
