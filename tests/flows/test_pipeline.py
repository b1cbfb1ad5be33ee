"""The Prefect flow as a user runs it: `netadapt flow`, then the served deployment (`netadapt serve
--once`) with another budget, then a fresh run. Each runs in a subprocess on a snapshot of the
project's code (PYTHONPATH), in a temporary folder, with PREFECT_HOME left to the CLI: the project's
`.prefect/`, which the served run must keep using. The served run finds the stages and search
iterations it shares with the first run Cached and ends where a fresh run ends.

The cache holds plain JSON only: every persisted result is a JSON record with a JSON payload, and a
forged entry (a pickle that would run code, or garbage) is a cache miss, never code that runs."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import REPO, write_idx
from tests.pipeline.test_dvc import TINY
from tests.test_layout import project_copy

STAGES = ["prepare", "profile", "supernet", "search", "finetune", "evaluate"]


def tiny_data(root: Path) -> Path:
    """A Fashion-MNIST-shaped dataset small enough that the flow's own overhead dominates."""
    write_idx(root, "train", 200, seed=1)
    write_idx(root, "t10k", 50, seed=2)
    return root


def tiny_params(data_root: str) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["data"].update({"name": "fashion-mnist", "root": data_root})
    return params


def cli_env(code: Path, **extra: str) -> dict[str, str]:
    """The environment of `python -m netadapt_flows.cli` on the code snapshot `code`, tracking off."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env.update({"PYTHONPATH": str(code), "NETADAPT_TRACKING": "off", "DVC_NO_ANALYTICS": "1",
                "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
                # Prefect's ephemeral API server starts in 5-15 s, a minute and more beside other jobs
                # (`make test-busy`): the CLI's 90 s default for it, raised for a loaded test machine
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"})
    env.update(extra)
    return env


def cli(code: Path, cwd: Path, *args: str, timeout: float = 1800, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "netadapt_flows.cli", *args], cwd=cwd, env=cli_env(code, **env),
                          capture_output=True, text=True, timeout=timeout, start_new_session=True)
    assert done.returncode == 0, f"netadapt {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def flow_script(tmp_path: Path, params: dict, script: str, *args: str) -> dict:
    """Run `script` (python -c, with `args`) in a fresh project folder holding `params` as tiny.yaml,
    on a snapshot of the code, with its own PREFECT_HOME, Prefect's environment set first as the CLI
    sets it (`prefect_env`); its last stdout line, as JSON. For flows that must share one process (one
    ephemeral API server) or have something patched into it."""
    code = project_copy(tmp_path / "code")
    run = tmp_path / "run"
    run.mkdir()
    (run / "tiny.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    prelude = "from netadapt_flows.server import prefect_env\nprefect_env()\n"
    done = subprocess.run([sys.executable, "-c", prelude + script, *args], cwd=run, capture_output=True, text=True,
                          timeout=1800, env=cli_env(code, PREFECT_HOME=str(tmp_path / "prefect-home")))
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def result(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


class _Touch:
    """Unpickling it runs a shell command that creates `path`: what a forged pickle entry could do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.path)}",)


def forged_pickle_record(marker: Path) -> bytes:
    """A cache entry as Prefect's default (cloudpickle) serializer writes one, whose payload creates
    `marker` when it is unpickled."""
    return json.dumps({"metadata": {"storage_key": "forged", "expiration": None,
                                    "serializer": {"type": "pickle", "picklelib": "pickle"},
                                    "prefect_version": "3.9.1", "storage_block_id": None},
                       "result": base64.b64encode(pickle.dumps(_Touch(marker))).decode()}).encode()


def plain_json_records(storage: Path) -> dict[str, object]:
    """Each persisted result's payload, by file name, asserting it is JSON: a task's cache record (JSON
    metadata naming the netadapt serializer, no pickle, no object hooks, and a JSON payload) or a flow
    run's result (Prefect writes those bare, the serializer recorded in the API's database)."""
    payloads = {}
    for path in storage.iterdir():
        record = json.loads(path.read_bytes())
        if isinstance(record, dict) and "metadata" in record:
            assert record["metadata"]["serializer"]["type"] == "json", path.name
            assert record["metadata"]["serializer"]["object_decoder"] is None, path.name
            record = json.loads(record["result"])
        payloads[path.name] = record
    assert any(name.startswith("iteration-") for name in payloads)
    return payloads


def test_the_cache_reads_only_plain_json_records(tmp_path: Path):
    """A forged entry (a pickle payload, garbage, a JSON record naming Prefect's object decoder) reads
    as missing, and nothing in it runs; a record the flows wrote reads back."""
    from prefect.results import ResultRecord, ResultRecordMetadata, ResultStore

    from netadapt_tasks.results import RESULT_SERIALIZER, JsonResultStorage

    marker = tmp_path / "marker"
    good = ResultRecord(metadata=ResultRecordMetadata(serializer=RESULT_SERIALIZER, storage_key="good"),
                        result={"iteration": 0, "scores": [0.5, 1.25]}).serialize()
    hooked = json.loads(good)
    hooked["metadata"]["serializer"]["object_decoder"] = "prefect.serializers.prefect_json_object_decoder"
    entries = {"good": good, "pickle": forged_pickle_record(marker), "garbage": b"\x80\x04garbage",
               "hooked": json.dumps(hooked).encode()}
    for name, content in entries.items():
        (tmp_path / name).write_bytes(content)
    store = ResultStore(result_storage=JsonResultStorage(basepath=str(tmp_path)), serializer=RESULT_SERIALIZER)
    assert store.exists("good") and store.read("good").result == {"iteration": 0, "scores": [0.5, 1.25]}
    for name in ("pickle", "garbage", "hooked", "missing"):
        assert not store.exists(name), name
        with pytest.raises(ValueError):
            store.read(name)
    assert not marker.exists(), "no code ran"


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Path:
    """The project's code as it is now: runs see the same code whatever is edited meanwhile."""
    return project_copy(tmp_path_factory.mktemp("code"))


