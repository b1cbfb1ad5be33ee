"""Candidate evaluation on Dask (`netadapt flow --task-runner dask`): the tiny flow's search on a local
cluster of 2 single-threaded worker processes ends where the thread runner's ends, candidate for
candidate; bad runner flags fail at once, before Prefect, a server or a cluster starts."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.flows.test_pipeline import cli, code, result, tiny_data, tiny_params  # noqa: F401 - `code`: a fixture

SHARED = ("prepare", "profile", "supernet")


def scores(project: Path) -> list[dict]:
    """The search history without its timings: every candidate's architecture, resource and score."""
    with open(project / "artifacts" / "search" / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_candidates_on_a_local_dask_cluster_match_the_thread_runner(code: Path, tmp_path: Path):  # noqa: F811
    data = tiny_data(tmp_path / "data")
    threads = tmp_path / "threads"
    threads.mkdir()
    (threads / "tiny.yaml").write_text(yaml.safe_dump(tiny_params(str(data))))
    first = result(cli(code, threads, "flow", "--params", "tiny.yaml", "--json",
                       PREFECT_HOME=str(tmp_path / "home-threads")))
    assert first["states"]["search"] == "Completed" and first["metrics"]["search"]["candidates_run"] >= 3

    # The same project without its search stamp and history, and an empty Prefect cache: the shared
    # stages come back Cached (their stamps), the search runs again and every candidate is evaluated
    # on a worker (the history on disk would seed the cache with every iteration).
    dask = tmp_path / "dask"
    shutil.copytree(threads, dask, symlinks=True)
    shutil.rmtree(dask / "artifacts" / ".stamps" / "search")
    (dask / "artifacts" / "search" / "history.json").unlink()
    done = cli(code, dask, "flow", "--params", "tiny.yaml", "--json", "--task-runner", "dask", "--dask-address",
               "local:2", PREFECT_HOME=str(tmp_path / "home-dask"))
    second = result(done)
    assert {k: second["states"][k] for k in SHARED} == dict.fromkeys(SHARED, "Cached")
    assert second["states"]["search"] == "Completed"
    searched = second["metrics"]["search"]
    assert searched["candidates_cached"] == 0
    assert searched["candidates_run"] == first["metrics"]["search"]["candidates_run"]
    assert searched["iteration_states"] == first["metrics"]["search"]["iteration_states"]
    arch = lambda d: json.loads((d / "artifacts" / "search" / "arch.json").read_text())  # noqa: E731
    assert arch(dask) == arch(threads)
    assert scores(dask) == scores(threads), "every candidate scored as on the thread runner"
    for key in ("iterations", "resource_estimated", "holdout_acc"):
        assert searched[key] == first["metrics"]["search"][key]
    assert second["states"]["finetune"] == "Cached", "same architecture: the finetune stamp still holds"
    # The cluster came and went quietly: no per-candidate Prefect lines, no errors.
    assert "Finished in state" not in done.stderr and "Traceback" not in done.stderr
    # Every candidate's cache record (written by the workers) is plain JSON, in the flow's PREFECT_HOME.
    records = [json.loads(p.read_bytes()) for p in (tmp_path / "home-dask" / "storage").glob("candidate-*")]
    assert len(records) == searched["candidates_run"]
    assert all(r["metadata"]["serializer"]["type"] == "json" and len(json.loads(r["result"])) == 2 for r in records)


BAD_RUNNER_FLAGS = [
    (["--task-runner", "dask", "--dask-address", "bogus"], "--dask-address 'bogus': expected tcp://HOST:PORT"),
    (["--task-runner", "dask", "--dask-address", "local:0"], "--dask-address 'local:0': local:N needs 1 <= N"),
    (["--task-runner", "dask", "--dask-address", "tcp://host:99999"], "--dask-address 'tcp://host:99999': expected"),
    (["--task-runner", "dask", "--dask-address", "http://host:8786"], "--dask-address 'http://host:8786': expected"),
    (["--dask-address", "local:2"], "--dask-address 'local:2': only with --task-runner dask"),
    (["--task-runner", "dask", "--dask-address", "local:2@"], "--dask-address 'local:2@': expected"),
]


def test_bad_runner_flags_fail_before_prefect_or_dask(tmp_path: Path):
    """`flow` and `serve`: one line naming --dask-address, exit 2, before Prefect or Dask is imported
    or a server starts (all cases in one fresh process: its imports are the evidence)."""
    cases = [[command, *flags, "--artifacts", str(tmp_path / "a")] for command in ("flow", "serve")
             for flags, _ in BAD_RUNNER_FLAGS]
    script = ("import contextlib, io, json, sys; from netadapt_flows.cli import main\n"
              "out = []\n"
              "for argv in json.loads(sys.argv[1]):\n"
              "    err = io.StringIO()\n"
              "    with contextlib.redirect_stderr(err):\n"
              "        out.append([main(argv), err.getvalue()])\n"
              "print(json.dumps([out, sorted(m for m in ('prefect', 'distributed', 'prefect_dask') if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    outcomes, imported = json.loads(done.stdout)
    assert imported == [], "neither Prefect nor Dask was imported"
    for (code, err), argv, (_, message) in zip(outcomes, cases, BAD_RUNNER_FLAGS * 2):
        assert code == 2, argv
        assert err.startswith("netadapt: error: ") and message in err, (argv, err)
        assert err.count("\n") == 1, "one line"
    assert not (tmp_path / "a").exists(), "no work was started"


def test_address_forms():
    from netadapt_flows.runners import DaskAddress, parse_dask_address

    assert parse_dask_address("local:2") == DaskAddress(workers=2, host="127.0.0.1")
    assert parse_dask_address("local:2@10.0.0.5") == DaskAddress(workers=2, host="10.0.0.5")
    for address in ("tcp://10.0.0.5:8786", "tls://scheduler.example.org:8786", "tcp://[::1]:8786"):
        assert parse_dask_address(address) == DaskAddress(scheduler=address)


def test_dask_runner_settings(monkeypatch):
    """`local:N`: a LocalCluster of N single-threaded worker processes that report to this process's
    Prefect API; an address: that scheduler. Building the runner starts nothing."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    from netadapt_flows.runners import candidate_runner, local_cluster

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        local = candidate_runner("dask", "local:3")
        remote = candidate_runner("dask", "tcp://10.0.0.5:8786")
    assert isinstance(local, DaskTaskRunner) and local._cluster is None and local._client is None
    assert local.cluster_class is local_cluster and local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["host"] == "127.0.0.1"
    assert local.cluster_kwargs["env"]["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    assert remote.address == "tcp://10.0.0.5:8786" and not remote.cluster_kwargs
    assert type(candidate_runner("threads")).__name__ == "ThreadPoolTaskRunner"


def test_a_local_clusters_dashboard_and_scheduler_listen_on_loopback_only():
    """Issue 27: `dashboard_address=":0"` served the dashboard (identity, metrics, workers' pages, no
    authentication) on every interface. The cluster `local_cluster` starts, without its worker processes
    (in this process, over TCP): every socket it listens on is 127.0.0.1's."""
    from distributed import LocalCluster

    from netadapt_flows.runners import local_cluster_options

    options = {**local_cluster_options(2), "n_workers": 0, "processes": False, "protocol": "tcp"}
    with LocalCluster(**options) as cluster:
        dashboard = [sock.getsockname()[0] for sock in cluster.scheduler.http_server._sockets.values()]
        assert dashboard and set(dashboard) == {"127.0.0.1"}
        assert cluster.scheduler.address.startswith("tcp://127.0.0.1:")
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
    assert local_cluster_options(2, host="10.0.0.5")["dashboard_address"] == "10.0.0.5:0", "local:N@HOST"


def test_candidate_task_pins_torch_to_one_thread_only_on_a_worker(monkeypatch):
    import torch

    from netadapt_tasks import pipeline

    before = torch.get_num_threads()
    pipeline.pin_worker_threads()
    assert torch.get_num_threads() == before, "outside a worker: no change"
    monkeypatch.setattr(pipeline, "on_dask_worker", lambda: True)
    try:
        pipeline.pin_worker_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
