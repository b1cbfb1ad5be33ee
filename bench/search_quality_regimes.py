"""search_quality.py's command line: the methods, and the regimes whose values are its flags' defaults
(`quick`: the committed tables; `converged`: issue 24's operating point; `smoke`: the machinery in
minutes, in the system's temp folder)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from data_folder import FOLDERS, add_data_argument
from provenance import add_cell_arguments

REPO = Path(__file__).resolve().parents[1]
METHODS = ("netadapt_v2", "netadapt_v1", "netadapt_v1_reference", "uniform", "uniform_scratch", "random", "best_of_n",
           "tp_uniform", "tp_global", "netadapt_v1_dr0.04")
DEFAULT_METHODS = METHODS[:-1]
V1_REFERENCE = ("search.algorithm=netadapt", "search.preset=netadapt-reference")  # loaded with these overrides
REGIMES = {  # --regime: the flags' defaults
    "quick": {"train_per_class": 1500, "supernet_epochs": 3, "final_epochs": 2, "candidates": 8, "eval_batches": 8,
              "augment": False, "budgets": [0.5], "seeds": [0, 1, 2], "latency_repeats": 200, "tp_steps": 6,
              "eval_per_class": 0, "set": []},
    # all 45k train images, flip + crop; epochs chosen for a cosine schedule to plateau (checked per cell)
    "converged": {"train_per_class": 0, "supernet_epochs": 100, "final_epochs": 30, "candidates": 8,
                  "eval_batches": 0, "augment": True, "budgets": [0.75, 0.5, 0.35], "seeds": [0, 1, 2, 3, 4],
                  "latency_repeats": 200, "tp_steps": 6, "eval_per_class": 0, "set": []},
    "smoke": {"train_per_class": 20, "supernet_epochs": 1, "final_epochs": 2, "candidates": 2, "eval_batches": 1,
              "augment": True, "budgets": [0.5], "seeds": [0], "latency_repeats": 10, "tp_steps": 1,
              "eval_per_class": 20,
              "set": ["profile.repeats=3", "profile.warmup=1", "profile.network_repeats=10",
                      "profile.fidelity_samples=2", "profile.max_error=100", "profile.max_attempts=1",
                      "search.short_term_steps=2", "search.bn_recalibration_batches=1", "supernet.batch_size=64",
                      "finetune.batch_size=64"]},
}


def arguments() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The command line; every setting left unset takes `--regime`'s value."""
    parser = argparse.ArgumentParser(description="Benchmark: the search against hand-made, random, from-scratch "
                                                 "and Torch-Pruning networks at equal measured latency")
    parser.add_argument("--regime", choices=sorted(REGIMES), default="quick",
                        help="the settings' defaults: quick (the committed tables), converged, smoke (temp folder)")
    parser.add_argument("--dataset", choices=sorted(FOLDERS), default="cifar10")
    add_data_argument(parser)
    parser.add_argument("--train-per-class", type=int, help="0: the whole train split")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--backend", default="onnxruntime-cpu")
    for name in ("supernet_epochs", "final_epochs", "candidates", "eval_batches", "latency_repeats", "tp_steps",
                 "eval_per_class"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="flip + crop in the super-network's and the final training")
    parser.add_argument("--budgets", type=float, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="*", help="none: only prepare data and table")
    parser.add_argument("--methods", nargs="+", choices=("base", *METHODS), default=["base", *DEFAULT_METHODS])
    add_cell_arguments(parser, "where super-networks train, searches score and final training runs (not timing)")
    args = parser.parse_args()
    regime = REGIMES[args.regime]
    for name, value in regime.items():
        if name != "set" and getattr(args, name, None) is None:
            setattr(args, name, value)
    args.extra = [*regime["set"], *args.extra]
    bench = Path(tempfile.gettempdir()) / "netadapt-search-quality-smoke" if args.regime == "smoke" else REPO / "bench"
    suffix = "" if args.regime == "quick" else f"_{args.regime}"
    args.work = args.work or bench / "work" / f"search_quality{suffix}"
    args.cells = args.cells or bench / "results" / "search_quality_cells"
    args.results = args.results or bench / "results" / f"search_quality{suffix}.json"
    return parser, args
