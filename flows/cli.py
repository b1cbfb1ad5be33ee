"""`netadapt`: one subcommand per pipeline stage (what `dvc.yaml` runs), plus `run`, `flow` and `serve`.

Each stage subcommand reads the typed config (`--params`, `-S key=value` overrides), calls the
stage function from `netadapt.stages` (the same one its Prefect task calls), writes the stage's
stamp (`netadapt.stamps`: the flow then finds it up to date) and prints its metrics.
Bad input exits with status 2 and one line naming the offending key or file, before Prefect is
imported or any server starts. `flow` and `serve` evaluate a search's candidates in threads, or on
Dask workers with `--task-runner dask` (`--dask-address tcp://HOST:PORT` or `local:N`).

One writer per project: every stage command, `run`, `flow` and `serve` hold the project's lock
(`<artifacts>/.lock`, `netadapt.lock`) for their whole duration; a second one exits 2 naming the
holder, before any work. Each stage starts by removing what interrupted writes left in the
artifacts, metrics and plots folders (`netadapt.io.clean_stale`), holding the lock.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from netadapt.errors import NetAdaptError
from netadapt.layout import DEVICE_STAGES, STAGES

TASK_RUNNERS = ("threads", "dask")
DEFAULT_DASK_ADDRESS = "local:2"
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
        if name in ("flow", "serve"):
            p.add_argument("--json", action="store_true",
                           help="print the result as one JSON line instead of a summary line per stage")
            p.add_argument("--task-runner", choices=TASK_RUNNERS, default="threads",
                           help="where candidate evaluations run: threads of this process, or Dask workers "
                                "(--dask-address) (default: %(default)s)")
            p.add_argument("--dask-address", metavar="ADDRESS", default=None,
                           help="with --task-runner dask: the scheduler of an existing cluster (tcp://HOST:PORT), "
                                f"or local:N for a local cluster of N single-threaded worker processes "
                                f"(default: {DEFAULT_DASK_ADDRESS})")
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
    from netadapt.layout import Paths

    cfg = load_config(args.params, args.overrides)
    paths = Paths(artifacts=args.artifacts, metrics=args.metrics, plots=args.plots)
    device = device or getattr(args, "device_name", "")
    if device:
        return cfg.for_device(device), paths.for_device(device)
    return cfg, paths


def _run_stage(name: str, args: argparse.Namespace, device: str = "") -> dict:
    from netadapt import stages

    cfg, paths = _stage_config(args, device)
    stage: Callable = getattr(stages, name)
    from netadapt_tracking import stage_run  # after validation: bad input never opens a run (MLflow is lazy)

    with stage_run(name, cfg, paths) as run:  # the child run spans the stage: FAILED / KILLED if it does
        metrics = stage(cfg, paths)
        run.finish(metrics)
    return metrics


def _lock(args: argparse.Namespace):
    """The project's lock (`<artifacts>/.lock`), named after the command line that holds it."""
    from netadapt.lock import project_lock

    return project_lock(args.artifacts, getattr(args, "command_line", None))


def _stamped_stage(name: str, args: argparse.Namespace, device: str = "") -> dict:
    """A stage run as `dvc repro` runs it, then its stamp: its key is taken before it runs (what it
    read), its outputs' digests after (what it wrote). Holds the project's lock, and starts by
    removing what interrupted writes left behind."""
    cfg, paths = _stage_config(args, device)  # bad input (an unknown --device too) fails here, before any work
    from netadapt import stamps
    from netadapt.io import clean_stale

    with _lock(args):  # another writer: exit 2 naming it, before any work
        clean_stale([paths.artifacts, paths.metrics, paths.plots])
        key = stamps.stage_key(name, cfg, paths)
        metrics = _run_stage(name, args, device)
        stamps.write_stamp(name, key, paths, metrics, by="cli")
    return metrics


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


def _quiet_prefect(record: logging.LogRecord) -> bool:
    """Prefect's INFO lines (a "Finished in state Completed()" per task run) stay in the UI; the
    console gets our summary line per stage instead. So do a local Dask cluster's (workers joining and
    leaving: `--task-runner dask`)."""
    return not (record.name.startswith(("prefect", "distributed")) and record.levelno < logging.WARNING)


def _prefect_env() -> None:
    """Prefect's environment, set before Prefect is imported: its state (results = the cache, API
    database) in the project's `.prefect/` unless PREFECT_HOME says otherwise, telemetry off, and
    the library's log lines (logger `netadapt`) sent to the Prefect UI."""
    os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    extra = [name for name in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if name.strip()]
    if "netadapt" not in extra:
        os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(extra + ["netadapt"])
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_prefect)


