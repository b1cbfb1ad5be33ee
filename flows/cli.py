"""`netadapt`: one subcommand per pipeline stage (what `dvc.yaml` runs), plus `run` and `flow`.

Each stage subcommand reads the typed config (`--params`, `-S key=value` overrides), calls the
stage function from `netadapt.stages` (the same one its Prefect task calls) and prints its metrics.
Bad input exits with status 2 and one line naming the offending key or file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from netadapt.errors import NetAdaptError

STAGES = ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]
PIPELINES = {"run": "the whole pipeline in this process, stage after stage (no caching)",
             "flow": "the whole pipeline as a Prefect flow (cached tasks, mapped candidate evaluation)"}


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


def _run_all(args: argparse.Namespace) -> dict:
    from netadapt.stages import STAGES

    return {stage: _run_stage(stage, args) for stage in STAGES}


def _run_flow(args: argparse.Namespace) -> dict:
    """The Prefect flow; its state (results, ephemeral API database) lives in the project unless
    PREFECT_HOME says otherwise, and telemetry is off. Set before Prefect is imported."""
    os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from flows.pipeline import netadapt_flow

    return netadapt_flow(str(args.params), list(args.overrides), str(args.artifacts), str(args.metrics),
                         str(args.plots))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("netadapt").setLevel(logging.INFO)  # our progress lines, not every library's
    run = {"run": _run_all, "flow": _run_flow}.get(args.command, lambda a: _run_stage(a.command, a))
    try:
        metrics = run(args)
    except NetAdaptError as exc:
        print(f"netadapt: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    print(json.dumps(metrics, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
