"""One writer per project directory: `<artifacts>/.lock` (netadapt.lock), taken by every stage command
(the stage commands' side: tests/e2e/test_lock.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netadapt.lock import ENV, LockHeld, holder, lock_path, project_lock
from tests.conftest import REPO


def test_the_lock_is_reentrant_and_released_after_success_and_failure(tmp_path: Path):
    with project_lock(tmp_path, "outer") as path:
        with project_lock(tmp_path, "inner"):  # the flow's stage tasks, in the process that holds it
            assert holder(tmp_path)["command"] == "outer"
        assert path.exists(), "the outer holder still holds it"
    assert not path.exists()
    with pytest.raises(RuntimeError):
        with project_lock(tmp_path, "fails"):
            raise RuntimeError("boom")
    assert not path.exists() and ENV not in os.environ


def test_a_child_of_the_holder_shares_its_lock_and_others_do_not(tmp_path: Path):
    """A served flow run executes in a subprocess of `netadapt serve`, which holds the lock: it shares
    it (and leaves it to its parent); an unrelated process gets LockHeld."""
    share = ("import sys; from netadapt.lock import project_lock, holder\n"
             "with project_lock(sys.argv[1], 'child'): print(holder(sys.argv[1])['command'])\n")
    with project_lock(tmp_path, "netadapt serve") as path:
        done = subprocess.run([sys.executable, "-c", share, str(tmp_path)], cwd=REPO, capture_output=True,
                              text=True)
        assert done.returncode == 0 and done.stdout.strip() == "netadapt serve", done.stderr
        assert holder(tmp_path)["pid"] == os.getpid(), "the child left the parent's lock in place"
        unrelated = {k: v for k, v in os.environ.items() if k != ENV}
        done = subprocess.run([sys.executable, "-c", share, str(tmp_path)], cwd=REPO, capture_output=True,
                              text=True, env=unrelated)
        assert done.returncode != 0 and "LockHeld" in done.stderr and f"held by pid {os.getpid()}" in done.stderr
    assert not path.exists()


def test_an_unreadable_lock_file_is_held_until_it_is_old(tmp_path: Path):
    lock_path(tmp_path).write_text("")
    with pytest.raises(LockHeld, match="an unknown process"):
        with project_lock(tmp_path):
            pass
    os.utime(lock_path(tmp_path), (0, 0))
    with project_lock(tmp_path):
        assert json.loads(lock_path(tmp_path).read_text())["pid"] == os.getpid()
