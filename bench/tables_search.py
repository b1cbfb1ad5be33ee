"""The search-quality tables (`search_quality.py`'s results): per budget, paired, effort, converged, time."""

from __future__ import annotations

import statistics
from pathlib import Path

from table_format import (DATASET_NAMES, METHODS, block, finished_cells, ran_on, read, signed, span, train_images,
                          where)

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


# -- search space (search_space.py) -------------------------------------------------------------------

SPACE_VARIANTS = {"all": "every dimension", "fixed": "model.fixed: [*.stage, *.kernel]"}


def search_space(results: Path) -> str:
    """MCD with every dimension against stage widths and kernel sizes held fixed (`search_space.py`)."""
    entry = read(results, "search_space.json")
    cells = list(entry["cells"].values())
    head = entry["fixed_minus_all_test_acc_pts"]
    devices = sorted({where(c)[0] for c in cells})
    commits = sorted({where(c)[1][:10] for c in cells})
    caption = (f"*The embedded Fashion-MNIST t10k, `model.name: mobilenet_v3` (small), the default params (MCD, J = 8; "
               f"latency budget 0.5 of the base measured on onnxruntime-cpu, 1 thread, batch 1; super-network 3 "
               f"epochs, final training 2); test accuracy and the final network's latency as `evaluate` measured "
               f"them (timed beside the base, {cells[0]['provenance']['settings']['jobs']} runs side by side). "
               f"Ran on: {'; '.join(devices)} (commit {', '.join(commits)}).*")
    rows = []
    for variant, label in SPACE_VARIANTS.items():
        mine = sorted((c for c in cells if c["variant"] == variant), key=lambda c: c["seed"])
        if not mine:
            continue
        acc = [100 * c["test_acc"] for c in mine]
        ratio = [c["latency_ratio"] for c in mine]
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        diff = "-" if variant == "all" or head is None else (
            f"**{head['mean']:+.2f}**" + (f" [{head['ci95'][0]:+.2f}, {head['ci95'][1]:+.2f}]" if head["ci95"] else "")
            + f" ({signed(head['values'])})")
        rows.append([label, f"{mine[0]['searched_dimensions']} of {mine[0]['dimensions']}",
                     f"{statistics.mean(acc):.2f} ± {std:.2f} ({min(acc):.2f}-{max(acc):.2f})", str(len(mine)),
                     f"{statistics.mean(ratio):.3f} ({max(ratio):.3f})",
                     f"{statistics.mean(c['params'] for c in mine):,.0f}", diff])
    header = ["search space", "dimensions searched", "test acc %, mean ± std (min-max)", "seeds",
              "measured latency / base, mean (max)", "params, mean", "minus every dimension, points: mean [95% CI] (per seed)"]
    return block(caption, header, rows)
