"""The any-model table (`any_model.py`'s results): a user's trained network against Torch-Pruning."""

from __future__ import annotations

from pathlib import Path

from table_format import block, read, signed, where

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
