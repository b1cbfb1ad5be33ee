"""Benchmark: how much latency width alone can remove, per built-in model and backend, as the lookup
table estimates it and as measured.

For each model and backend: profile the space (`measure_table`, as `netadapt profile` does), then
time the base network, the width-only minimum (every dimension at its smallest non-zero width, no
block removed) and the smallest network (blocks removed too) side by side in one rotation
(`network_latencies`), and compare the table's ratios (`width_only_min_ratio`, `min_ratio` of
`netadapt profile`) with the measured ones. A search cannot get below `min_ratio`; a uniform width
multiplier cannot get below `width_only_min_ratio`.

    .venv/bin/python bench/latency_reach.py [--input 1 28 28] [--repeats 300]

Writes `bench/results/latency_reach.json`; the last line is
`width_only_measured_ratio_mobilenet_v2_onnxruntime_cpu=<x>`.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from netadapt.arch import ModelSpec
from netadapt.models import build_supernet
from netadapt.models.registry import BUILTIN_MODELS
from netadapt.resources.metric import latency_reach
from netadapt.resources.profiling import measure_table
from netadapt.resources.timing import ProfileSettings, network_latencies

REPO = Path(__file__).resolve().parents[1]


def reach(model: str, backend: str, input_shape: tuple[int, int, int], repeats: int) -> dict:
    torch.manual_seed(0)
    supernet = build_supernet(ModelSpec(model, input_shape, 10)).eval()
    settings = ProfileSettings(backend, threads=1, batch_size=1, warmup=5, repeats=20, network_repeats=50)
    profile = measure_table(supernet, settings, fidelity_samples=8, seed=0)
    space = supernet.space()
    estimated = latency_reach(supernet, profile.table)  # as `netadapt profile` reports them
    measured = network_latencies(supernet, [space, space.narrowest(), space.smallest()],
                                 ProfileSettings(backend, 1, 1, 10, 20, repeats), seed=1)
    return {"model": model, "backend": backend, "units": len(profile.table),
            "lut_held_out_mean_error": profile.error, "base_ms": measured[0],
            "width_only_min_ratio_estimated": estimated["width_only_min_ratio"],
            "width_only_min_ratio_measured": measured[1] / measured[0],
            "min_ratio_estimated": estimated["min_ratio"], "min_ratio_measured": measured[2] / measured[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=int, nargs=3, default=[1, 28, 28], metavar=("C", "H", "W"))
    parser.add_argument("--models", nargs="+", default=sorted(BUILTIN_MODELS))
    parser.add_argument("--backends", nargs="+", default=["torch-cpu", "onnxruntime-cpu"])
    parser.add_argument("--repeats", type=int, default=300, help="timed runs of each network, in bursts")
    args = parser.parse_args()
    rows = []
    for model in args.models:
        for backend in args.backends:
            r = reach(model, backend, tuple(args.input), args.repeats)
            rows.append(r)
            print(f"{model:14s} {backend:16s} base {r['base_ms']:.3f} ms  width only: table "
                  f"{r['width_only_min_ratio_estimated']:.2f} measured {r['width_only_min_ratio_measured']:.2f}  "
                  f"smallest: table {r['min_ratio_estimated']:.2f} measured {r['min_ratio_measured']:.2f}  "
                  f"(table held-out error {r['lut_held_out_mean_error']:.1%})", flush=True)
    out = REPO / "bench" / "results" / "latency_reach.json"
    out.write_text(json.dumps({"settings": {"input": args.input, "batch_size": 1, "threads": 1,
                                            "repeats": args.repeats, "torch": torch.__version__,
                                            "machine": platform.processor() or platform.machine()},
                               "rows": rows}, indent=2) + "\n")
    headline = [r for r in rows if r["model"] == "mobilenet_v2" and r["backend"] == "onnxruntime-cpu"]
    if headline:
        print(f"width_only_measured_ratio_mobilenet_v2_onnxruntime_cpu={headline[0]['width_only_min_ratio_measured']:.3f}")


if __name__ == "__main__":
    main()
