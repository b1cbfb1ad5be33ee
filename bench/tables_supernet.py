"""The super-network, latency, data, throughput, MCD-move and rank-correlation tables."""

from __future__ import annotations

import statistics
from pathlib import Path

from table_format import block, read, signed, spread, where

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
