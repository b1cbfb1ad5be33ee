"""What a command prints when it ends, verdict first: the budget, MET or MISSED and the measurement
against the budget and its tolerance (once evaluate has run), then one readable line per stage (its
headline metrics, `netadapt.layout.SUMMARY_METRICS`). `--json` prints the metrics as one JSON line
instead. Imports no Prefect: the stage commands print with it.

`python -m netadapt_flows.console` prints the same block from the stage reports on disk: what
`make run` and `make exp` end with (a missed budget first, not among the stages' log lines)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netadapt.config import Config
from netadapt.errors import NetAdaptError
from netadapt.io import read_json
from netadapt.layout import DEVICE_STAGES, STAGES, SUMMARY_METRICS, Paths
from netadapt.verdict import budget_check, verdict_name

Row = tuple[str, str, str, dict]  # (label, stage, state, metrics); label `<stage>@<device>` for a named device


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def headline(stage: str, metrics: dict) -> str:
    """The stage's headline metrics, `key=value` each."""
    return "  ".join(f"{k}={number(metrics[k])}" for k in SUMMARY_METRICS.get(stage, ()) if k in metrics)


def verdict_line(cfg: Config, evaluate: dict, device: str = "") -> tuple[bool | None, str]:
    """(budget met, or None before evaluate; `latency ≤ 40% · MISSED · ... (device d): budget_met=false;
    measured latency ... beyond its 5% tolerance: missed`)."""
    check = budget_check(cfg, evaluate)
    met = None if check is None else check.met
    flag = "unknown" if met is None else str(met).lower()
    where = f" (device {device})" if device else ""
    return met, f"{verdict_name(cfg, met)}{where}: budget_met={flag}; " + \
        (check.describe() if check else "evaluate did not run")


def stage_lines(rows: list[Row]) -> list[str]:
    """One aligned line per stage: label, state (when there is one), headline metrics."""
    width = max([9] + [len(label) for label, *_ in rows])
    states = any(state for _, _, state, _ in rows)
    return [(f"{label:<{width}} " + (f"{state:<9} " if states else "") + headline(stage, metrics)).rstrip()
            for label, stage, state, metrics in rows]


def command_lines(command: str, cfg: Config, metrics: dict, device: str = "") -> list[str]:
    """What a stage command (`command`: the stage) or `netadapt run` (`command` "run": every stage's
    metrics, `devices` per named device) prints: the verdict first where evaluate ran, then a line
    per stage. `cfg`: the plain pipeline's config; `device`: a stage command's named device."""
    if command != "run":
        label = f"{command}@{device}" if device else command
        lines = [verdict_line(cfg.for_device(device) if device else cfg, metrics, device)[1]] \
            if command == "evaluate" else []
        return lines + stage_lines([(label, command, "", metrics)])
    rows = [(stage, stage, "", values) for stage, values in metrics.items() if stage != "devices"]
    lines = [verdict_line(cfg, metrics.get("evaluate", {}))[1]]
    for name, stages in metrics.get("devices", {}).items():
        lines.append(verdict_line(cfg.for_device(name), stages.get("evaluate", {}), name)[1])
        rows += [(f"{stage}@{name}", stage, "", values) for stage, values in stages.items()]
    return lines + stage_lines(rows)


def saved_results(cfg: Config, paths: Paths = Paths()) -> dict:
    """Every stage's metrics as its report on disk holds them, shaped as `netadapt run` returns them
    (a named device's under `devices`); a stage without a report (not run yet) is left out."""
    def reports(own: Paths, stages) -> dict:
        return {stage: read_json(own.report(stage)) for stage in stages if own.report(stage).is_file()}

    results = reports(paths, STAGES)
    devices = {name: reports(paths.for_device(name), DEVICE_STAGES) for name in cfg.devices}
    return {**results, "devices": devices} if devices else results


def main(argv: list[str] | None = None) -> int:
    """Print the results block of the pipeline on disk (`make run`, `make exp`); exit 2 on bad params."""
    from netadapt.config import load_config

    parser = argparse.ArgumentParser(prog="python -m netadapt_flows.console", description=main.__doc__)
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--artifacts", default=Path("artifacts"), type=Path)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.params)
        lines = command_lines("run", cfg, saved_results(cfg, Paths(artifacts=args.artifacts)))
    except NetAdaptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
