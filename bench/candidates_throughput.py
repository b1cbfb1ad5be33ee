"""Candidate evaluations per second on Dask: 1 vs 2 workers, side by side, the way the flow runs them.

A fixed list of random architectures of the default super-network (params.yaml: MobileNetV2 on the
embedded Fashion-MNIST t10k) is scored with the default search settings (BN re-estimated on 4 train
batches, all of holdout scored) by `netadapt_tasks.pipeline.candidate_task` mapped over a
`prefect_dask.DaskTaskRunner` (what `netadapt flow --task-runner dask` does), on two local clusters
started once: 1 and 2 worker processes of one thread each (torch pinned to 1 thread per worker).
Each worker is warmed first (imports, the super-network and holdout loaded once per process); the
timed part is the map of the whole list until every result is back, the Prefect cache bypassed
(`refresh_cache`: every candidate is evaluated). Repeats are interleaved (1, 2, 2, 1, 1, 2, ...) so
that a change in the machine's load hits both alike. `--raw` also times the same list through Dask
alone (`Client.map(evaluate_candidate)`), without Prefect's task runs.

Prepared data and an untrained super-network checkpoint (throughput does not depend on the weights)
are made in a temporary folder; Prefect's state lives there too (nothing of the project's is used).

    .venv/bin/python bench/candidates_throughput.py            # 24 candidates, 3 repeats
    .venv/bin/python bench/candidates_throughput.py --candidates 16 --repeats 5 --raw

Writes bench/results/candidates_throughput.json; the last line is `dask_speedup_2_workers=<x>`: the
median over repeats of (candidates/s with 2 workers) / (candidates/s with 1), each repeat's two runs
adjacent in time. The 1-minute load average before each run is recorded: the machine may be shared.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from netadapt_flows.telemetry import telemetry_off

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "candidates_throughput.json"


def setup(work: Path, n: int, seed: int) -> tuple[list[str], dict]:
    """Prepared data, an untrained super-network and `n` random architectures of it (JSON), plus the
    candidate settings the search would use."""
    import numpy as np
    import torch

    from netadapt import evaluation, layout, stages
    from netadapt.config import load_config
    from netadapt.models import build_supernet
    from netadapt.checkpoints import save_supernet

    cfg = load_config(REPO / "params.yaml", [f"data.root={REPO / 'data' / 'fashion-mnist-t10k'}",
                                             "supernet.device=cpu"])
    paths = layout.Paths(artifacts=work / "artifacts", metrics=work / "metrics", plots=work / "plots")
    stages.prepare(cfg, paths)
    torch.manual_seed(seed)
    model = build_supernet(stages.model_spec(cfg, paths.prepared))
    save_supernet(paths.supernet, model, "bench-untrained")
    space = model.space()
    rng = np.random.default_rng(seed)
    archs = [space.with_widths({d.name: int(rng.choice(d.choices())) for d in space.dims}).to_json()
             for _ in range(n)]
    kwargs = {k: str(Path(v).resolve()) if k.endswith("_path") else v
              for k, v in evaluation.candidate_settings(cfg, paths).items()}
    return archs, kwargs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="also time Dask alone (no Prefect task runs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="netadapt-bench-candidates-"))
    telemetry_off()
    os.environ.update({"PREFECT_HOME": str(work / "prefect"), "NETADAPT_TRACKING": "off",
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
                       "PREFECT_LOGGING_LEVEL": "WARNING"})
    load_start = open("/proc/loadavg").read().split()[:3]
    try:
        archs, kwargs = setup(work, args.candidates, args.seed)
        result = run(archs, kwargs, args.repeats, args.raw)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_end = open("/proc/loadavg").read().split()[:3]
    result.update({"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                               "python": platform.python_version(), "loadavg_start": load_start,
                               "loadavg_end": load_end},
                   "settings": {"candidates": args.candidates, "repeats": args.repeats, "seed": args.seed,
                                "model": "mobilenet_v2 (params.yaml, untrained weights)",
                                "data": "fashion-mnist-t10k holdout", **{k: v for k, v in kwargs.items()
                                                                          if not k.endswith("_path")},
                                "threads_per_worker": 1, "torch_threads_per_worker": 1}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and its .png")
    print(f"dask_speedup_2_workers={result['dask_speedup_2_workers']:.2f}")
    return 0


def plot(result: dict, path: Path) -> None:
    """Candidates/s with 1 and 2 workers: median bars, each repeat's run as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = next(v for k, v in result.items() if isinstance(v, dict) and "1_workers" in v)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for x, workers in enumerate(("1_workers", "2_workers")):
        stats = runs[workers]["candidates_per_s"]
        ax.bar(x, stats["median"], 0.6, color=f"C{x}")
        ax.plot([x] * len(stats["runs"]), stats["runs"], "k.", ms=6)
        ax.text(x + 0.32, stats["median"], f"{stats['median']:.2f}", ha="left", va="center", fontsize=9)
    ax.set_xticks([0, 1], ["1 Dask worker", "2 Dask workers"])
    ax.set_ylabel("candidates scored per second")
    ax.set_title(f"Candidate evaluation on Dask: speedup {result['dask_speedup_2_workers']:.2f}x\n"
                 f"({result['settings']['candidates']} candidates, {result['settings']['repeats']} repeats, "
                 f"dots: each run)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def run(archs: list[str], kwargs: dict, repeats: int, raw: bool) -> dict:
    import logging

    from prefect import flow, unmapped
    from prefect_dask import DaskTaskRunner

    from netadapt.evaluation import evaluate_candidate
    from netadapt_flows.runners import local_cluster, worker_env
    from netadapt_tasks.pipeline import candidate_task, pin_worker_threads

    logging.getLogger("distributed").setLevel(logging.WARNING)
    task = candidate_task.with_options(refresh_cache=True)

    @flow(name="bench-candidates", persist_result=False)
    def mapped(arch_jsons: list[str], settings: dict) -> tuple[float, list]:
        start = time.perf_counter()
        futures = task.map(arch_jsons, unmapped(settings), unmapped(-1), range(len(arch_jsons)))
        scores = [f.result() for f in futures]
        return time.perf_counter() - start, scores

    def warm_and_pin(arch_json: str, settings: dict) -> int:
        pin_worker_threads()
        evaluate_candidate(arch_json, **settings)
        import torch
        return torch.get_num_threads()

    env = worker_env()  # this process's (temporary) Prefect API: the workers report to it
    clusters = {n: local_cluster(n, env) for n in (1, 2)}  # what `--dask-address local:N` starts
    try:
        from distributed import Client

        runners, clients = {}, {}
        for n, cluster in clusters.items():
            clients[n] = Client(cluster, set_as_default=False)
            threads = clients[n].run(warm_and_pin, archs[0], kwargs)  # every worker: loaded, 1 torch thread
            assert set(threads.values()) == {1}, threads
            runners[n] = mapped.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
            runners[n](archs[:2 * n], kwargs)  # warm the Prefect path too (task engine, API client per worker)
        seconds: dict[str, dict[int, list[float]]] = {"prefect": {1: [], 2: []}, "raw": {1: [], 2: []}}
        loads: list[str] = []  # the 1-minute load average before each timed run (the machine is shared)
        reference = None
        for r in range(repeats):
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                loads.append(f"repeat {r} {n} worker(s): {open('/proc/loadavg').read().split()[0]}")
                elapsed, scores = runners[n](archs, kwargs)
                accuracies = [s[0] for s in scores]
                reference = reference or accuracies
                assert accuracies == reference, "the same scores whatever the number of workers"
                seconds["prefect"][n].append(elapsed)
                print(f"repeat {r}  prefect+dask  {n} worker(s)  {len(archs) / elapsed:6.2f} candidates/s  "
                      f"({elapsed:.1f} s; load before: {loads[-1].split()[-1]})", flush=True)
                if raw:
                    start = time.perf_counter()
                    futures = clients[n].map(functools.partial(evaluate_candidate, **kwargs), archs, pure=False)
                    raw_scores = [f.result()[0] for f in futures]
                    elapsed = time.perf_counter() - start
                    assert raw_scores == reference
                    seconds["raw"][n].append(elapsed)
                    print(f"repeat {r}  dask alone    {n} worker(s)  {len(archs) / elapsed:6.2f} candidates/s  "
                          f"({elapsed:.1f} s)", flush=True)
        for c in clients.values():
            c.close()
    finally:
        for cluster in clusters.values():
            cluster.close()
    result: dict = {"loadavg_1min_before_each_run": loads}
    for path in ("prefect", "raw") if raw else ("prefect",):
        result[path] = summarize(seconds[path], len(archs), "prefect+dask" if path == "prefect" else "dask alone")
    result["dask_speedup_2_workers"] = result["prefect"]["speedup_2_workers"]
    return result


def summarize(seconds: dict, n: int, label: str) -> dict:
    """Candidates/s per worker count (median, spread, runs in repeat order) and the speedup: the median
    over repeats of the ratio of the two adjacent runs of a repeat (interleaved: a drift of the
    machine's load hits both alike); the ratio of the medians is kept too."""
    rates = {w: [n / s for s in seconds[w]] for w in (1, 2)}
    paired = [two / one for one, two in zip(rates[1], rates[2])]
    out = {f"{w}_workers": {"candidates_per_s": _stats(rates[w]), "seconds": _stats(seconds[w])} for w in (1, 2)}
    out.update({"speedup_per_repeat": paired, "speedup_2_workers": statistics.median(paired),
                "speedup_of_medians": statistics.median(rates[2]) / statistics.median(rates[1])})
    print(f"{label}: candidates/s median (min-max): "
          + "  ".join(f"{w} worker(s) {statistics.median(rates[w]):.2f} ({min(rates[w]):.2f}-{max(rates[w]):.2f})"
                      for w in (1, 2))
          + f"  speedup per repeat {' '.join(f'{x:.2f}' for x in paired)}: median {out['speedup_2_workers']:.2f}"
          + f" (of the medians: {out['speedup_of_medians']:.2f})")
    return out

if __name__ == "__main__":
    sys.exit(main())
