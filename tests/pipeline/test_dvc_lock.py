"""`dvc repro` and netadapt under one lock (issue 27, item 5): a netadapt command holding the project's
lock also holds DVC's write lock on the project's folders (`netadapt_tasks.dvc.dvc_writes`), so a
`dvc repro` started meanwhile refuses before it removes an output, naming the holder, and a netadapt
command started while a `dvc repro` stage runs refuses in one line naming `dvc`. Real `dvc`
subprocesses; no stage does any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from netadapt.lock import ENV, lock_path, project_lock
from netadapt_flows.cli import main
from netadapt_tasks.dvc import _as_this_process, dvc_writes
from tests.conftest import REPO
from tests.test_layout import project_copy, tool_env

DVC = str(Path(sys.executable).with_name("dvc"))

HOLD = ("import sys; from pathlib import Path\n"
        "from netadapt.lock import project_lock\nfrom netadapt_tasks.dvc import dvc_writes\n"
        "with project_lock(Path(sys.argv[1]), 'netadapt flow run tiny', guards=(dvc_writes,)):\n"
        "    print('held', flush=True); sys.stdin.read()\n")


def spawn_holder(artifacts: Path) -> subprocess.Popen:
    """Another process holding the project's lock as `netadapt flow` does, until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(artifacts)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def writes(root: Path) -> dict:
    """The paths DVC's rwlock file registers as written, and by whom (read again while DVC rewrites it)."""
    path = root / ".dvc" / "tmp" / "rwlock"
    for _ in range(100):
        try:
            return json.loads(path.read_text()).get("write", {}) if path.exists() else {}
        except ValueError:  # caught between DVC's truncation and its write
            time.sleep(0.05)
    raise AssertionError(f"{path}: never readable")


def test_dvc_repro_during_a_flow_refuses_before_removing_an_output_naming_the_flow(tmp_path: Path):
    """The issue's case: `dvc repro` while the flow held the lock deleted `artifacts/prepared`, then its
    stage command failed on the lock and the flow died (`holdout.pt: not found`)."""
    repo = project_copy(tmp_path / "repo")
    prepared = repo / "artifacts" / "prepared"
    prepared.mkdir(parents=True)
    (prepared / "holdout.pt").write_text("the flow's\n")
    proc = spawn_holder(repo / "artifacts")
    try:
        done = subprocess.run([DVC, "repro", "prepare"], cwd=repo, env=tool_env(), capture_output=True, text=True)
        assert (prepared / "holdout.pt").read_text() == "the flow's\n", "dvc removed an output the flow holds"
        assert done.returncode != 0
        assert f"(PID {proc.pid}): netadapt flow run tiny (netadapt, holding {repo / 'artifacts' / '.lock'})" \
            in done.stderr, done.stderr
        assert "Running stage" not in done.stdout + done.stderr
    finally:
        release(proc)
    assert writes(repo) == {}, "the holder's DVC entries go with its lock"
    assert not lock_path(repo / "artifacts").exists()


def waiting_project(root: Path) -> Path:
    """A DVC project whose one stage writes `artifacts/x` once the file `go` exists."""
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=root, env=tool_env(), check=True)
    (root / "dvc.yaml").write_text("stages:\n  wait:\n    cmd: while [ ! -e go ]; do sleep 0.1; done; "
                                   "mkdir -p artifacts/x && echo done > artifacts/x/f\n"
                                   "    outs:\n      - artifacts/x\n")
    return root


def test_a_netadapt_command_during_a_dvc_repro_stage_refuses_in_one_line_naming_dvc(tmp_path: Path, capsys,
                                                                                   monkeypatch):
    """... before it opens its tracking run (a refusal after that left a FAILED run in MLflow)."""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("NETADAPT_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    root = waiting_project(tmp_path / "repo")
    repro = subprocess.Popen([DVC, "repro"], cwd=root, env=tool_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(1200):  # until dvc's stage runs (no wall-clock verdict: only a bound on waiting)
            if writes(root) or repro.poll() is not None:
                break
            time.sleep(0.1)
        assert str(root / "artifacts" / "x") in writes(root), "dvc's stage never started"
        code = main(["prepare", "--params", str(REPO / "params.yaml"), "--artifacts", str(root / "artifacts"),
                     "--metrics", str(root / "metrics"), "--plots", str(root / "plots")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"netadapt: error: {root / '.dvc' / 'tmp' / 'rwlock'}: the project's outputs are "
                              f"in use by pid {repro.pid} ("), err
        assert "dvc repro" in err
        assert not lock_path(root / "artifacts").exists() and not (root / "metrics").exists(), "nothing started"
        assert not store.exists(), "a tracking run was opened before the refusal"
    finally:
        (root / "go").touch()
        out = repro.communicate(timeout=120)[0]
    assert repro.returncode == 0, out
    assert (root / "artifacts" / "x" / "f").read_text() == "done\n"


def test_the_holders_own_dvc_commands_are_not_refused_on_its_behalf(tmp_path: Path):
    """The flow records its stages in `dvc.lock` (`dvc status`, `dvc commit`) holding the lock, in its
    own process or in a served run's subprocess (which shares `netadapt serve`'s lock): DVC sees the
    entries made for the holder as that process's own for the while (`_as_this_process`)."""
    root = waiting_project(tmp_path / "repo")
    status = ("import sys; from pathlib import Path\nfrom dvc.repo import Repo\n"
              "from netadapt_tasks.dvc import _as_this_process\n"
              "with _as_this_process(Path(sys.argv[1])), Repo(sys.argv[1]) as repo: print([k.split(':')[-1] for k in repo.status()])\n")
    with project_lock(root / "artifacts", "netadapt serve", guards=(dvc_writes,)):
        before = writes(root)
        assert before and all(info["pid"] == os.getpid() for info in before.values())
        from dvc.repo import Repo

        with _as_this_process(root), Repo(str(root)) as repo:
            assert [name.split(":")[-1] for name in repo.status()] == ["wait"]
        assert writes(root) == before, "the entries are put back"
        child = subprocess.run([sys.executable, "-c", status, str(root)], cwd=REPO, capture_output=True, text=True)
        assert child.returncode == 0 and child.stdout.strip() == "['wait']", child.stderr
        unrelated = {k: v for k, v in os.environ.items() if k != ENV}
        other = subprocess.run([sys.executable, "-c", status, str(root)], cwd=REPO, capture_output=True, text=True,
                               env=unrelated)
        assert other.returncode != 0 and "is busy" in other.stderr, "only the holder's own are lent"
        assert writes(root) == before
    assert writes(root) == {}


def test_outside_a_dvc_project_nothing_is_registered(tmp_path: Path):
    with project_lock(tmp_path / "artifacts", "netadapt run", guards=(dvc_writes,)):
        assert not list(tmp_path.rglob("rwlock"))
