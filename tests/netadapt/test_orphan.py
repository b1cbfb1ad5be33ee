"""`netadapt.orphan`: a command run by dvc stops when that dvc process is gone (end to end, with a
stand-in for dvc: tests/e2e/test_faults.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

from netadapt import orphan


def test_stop_with_sends_sigterm_once_the_watched_process_has_ended(monkeypatch):
    sent = []
    monkeypatch.setattr(orphan.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(orphan, "POLL_SECONDS", 0.01)
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    watcher = orphan.stop_with(psutil.Process(child.pid))
    assert watcher.daemon and watcher.is_alive() and not sent, "the process is alive: nothing sent"
    child.stdin.close()
    child.wait()
    watcher.join(timeout=60)
    assert not watcher.is_alive() and sent == [(orphan.os.getpid(), signal.SIGTERM)]


def test_no_dvc_among_the_ancestors_is_none():
    assert orphan.dvc_parent() is None  # pytest is not run by dvc