def parse_dask_address(address: str) -> tuple[str, int | str]:
    """`("local", N)` for `local:N` (a LocalCluster of N single-threaded worker processes), `("scheduler",
    address)` for a scheduler's address (`tcp://HOST:PORT`, or `tls://`); NetAdaptError naming
    `--dask-address` otherwise. Pure: callable before Prefect or Dask is imported."""
    local = re.fullmatch(r"local:(\d+)", address.strip())
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= 256:
            raise NetAdaptError(f"--dask-address {address!r}: local:N needs 1 <= N <= 256 workers")
        return "local", workers
    remote = re.fullmatch(r"(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d+)", address.strip())
    if remote and 0 < int(remote.group(3)) < 65536:
        return "scheduler", address.strip()
    raise NetAdaptError(f"--dask-address {address!r}: expected tcp://HOST:PORT (a running Dask scheduler) or local:N "
                        f"(a local cluster of N workers), e.g. tcp://10.0.0.5:8786 or local:2")


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
    return {"params_file": str(args.params), "overrides": list(args.overrides), "artifacts": str(args.artifacts),
            "metrics": str(args.metrics), "plots": str(args.plots), **_task_runner_options(args)}


def _run_flow(args: argparse.Namespace) -> dict:
    """The Prefect flow, after the params are validated (bad input never imports Prefect)."""
    from netadapt.config import load_config

    parameters = _flow_parameters(args)  # the task-runner flags are checked here, before anything starts
    load_config(args.params, args.overrides)
    with _lock(args):  # the flow's stages run in this process: they share it
        _prefect_env()
        from netadapt_flows.pipeline import netadapt_flow

        return netadapt_flow(**parameters)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _start_server(port: int) -> subprocess.Popen | None:
    """A Prefect server on 127.0.0.1 with this project's PREFECT_HOME and telemetry off, for `serve`;
    its log goes to `$PREFECT_HOME/server.log`. A server already answering on the port is used as
    it is (None: nothing to stop). Sets PREFECT_API_URL (before Prefect is imported)."""
    if port == 0:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/api"
    if _healthy(api_url):
        print(f"netadapt: using the Prefect server already at {api_url}", file=sys.stderr)
        os.environ["PREFECT_API_URL"] = api_url
        return None
    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("prefect")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "prefect"]
    with open(home / "server.log", "ab") as log:
        server = subprocess.Popen(command + ["server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)  # its own process group: stopped as a whole
    deadline = time.monotonic() + 180
    while not _healthy(api_url):
        if server.poll() is not None or time.monotonic() > deadline:
            _stop_server(server)
            raise NetAdaptError(f"serve: the Prefect server on port {port} did not start (see {home / 'server.log'}; "
                                f"another --port, or set PREFECT_API_URL to a running server)")
        time.sleep(0.5)
    print(f"netadapt: Prefect server at http://127.0.0.1:{port} (log: {home / 'server.log'})", file=sys.stderr)
    os.environ["PREFECT_API_URL"] = api_url
    return server


def _stop_server(server: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _serve(args: argparse.Namespace) -> dict | None:
    """Serve the flow as a deployment from this project: validated params, Prefect's environment
    (`_prefect_env`: the project's cache), a local server unless PREFECT_API_URL names one."""
    from netadapt.config import load_config

    parameters = _flow_parameters(args)  # the task-runner flags are checked here, before anything starts
    load_config(args.params, args.overrides)
    with _lock(args):  # while serving: the runs (the runner's subprocesses) share it
        _prefect_env()
        server = None if os.environ.get("PREFECT_API_URL") else _start_server(args.port)
        try:
            from netadapt_flows.pipeline import serve

            served = serve(args.name, parameters, cron=args.cron, interval=args.interval,
                           once=args.once)
        except KeyboardInterrupt:
            return None
        finally:
            if server is not None:
                _stop_server(server)
    if served is None:
        return None
    state, result = served
    if result is None:
        failed = NetAdaptError(f"serve: the run of deployment netadapt/{args.name} ended {state}")
        failed.exit_code = 1  # not bad input: the run failed (its logs are in the Prefect UI)
        raise failed
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.command_line = shlex.join(["netadapt", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("netadapt").setLevel(logging.INFO)  # our progress lines, not every library's
    run = {"run": _run_all, "flow": _run_flow, "serve": _serve}.get(args.command,
                                                                    lambda a: _stamped_stage(a.command, a))
    try:
        metrics = run(args)
    except NetAdaptError as exc:
        print(f"netadapt: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    if metrics is None:  # `serve` until interrupted
        return 0
    if args.command in ("flow", "serve") and not args.json:
        from netadapt_flows.pipeline import summary_lines

        print("\n".join(summary_lines(metrics)))
    else:
        print(json.dumps(metrics, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
