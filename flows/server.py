"""Prefect for the CLI's `flow` and `serve`: its environment, set before Prefect is imported (the
project's `.prefect/`, telemetry off, the library's log lines to the UI, Prefect's INFO lines off the
console), and the local Prefect server `serve` starts when PREFECT_API_URL names none. That server
stops when `serve` ends (`serve --once` too); the runs stay in the project's `.prefect/` database, and
`stop_server` prints the command that starts a server on it again to browse them (`browse_hint`)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import shlex
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from netadapt.errors import NetAdaptError
from netadapt_flows.telemetry import telemetry_off


@dataclass(frozen=True)
class LocalServer:
    """A Prefect server `start_server` started: its process (group), port and PREFECT_HOME."""

    process: subprocess.Popen
    port: int
    home: Path


def _quiet_prefect(record: logging.LogRecord) -> bool:
    """Prefect's INFO lines (a "Finished in state Completed()" per task run) stay in the UI; the
    console gets our summary line per stage instead. So do a local Dask cluster's (workers joining and
    leaving: `--task-runner dask`)."""
    return not (record.name.startswith(("prefect", "distributed")) and record.levelno < logging.WARNING)


def prefect_env() -> None:
    """Prefect's environment, set before Prefect is imported: its state (results = the cache, API
    database) in the project's `.prefect/` unless PREFECT_HOME says otherwise, telemetry off, and
    the library's log lines (logger `netadapt`) sent to the Prefect UI."""
    os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
    telemetry_off()  # (main did too: here for callers that start Prefect without it)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    extra = [name for name in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if name.strip()]
    if "netadapt" not in extra:
        os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(extra + ["netadapt"])
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_prefect)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _prefect_command() -> list[str]:
    exe = Path(sys.executable).with_name("prefect")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "prefect"]


def browse_hint(home: Path, port: int) -> str:
    """The command that starts a Prefect server on the project's database again (the runs `serve`
    recorded), telemetry off, and where its UI then is."""
    command = shlex.join([*_prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(port)])
    return (f"netadapt: the Prefect server stopped; its runs stay in {home}. To browse them: "
            f"PREFECT_HOME={shlex.quote(str(home))} PREFECT_SERVER_ANALYTICS_ENABLED=false {command}   "
            f"(then http://127.0.0.1:{port}/runs)")


def start_server(port: int) -> LocalServer | None:
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
    with open(home / "server.log", "ab") as log:
        server = subprocess.Popen(_prefect_command() + ["server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)  # its own process group: stopped as a whole
    deadline = time.monotonic() + 180
    while not _healthy(api_url):
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            raise NetAdaptError(f"serve: the Prefect server on port {port} did not start (see {home / 'server.log'}; "
                                f"another --port, or set PREFECT_API_URL to a running server)")
        time.sleep(0.5)
    print(f"netadapt: Prefect server at http://127.0.0.1:{port} (log: {home / 'server.log'}; it stops when "
          f"serve ends)", file=sys.stderr)
    os.environ["PREFECT_API_URL"] = api_url
    return LocalServer(server, port, home)


def stop_server(server: LocalServer) -> None:
    """Stop a server `start_server` started, its whole process group, and say how to browse its runs
    again (`browse_hint`)."""
    _stop(server.process)
    print(browse_hint(server.home, server.port), file=sys.stderr)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
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
