"""`netadapt`: one subcommand per pipeline stage (what `dvc.yaml` runs), plus `run`, `flow` and `serve`.

Each stage subcommand reads the typed config (`--params`, `-S key=value` overrides), runs the
stage as its Prefect task does (`netadapt.run_stage`: the stage function from `netadapt.stages` in
its MLflow run, then the stage's stamp, `netadapt.stamps`: the flow then finds it up to date) and
prints a line of its headline metrics (evaluate and `run`: the budget's verdict first;
`netadapt_flows.console`), or with `--json` every metric as one JSON line.
Bad input exits with status 2 and one line naming the offending key or file, before Prefect is
imported or any server starts. `flow` and `serve` evaluate a search's candidates in threads, or on
Dask workers with `--task-runner dask` (`--dask-address tcp://HOST:PORT` or `local:N`).

One writer per project: every stage command, `run`, `flow` and `serve` hold the project's lock
(`<artifacts>/.lock`, `netadapt.lock`; in a DVC project with DVC's write lock on its folders,
`netadapt_tasks.dvc`) for their whole duration (a stage command: but for opening and logging its
tracking run); a second one exits 2 naming the holder, before any work. Each stage starts by removing what interrupted writes left in the
artifacts, metrics and plots folders (`netadapt.io.clean_stale`), holding the lock.

Ctrl-C (SIGINT) and SIGTERM stop a command the same way: every `finally` runs (the lock is released,
the MLflow runs end KILLED), the epochs and search iterations already finished stay saved (their
progress is written as each ends), and one line says so; exit 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netadapt.errors import NetAdaptError
from netadapt.layout import DEVICE_STAGES, STAGES, Paths
from netadapt_flows.runners import DEFAULT_DASK_ADDRESS, parse_dask_address
from netadapt_flows.server import prefect_env, start_server, stop_server
from netadapt_flows.telemetry import telemetry_off

TASK_RUNNERS = ("threads", "dask")
PIPELINES = {"run": "the whole pipeline in this process, stage after stage (no caching)",
             "flow": "the whole pipeline as a Prefect flow (cached tasks, mapped candidate evaluation)",
             "serve": "serve the Prefect flow as a deployment (schedule, UI) from this project"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("netadapt")
    except PackageNotFoundError:  # run from a checkout that is not installed
        import netadapt

        return getattr(netadapt, "__version__", "unknown")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netadapt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in list(STAGES) + list(PIPELINES):
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
        p.add_argument("--json", action="store_true",
                       help="print the metrics as one JSON line instead of the verdict and a line per stage")
        if name in ("flow", "serve"):
            p.add_argument("--task-runner", choices=TASK_RUNNERS, default="threads",
                           help="where candidate evaluations run: threads of this process, or Dask workers "
                                "(--dask-address) (default: %(default)s)")
            p.add_argument("--dask-address", metavar="ADDRESS", default=None,
                           help="with --task-runner dask: the scheduler of an existing cluster (tcp://HOST:PORT), "
                                f"or local:N for a local cluster of N single-threaded worker processes on 127.0.0.1 "
                                f"(local:N@HOST: listening on HOST) (default: {DEFAULT_DASK_ADDRESS})")
        if name in DEVICE_STAGES:
            p.add_argument("--device", dest="device_name", default="", metavar="NAME",
                           help="run the stage for device NAME of the params' `devices` (its own table, search, "
                                "model: artifacts/devices/NAME/...); default: the profile section's device. "
                                "Not a torch device (that is supernet.device / finetune.device)")
    serve = sub.choices["serve"]
    serve.add_argument("--name", default="netadapt", help="deployment name (default: %(default)s)")
    when = serve.add_mutually_exclusive_group()
    when.add_argument("--cron", help="run on this cron schedule, e.g. '0 3 * * *'")
    when.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS seconds")
    serve.add_argument("--port", type=int, default=4200,
                       help="port of the local Prefect server started when PREFECT_API_URL is not set "
                            "(127.0.0.1 only; 0: any free port; default: %(default)s)")
    serve.add_argument("--once", action="store_true",
                       help="start one run of the deployment now, execute it as the server would, print its "
                            "result and exit")
    return parser


def _stage_config(args: argparse.Namespace, device: str = ""):
    """The validated config and paths of a stage run: a named device's (`--device`) when asked."""
    from netadapt.config import load_config

    cfg = load_config(args.params, args.overrides)
    paths = Paths(artifacts=args.artifacts, metrics=args.metrics, plots=args.plots)
    device = device or getattr(args, "device_name", "")
    if device:
        return cfg.for_device(device), paths.for_device(device)
    return cfg, paths


