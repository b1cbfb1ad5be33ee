"""What `netadapt serve` prints works as printed: the trigger command names the server the deployment
was served on (without PREFECT_API_URL the `prefect` CLI asks a temporary server of its own, which
knows no deployment, and times out), and when the local server stops, the command that starts it
again on the same `.prefect/` database."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from netadapt_flows import server


class FakeRunner:
    """`prefect.runner.Runner` without a server: records the deployment it was given."""

    added: list[dict] = []

    def __init__(self, name: str, limit: int | None = None, **_):
        self.name = name

    def add_flow(self, flow, name: str, **kwargs):
        FakeRunner.added.append({"name": name, **kwargs})
        return "0f1e2d3c"

    async def start(self, **_):
        raise KeyboardInterrupt  # Ctrl-C at once


def test_serve_prints_a_trigger_command_with_the_servers_url(monkeypatch, capsys, tmp_path: Path):
    import prefect.runner

    from netadapt_flows import serving

    monkeypatch.setattr(prefect.runner, "Runner", FakeRunner)
    monkeypatch.setattr(server, "_healthy", lambda url: url == "http://127.0.0.1:4321/api")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert server.start_server(4321) is None, "a server already answers there: used as it is"
    assert serving.serve("nightly", {"params_file": "params.yaml"}, cron="0 3 * * *") is None
    assert FakeRunner.added[-1]["name"] == "nightly" and FakeRunner.added[-1]["cron"] == "0 3 * * *"
    err = capsys.readouterr().err
    [command] = [line.strip() for line in err.splitlines() if "deployment run" in line]
    words = shlex.split(command)
    assert words[0] == f"PREFECT_API_URL={os.environ['PREFECT_API_URL']}" == "PREFECT_API_URL=http://127.0.0.1:4321/api"
    assert Path(words[1]).name == "prefect" and words[2:] == ["deployment", "run", "netadapt/nightly"]
    assert "http://127.0.0.1:4321/deployments/deployment/0f1e2d3c" in err


def test_a_stopped_server_says_how_to_browse_its_runs_again(capsys, tmp_path: Path):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    server.stop_server(server.LocalServer(process, 4299, tmp_path / ".prefect"))
    assert process.poll() is not None, "stopped"
    hint = capsys.readouterr().err.strip()
    command = shlex.split(hint.split("To browse them: ")[1].split("   (then")[0])
    assert command[:2] == [f"PREFECT_HOME={tmp_path / '.prefect'}", "PREFECT_SERVER_ANALYTICS_ENABLED=false"]
    assert command[-6:] == ["server", "start", "--host", "127.0.0.1", "--port", "4299"]
    assert hint.endswith("(then http://127.0.0.1:4299/runs)")


@pytest.mark.parametrize("name", ["nightly", "my budget"])
def test_the_trigger_command_quotes_the_deployment(name: str):
    from netadapt_flows.serving import trigger_hint

    hint = trigger_hint(name, "http://127.0.0.1:1/api", "x")
    command = next(line for line in hint.splitlines() if "deployment run" in line)
    assert shlex.split(command)[-1] == f"netadapt/{name}"
