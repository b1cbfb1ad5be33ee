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


ORT_SESSION = r'''
import contextlib, io, sys
if sys.argv[1] == "cli":
    from netadapt_flows.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["--help"])
import onnx, onnxruntime
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
'''


def test_onnx_runtime_writes_nothing_in_the_users_home(tmp_path: Path):
    """Issue 27 (nothing written outside the project): ONNX Runtime's telemetry wrote a device id and an
    event store under `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` at a process's first session (the
    profile and evaluate stages, the device scripts). A process started as the CLI starts writes none."""
    for start in ("bare", "cli"):
        home = tmp_path / start
        home.mkdir()
        done = subprocess.run([sys.executable, "-c", ORT_SESSION, start], cwd=home, env=bare_env(home),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        written = sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file())
        if start == "bare":
            assert any("onnxruntime" in p for p in written), "the probe no longer sees ONNX Runtime write its id"
        else:
            assert written == [], written