def _guards() -> tuple:
    """The locks held with the project's: in a DVC project, DVC's write lock on its folders
    (`dvc_writes`: a `dvc repro` refuses before it removes an output)."""
    from netadapt_tasks.dvc import dvc_writes

    return (dvc_writes,)


def _lock(args: argparse.Namespace):
    """The project's lock (`<artifacts>/.lock`), named after the command line that holds it, with `_guards`."""
    from netadapt.lock import project_lock

    return project_lock(args.artifacts, getattr(args, "command_line", None), guards=_guards())


def _stamped_stage(name: str, args: argparse.Namespace, device: str = "") -> dict:
    """A stage run as `dvc repro` runs it, then its stamp: its key is taken before it runs (what it
    read), its outputs' digests after (what it wrote). Holds the project's lock while it works and
    publishes (not while its tracking run opens or is logged: `run_stage`), and starts by removing
    what interrupted writes left behind."""
    from netadapt.lock import check

    cfg, paths = _stage_config(args, device)  # bad input (an unknown --device too) fails here, before any work
    check(args.artifacts, guards=_guards())  # another writer (a `dvc repro` stage too): exit 2 naming it,
    # before any work (opening a tracking run too)
    from netadapt.run_stage import run_stage
    from netadapt_tracking import stage_run  # after validation: bad input never opens a run (MLflow is lazy)

    return run_stage(name, cfg, paths, track=stage_run, by="cli", lock=lambda: _lock(args))


def _run_all(args: argparse.Namespace) -> dict:
    """Every stage, then each named device's stages (`devices`): `{stage: metrics, ..., "devices":
    {name: {stage: metrics}}}` (no "devices" key when none is named)."""
    from netadapt.config import load_config

    cfg = load_config(args.params, args.overrides)
    with _lock(args):  # for the whole pipeline: no other writer between two stages
        result: dict = {stage: _stamped_stage(stage, args) for stage in STAGES}
        if cfg.devices:
            result["devices"] = {name: {stage: _stamped_stage(stage, args, name) for stage in DEVICE_STAGES}
                                 for name in cfg.devices}
        return result


def _task_runner_options(args: argparse.Namespace) -> dict:
    """The flow's task runner parameters, validated before any server or cluster starts."""
    runner, address = getattr(args, "task_runner", "threads"), getattr(args, "dask_address", None)
    if runner != "dask":
        if address is not None:
            raise NetAdaptError(f"--dask-address {address!r}: only with --task-runner dask")
        return {"task_runner": runner, "dask_address": ""}
    address = DEFAULT_DASK_ADDRESS if address is None else address
    parse_dask_address(address)
    import importlib.util

    if importlib.util.find_spec("prefect_dask") is None:
        raise NetAdaptError("--task-runner dask: prefect-dask is not installed (pip install prefect-dask==0.3.7)")
    return {"task_runner": runner, "dask_address": address}


def _flow_parameters(args: argparse.Namespace) -> dict:
    return {"params_file": str(args.params), "overrides": list(args.overrides),
            **Paths(args.artifacts, args.metrics, args.plots).folders(), **_task_runner_options(args)}


def _run_flow(args: argparse.Namespace) -> dict:
    """The Prefect flow, after the params are validated (bad input never imports Prefect)."""
    from netadapt.config import load_config

    parameters = _flow_parameters(args)  # the task-runner flags are checked here, before anything starts
    load_config(args.params, args.overrides)
    with _lock(args):  # the flow's stages run in this process: they share it
        prefect_env()
        from netadapt_flows.flow import netadapt_flow
        from netadapt_flows.reporting import BUDGET_MISSED

        state = netadapt_flow(**parameters, return_state=True)
        if state.name == BUDGET_MISSED:  # a Failed state holding the result: the summary says what missed
            return state.result(raise_on_failure=False)
        return state.result()  # a failed flow raises its error, as before


