"""The project lock through the CLI: a second writer is refused naming the holder, a stale lock is
taken over, and a failing stage releases it (the lock itself: tests/netadapt/test_lock.py)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from netadapt.lock import holder, lock_path, project_lock
from netadapt_flows.cli import main
from tests.conftest import REPO


HOLD = ("import sys, time; from netadapt.lock import project_lock\n"
        "with project_lock(sys.argv[1], 'netadapt search'):\n"
        "    print('held', flush=True); time.sleep(60)\n")


def spawn_holder(artifacts: Path, env: dict | None = None) -> subprocess.Popen:
    """Another process holding the project's lock (as `netadapt search` would)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(artifacts)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def search_args(tmp_path: Path) -> list[str]:
    return ["search", "--params", str(REPO / "params.yaml"), "--artifacts", str(tmp_path / "art"),
            "--metrics", str(tmp_path / "met"), "--plots", str(tmp_path / "plots")]


def test_a_second_writer_exits_2_naming_the_holder_then_takes_over_a_stale_lock(tmp_path: Path, capsys, caplog):
    art = tmp_path / "art"
    proc = spawn_holder(art)
    try:
        recorded = holder(art)
        assert recorded["pid"] == proc.pid and recorded["command"] == "netadapt search" and recorded["since"]
        assert main(search_args(tmp_path)) == 2
        err = capsys.readouterr().err
        assert err == (f"netadapt: error: {lock_path(art).resolve()}: held by pid {proc.pid} (netadapt search, "
                       f"since {recorded['since']}); wait for it or remove the file if that process is gone\n")
        assert not (tmp_path / "met").exists() and not (art / ".stamps").exists(), "no work was started"
    finally:
        proc.kill()  # killed: no chance to remove its lock file
        proc.wait()
    assert holder(art)["pid"] == proc.pid, "the dead holder's lock is left behind"

    # Stale (that pid is gone): taken over, with a log line, and released afterwards.
    with caplog.at_level(logging.WARNING, logger="netadapt"), project_lock(art, "netadapt search") as path:
        assert holder(art)["pid"] == os.getpid()
        assert f"taking over a stale lock of pid {proc.pid}" in caplog.text
    assert not path.exists()


def test_a_failing_stage_releases_the_lock(tmp_path: Path, capsys):
    code = main(["prepare", "--params", str(REPO / "params.yaml"), "-S", f"data.root={tmp_path / 'nowhere'}",
                 "--artifacts", str(tmp_path / "art"), "--metrics", str(tmp_path / "met")])
    assert code == 2 and "nowhere" in capsys.readouterr().err
    assert not lock_path(tmp_path / "art").exists()
    assert not (tmp_path / "art").exists(), "the folder the lock made is gone: a refused stage leaves nothing"
    with project_lock(tmp_path / "art"):  # and the next writer gets it
        pass


def test_a_stage_waiting_for_a_tracking_server_does_not_hold_the_lock(tmp_path: Path):
    """Issue 27, item 8: a stage held the project's lock while a tracking server that never answered
    was waited for (up to a minute with our bounds). Now it opens its run before taking the lock (and
    logs the finished stage after releasing it: tests/netadapt/test_run_stage.py). A socket on
    127.0.0.1 accepts the stage's request and never answers; meanwhile another writer takes the lock;
    then the socket closes and the stage gives up in one line, exit 2."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(300)
    uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
    env = {**{k: v for k, v in os.environ.items() if k != "NETADAPT_LOCK_PIDS"}, "NETADAPT_TRACKING": "on",
           "MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_TIMEOUT": "600", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    stage = subprocess.Popen([sys.executable, "-m", "netadapt_flows.cli", *search_args(tmp_path)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        connection, _ = silent.accept()  # the stage is waiting for the tracking server's answer
        with project_lock(tmp_path / "art", "another writer") as path:
            assert holder(tmp_path / "art")["command"] == "another writer"
        connection.close()
    finally:
        silent.close()
        out, err = stage.communicate(timeout=300)
    assert stage.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith(f"netadapt: error: tracking: cannot open an MLflow run in {uri}"), err
    assert not path.exists() and not (tmp_path / "met").exists(), "the stage did no work"


def test_a_killed_holders_lock_is_taken_over_saying_so_once(tmp_path: Path):
    """Issue 27 item 12: the stale lock a killed stage left was taken over with the warning printed
    twice. A command started over it says so in one line, then goes on (here: to refuse the missing
    prepared data, in one line of its own)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    art = tmp_path / "art"
    art.mkdir()
    lock_path(art).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "netadapt supernet",
                                          "since": "then"}) + "\n")
    env = {**os.environ, "NETADAPT_TRACKING": "off"}
    done = subprocess.run([sys.executable, "-m", "netadapt_flows.cli", *search_args(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    said = done.stderr.splitlines()
    assert [line for line in said if "taking over a stale lock" in line] == [
        f"{lock_path(art).resolve()}: taking over a stale lock of pid {dead.pid} (netadapt supernet, since then): "
        "that process is gone"], done.stderr
    assert done.returncode == 2 and len(said) == 2 and said[1].startswith("netadapt: error: "), done.stderr
    assert not lock_path(art).exists()
