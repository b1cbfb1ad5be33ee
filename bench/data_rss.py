"""Benchmark: peak resident memory of `netadapt prepare` and `netadapt supernet` with prepared splits
loaded whole (the code at `--before`, a git ref) vs read by the batch from `.npy` image files (this
checkout), side by side on the same dataset, params and machine.

    .venv/bin/python bench/data_rss.py --data DIR [--before 54091ba] [--after REF] [--epochs 1]

`--data DIR` (or the `NETADAPT_DATA` environment variable) is the folder holding the datasets'
original files; CIFAR-10's are read from `DIR/cifar-10/` (`data_folder.py`).

Each stage runs as its own process (the CLI that `dvc.yaml` runs) in a temporary project, tracking
off; its peak RSS comes from `wait4`. The before code runs from a `git worktree` of the ref.
Also reports the size of the prepared splits, i.e. what loading them whole costs, and runs the
after code once more on the small embedded dataset (fashion-mnist-t10k, 5.6 MiB prepared): its
peak RSS next to CIFAR-10's shows what remains does not grow with the dataset. Writes
`bench/results/data_rss.json` and `.png`; the last line is `supernet_peak_rss_ratio=<after/before>`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_folder import add_data_argument, dataset_root  # bench/, this script's folder

REPO = Path(__file__).resolve().parents[1]


def run_stage(code: Path, stage: str, project: Path, overrides: list[str]) -> dict:
    """Run one stage of the code at `code` in `project`; its peak RSS (MiB) and seconds."""
    env = {**os.environ, "PYTHONPATH": str(code), "NETADAPT_TRACKING": "off", "TQDM_DISABLE": "1"}
    args = [sys.executable, "-m", "netadapt_flows.cli", stage, "--params", str(code / "params.yaml"),
            "--artifacts", str(project / "artifacts"), "--metrics", str(project / "metrics"),
            "--plots", str(project / "plots")]
    for item in overrides:
        args += ["-S", item]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{stage} at {code} failed:\n{err[-2000:]}")
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1)}


def plot(rows: dict, path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"before": "CIFAR-10, splits loaded whole", "after": "CIFAR-10, read by the batch",
              "after_small_dataset": "Fashion-MNIST t10k, read by the batch"}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.26
    for i, (name, label) in enumerate(labels.items()):
        values = [rows[name][stage]["peak_rss_mib"] for stage in ("prepare", "supernet")]
        bars = ax.bar([x + (i - 1) * width for x in range(2)], values, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(2), ["netadapt prepare", f"netadapt supernet ({model}, 1 epoch)"])
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title(f"Peak resident memory; CIFAR-10 prepared splits are {rows['before']['prepared_mib']:.0f} MiB")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="54091ba", help="git ref of the whole-split code")
    parser.add_argument("--after", default="", help="git ref of the by-batch code (default: this checkout)")
    add_data_argument(parser)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", default="plain_cnn")
    args = parser.parse_args()
    cifar = dataset_root(parser, args.data, "cifar10")
    overrides = ["data.name=cifar10", f"data.root={cifar}", f"model.name={args.model}",
                 f"supernet.epochs={args.epochs}", "supernet.device=cpu"]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="data-rss-") as tmp:
        trees = {"before": Path(tmp) / "before", "after": Path(tmp) / "after" if args.after else REPO}
        for name, ref in (("before", args.before), ("after", args.after)):
            if ref:
                subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[name]), ref], cwd=REPO,
                               check=True)
        try:
            small = [o for o in overrides if not o.startswith("data.")] + ["data.name=fashion-mnist-t10k",
                                                                            f"data.root={REPO / 'data' / 'fashion-mnist-t10k'}"]
            runs = [("before", trees["before"], overrides), ("after", trees["after"], overrides),
                    ("after_small_dataset", trees["after"], small)]
            for name, code, settings in runs:
                project = Path(tmp) / f"project-{name}"
                rows[name] = {stage: run_stage(code, stage, project, settings) for stage in ("prepare", "supernet")}
                prepared = project / "artifacts" / "prepared"
                rows[name]["prepared_mib"] = round(sum(p.stat().st_size for p in prepared.iterdir()) / 2**20, 1)
                print(name, json.dumps(rows[name]), flush=True)
        finally:
            for name, code in trees.items():
                if code != REPO:
                    subprocess.run(["git", "worktree", "remove", "--force", str(code)], cwd=REPO, check=False)
    ratio = rows["after"]["supernet"]["peak_rss_mib"] / rows["before"]["supernet"]["peak_rss_mib"]
    result = {"settings": {"before": args.before, "after": args.after or "working tree", "data": "cifar10 (45k train / 5k holdout / 10k test, 32x32x3)",
                           "model": args.model, "epochs": args.epochs, "repeats": 1},
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
              "results": rows,
              "prepare_peak_rss_ratio": round(rows["after"]["prepare"]["peak_rss_mib"]
                                              / rows["before"]["prepare"]["peak_rss_mib"], 3),
              "supernet_peak_rss_ratio": round(ratio, 3)}
    out = REPO / "bench" / "results" / "data_rss.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, out.with_suffix(".png"), args.model)
    print(f"prepare_peak_rss_ratio={result['prepare_peak_rss_ratio']}")
    print(f"supernet_peak_rss_ratio={result['supernet_peak_rss_ratio']}")


if __name__ == "__main__":
    main()