def _serve(args: argparse.Namespace) -> dict | None:
    """Serve the flow as a deployment from this project: validated params, Prefect's environment
    (`prefect_env`: the project's cache), a local server unless PREFECT_API_URL names one."""
    from netadapt.config import load_config

    parameters = _flow_parameters(args)  # the task-runner flags are checked here, before anything starts
    load_config(args.params, args.overrides)
    with _lock(args):  # while serving: the runs (the runner's subprocesses) share it
        prefect_env()
        server = None if os.environ.get("PREFECT_API_URL") else start_server(args.port)
        try:
            from netadapt_flows.serving import serve

            served = serve(args.name, parameters, cron=args.cron, interval=args.interval,
                           once=args.once)
        except KeyboardInterrupt:
            return None
        finally:
            if server is not None:
                stop_server(server)
    if served is None:
        return None
    state, result = served
    if result is None:
        from netadapt_flows.reporting import BUDGET_MISSED

        missed = " (its network missed the budget: the verdict is in the Prefect UI)" if state == BUDGET_MISSED else ""
        failed = NetAdaptError(f"serve: the run of deployment netadapt/{args.name} ended {state}{missed}")
        failed.exit_code = 1  # not bad input: the run failed (its logs are in the Prefect UI)
        raise failed
    return result


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that it unwinds the same way."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread for the block (Python's default: die at once,
    leaving the lock and RUNNING MLflow runs behind); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_with_dvc() -> None:
    """Run by `dvc repro`: stop (SIGTERM, as above) when that `dvc` process is gone, instead of going on
    orphaned, holding the project's lock (`netadapt.orphan`)."""
    from netadapt.orphan import dvc_parent, stop_with

    parent = dvc_parent()
    if parent is not None and threading.current_thread() is threading.main_thread():
        stop_with(parent)


def _interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """One line for an interrupted command; the shell's exit status for the signal."""
    name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("SIGINT", 130)
    print(f"netadapt: interrupted ({name}): {command} stopped; the epochs and search iterations it finished "
          f"are saved and the same command resumes after them", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    telemetry_off()  # MLflow, Prefect and DVC, before any of them is imported
    args = _parser().parse_args(argv)
    args.command_line = shlex.join(["netadapt", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("netadapt").setLevel(logging.INFO)  # our progress lines, not every library's
    run = {"run": _run_all, "flow": _run_flow, "serve": _serve}.get(args.command,
                                                                    lambda a: _stamped_stage(a.command, a))
    try:
        with _sigterm_interrupts():
            _stop_with_dvc()
            metrics = run(args)
    except NetAdaptError as exc:
        print(f"netadapt: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`): everything unwound, progress kept
        return _interrupted(args.command, exc)
    except OSError as exc:
        from netadapt.io import STORAGE_FULL

        if exc.errno not in STORAGE_FULL:
            raise
        print(f"netadapt: error: {exc.filename or 'a file'}: {STORAGE_FULL[exc.errno]}; nothing half-written "
              f"was published, and the epochs and iterations finished before are kept", file=sys.stderr)
        return 2
    if metrics is None:  # `serve` until interrupted
        return 0
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    elif args.command in ("flow", "serve"):
        from netadapt_flows.reporting import summary_lines

        print("\n".join(summary_lines(metrics)))
    elif metrics:  # a rank other than the writer of a multi-process stage returns nothing
        from netadapt.config import load_config
        from netadapt_flows.console import command_lines

        cfg = load_config(args.params, args.overrides)
        print("\n".join(command_lines(args.command, cfg, metrics, getattr(args, "device_name", ""))))
    if metrics.get("verdict", {}).get("met") is False:  # the flow ended BudgetMissed: never a silent green
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
