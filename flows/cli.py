"""`netadapt`: one subcommand per pipeline stage (what `dvc.yaml` runs), plus `run` and `flow`.

Each stage subcommand reads the typed config (`--params`, `-S key=value` overrides), calls the
stage function from `netadapt.stages` (the same one its Prefect task calls) and prints its metrics.
Bad input exits with status 2 and one line naming the offending key or file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from netadapt.errors import NetAdaptError

STAGES = ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]
PIPELINES = {"run": "the whole pipeline through `dvc repro`",
             "flow": "the whole pipeline as a Prefect flow"}
NOT_BUILT = {"run", "flow"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netadapt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in STAGES + list(PIPELINES):
        help_text = PIPELINES.get(name, f"run the {name} stage")
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", type=Path, help="params file (default: %(default)s)")
        p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a param, e.g. -S search.budget=0.4 (repeatable)")
        p.add_argument("--artifacts", default=Path("artifacts"), type=Path,
                       help="artifacts folder (default: %(default)s)")
        p.add_argument("--metrics", default=Path("metrics"), type=Path,
                       help="metrics folder (default: %(default)s)")
        p.add_argument("--plots", default=Path("plots"), type=Path,
                       help="plot data folder (default: %(default)s)")
    return parser


def _run_stage(name: str, args: argparse.Namespace) -> dict:
    from netadapt import stages
    from netadapt.config import load_config

    cfg = load_config(args.params, args.overrides)
    stage: Callable = getattr(stages, name)
    paths = stages.Paths(artifacts=args.artifacts, metrics=args.metrics, plots=args.plots)
    metrics = stage(cfg, paths)
    from tasks.tracking import log_stage  # imported late: MLflow costs seconds, and bad input never needs it

    log_stage(name, cfg, paths, metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command in NOT_BUILT:
        print(f"netadapt {args.command}: not built yet", file=sys.stderr)
        return 3
    try:
        metrics = _run_stage(args.command, args)
    except NetAdaptError as exc:
        print(f"netadapt: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