@pytest.mark.slow
def test_a_flow_then_a_served_run_share_the_project_cache(code: Path, tmp_path: Path):
    data = tiny_data(tmp_path / "data")
    for name in ("run", "fresh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.yaml").write_text(yaml.safe_dump(tiny_params(str(data))))
    run = tmp_path / "run"

    first = result(cli(code, run, "flow", "--params", "tiny.yaml", "--json"))
    assert first["states"] == dict.fromkeys(STAGES, "Completed")
    assert first["metrics"]["search"]["iteration_states"] and \
        set(first["metrics"]["search"]["iteration_states"]) == {"Completed"}
    assert (run / ".prefect" / "storage").is_dir(), "results persisted under the project's .prefect/"
    assert {p.parent.name for p in (run / "artifacts" / ".stamps").glob("*/*.json")} == set(STAGES)
    assert first["dvc"] == {"committed": [], "skipped": "not a DVC project"}
    assert not (run / "artifacts" / ".lock").exists(), "the project's lock is released"

    # Every persisted result is plain JSON. Then forge two cache entries: iteration 0's becomes a
    # pickle that would create a marker file when loaded, a candidate's becomes garbage.
    storage = run / ".prefect" / "storage"
    payloads = plain_json_records(storage)
    it0 = next(n for n, v in payloads.items() if n.startswith("iteration-") and v["iteration"] == 0)
    assert isinstance(payloads[it0]["start"], dict) and payloads[it0]["candidates"][0]["arch"]["dimensions"]
    assert all(isinstance(v, list) and len(v) == 2 for n, v in payloads.items() if n.startswith("candidate-"))
    marker = tmp_path / "forged-entry-ran"
    (storage / it0).write_bytes(forged_pickle_record(marker))
    (storage / next(n for n in payloads if n.startswith("candidate-"))).write_bytes(b"\x80\x04garbage")
    # Without the search history on disk, which would seed the cache with its iterations again
    # (tests/flows/test_shared_history.py), the served run has only Prefect's cache to go by.
    (run / "artifacts" / "search" / "history.json").unlink()

    # The deployment, served from the project (its own local server on a free loopback port), runs
    # with the project's PREFECT_HOME: the iterations the first run computed come from its cache.
    tighter = round(0.9 * first["metrics"]["search"]["resource_estimated"]
                    / first["metrics"]["search"]["base_resource"], 4)
    done = cli(code, run, "serve", "--once", "--port", "0", "--name", "test", "--params", "tiny.yaml",
               "-S", f"search.budget={tighter}", "--json")
    served = result(done)
    assert {k: served["states"][k] for k in ("prepare", "profile", "supernet")} == dict.fromkeys(
        ("prepare", "profile", "supernet"), "Cached")
    iterations = served["metrics"]["search"]["iteration_states"]
    done_before = len(first["metrics"]["search"]["iteration_states"])
    assert not marker.exists(), "the forged entry ran no code"
    assert iterations[0] == "Completed", "the forged entry was a cache miss: iteration 0 ran again"
    assert iterations[1:done_before - 1] == ["Cached"] * (done_before - 2), "shared iterations come from the cache"
    plain_json_records(storage)  # the forged entries were replaced by the recomputed results
    assert "Completed" in iterations[done_before - 1:], "the new iterations ran"
    assert served["metrics"]["search"]["candidates_cached"] >= 1
    server_log = (run / ".prefect" / "server.log").read_text()
    assert "telemetry" not in server_log.lower()
    port = next(line.split("127.0.0.1:")[1].split()[0] for line in done.stderr.splitlines()
                if line.startswith("netadapt: Prefect server at"))
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "server" in p.info["cmdline"]
                and port in p.info["cmdline"]], "the server was stopped"

    # A fresh run with the tighter budget, with the console a user sees: the verdict, then a summary
    # line per stage.
    fresh = cli(code, tmp_path / "fresh", "flow", "--params", "tiny.yaml", "-S", f"search.budget={tighter}",
                PREFECT_HOME=str(tmp_path / "fresh-home"))
    verdict, *lines = fresh.stdout.strip().splitlines()
    assert verdict.startswith(f"macs ≤ {tighter * 100:g}% · MET · plain_cnn · ") and "budget_met=true" in verdict
    assert [line.split()[:2] for line in lines] == [[stage, "Completed"] for stage in STAGES]
    assert "test_acc=" in lines[-1] and "{" not in fresh.stdout
    assert "Finished in state" not in fresh.stderr, "Prefect's per-task lines stay in the UI"
    assert "search: iteration 0" in fresh.stderr, "the library's progress lines reach the console"
    arch = lambda d: json.loads((d / "artifacts" / "search" / "arch.json").read_text())
    assert arch(run) == arch(tmp_path / "fresh")
    fresh_search = json.loads((tmp_path / "fresh" / "metrics" / "search.json").read_text())
    for key in ("iterations", "resource_estimated", "holdout_acc"):
        assert served["metrics"]["search"][key] == fresh_search[key]


def test_content_digests_follow_content_not_location(tmp_path: Path):
    from netadapt.io import content_digest

    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "x.bin").write_bytes(b"same")
    assert content_digest([tmp_path / "a"]) == content_digest([tmp_path / "b"])
    (tmp_path / "b" / "sub" / "x.bin").write_bytes(b"other")
    assert content_digest([tmp_path / "a"]) != content_digest([tmp_path / "b"])
    assert content_digest([tmp_path / "missing"]) != content_digest([tmp_path / "a"])
