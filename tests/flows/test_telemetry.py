"""Telemetry is off for MLflow, Prefect and DVC as each library itself reads it, in a process started
as `netadapt` starts (the CLI's `main` first) and in the environment the Makefile gives `dvc` and
`mlflow`; a user's `DO_NOT_TRACK=1` (which MLflow 3.17 ignores) does not leave MLflow's on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netadapt_flows.telemetry import TELEMETRY_OFF
from tests.conftest import REPO

# Each library's own answer, after (optionally) what every `netadapt` command does first.
PROBE = r'''
import contextlib, io, json, sys
if sys.argv[1] == "cli":
    from netadapt_flows.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["--help"])
import dvc.analytics
import mlflow.telemetry.utils
import prefect.analytics
from prefect.settings import get_current_settings
print(json.dumps({"mlflow": mlflow.telemetry.utils.is_telemetry_disabled(),
                  "prefect": not prefect.analytics.is_telemetry_enabled(),
                  "prefect_server": not get_current_settings().server.analytics_enabled,
                  "dvc": not dvc.analytics.is_enabled()}))
'''
ALL_OFF = {"mlflow": True, "prefect": True, "prefect_server": True, "dvc": True}


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no telemetry switch of the project's, and none of the CI or test markers
    (CI, PYTEST_CURRENT_TEST, ...) by which MLflow and Prefect turn themselves off."""
    return {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(home),
            "PREFECT_HOME": str(home / "prefect"), "PYTHONPATH": str(REPO), **extra}


def probe(cwd: Path, env: dict[str, str], start: str) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", PROBE, start], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_a_process_started_as_the_cli_starts_has_every_librarys_telemetry_off(home: Path):
    env = bare_env(home, DO_NOT_TRACK="1")  # a user's usual setting, which MLflow ignores
    assert probe(home, env, "bare") == {"mlflow": False, "prefect": True, "prefect_server": False, "dvc": False}, \
        "without the CLI, only Prefect's client reads DO_NOT_TRACK=1 (and the probe sees the others on)"
    assert probe(home, env, "cli") == ALL_OFF


def test_the_makefile_gives_dvc_and_mlflow_the_same_switches(home: Path):
    """`make` exports the switches to every command it runs (`dvc repro`, `dvc exp run`, ...): the
    environment of a recipe, as make builds it, turns each library's telemetry off."""
    done = subprocess.run(["make", "--no-print-directory", "-f", "Makefile", "-f", "-", "telemetry-probe"], cwd=REPO,
                          input="telemetry-probe:\n\t@env -0\n", env=bare_env(home), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.split("\0") if "=" in line)
    assert {k: env.get(k) for k in TELEMETRY_OFF} == TELEMETRY_OFF
    assert probe(home, {**bare_env(home), **{k: env[k] for k in TELEMETRY_OFF}}, "bare") == ALL_OFF
