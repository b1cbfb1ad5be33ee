"""`netadapt.run_stage` with a lock to hold (the stage CLI's case): the project's lock is held while the
stage works and publishes its stamp, and not while its tracking run is opened or filled in (issue 27,
item 8: a tracking server that never answered kept the lock for minutes). Another process probes the
lock at each moment; the tracking run and the stage are fakes."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from netadapt.config import parse_config
from netadapt.layout import Paths
from netadapt.lock import ENV, project_lock
from netadapt.run_stage import run_stage
from netadapt.stamps import read_stamp, stage_key
from tests.conftest import REPO

PROBE = ("import sys; from netadapt.lock import LockHeld, project_lock\n"
         "try:\n    with project_lock(sys.argv[1], 'probe'): print('free')\n"
         "except LockHeld: print('held')\n")


def another_process_finds(artifacts: Path) -> str:
    """'free' if another process (not one started to share this one's lock) can take the project's
    lock now, else 'held'."""
    unrelated = {k: v for k, v in os.environ.items() if k != ENV}
    return subprocess.run([sys.executable, "-c", PROBE, str(artifacts)], cwd=REPO, capture_output=True, text=True,
                          check=True, env=unrelated).stdout.strip()


class ProbingRun:
    """A tracking run that records, when it is opened, finished and closed, what another process finds."""

    def __init__(self, artifacts: Path):
        self.artifacts, self.seen = artifacts, {}

    @contextmanager
    def track(self, stage, cfg, p):
        self.seen["open"] = another_process_finds(self.artifacts)  # a server being waited for
        try:
            yield self
        finally:
            self.seen["close"] = another_process_finds(self.artifacts)

    def finish(self, metrics: dict) -> None:
        self.seen["finish"] = another_process_finds(self.artifacts)  # logging from the published outputs


def test_the_lock_is_held_for_the_stages_work_and_not_while_tracking_waits(tmp_path: Path):
    p = Paths(tmp_path / "art", tmp_path / "met", tmp_path / "plots")
    cfg = parse_config({})
    run = ProbingRun(p.artifacts)

    def stage(cfg, p):
        run.seen["stage"] = another_process_finds(p.artifacts)
        return {"seconds": 1.0}

    metrics = run_stage("prepare", cfg, p, track=run.track, by="cli", stage_fn=stage,
                        lock=lambda: project_lock(p.artifacts, "netadapt prepare"))
    assert metrics == {"seconds": 1.0}
    assert run.seen == {"open": "free", "stage": "held", "finish": "free", "close": "free"}
    assert read_stamp("prepare", stage_key("prepare", cfg, p), p) is not None, "stamped under the lock"


def test_a_failing_stage_releases_the_lock_before_its_run_is_closed(tmp_path: Path):
    p = Paths(tmp_path / "art", tmp_path / "met", tmp_path / "plots")
    run = ProbingRun(p.artifacts)

    def stage(cfg, p):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_stage("prepare", parse_config({}), p, track=run.track, by="cli", stage_fn=stage,
                  lock=lambda: project_lock(p.artifacts, "netadapt prepare"))
    assert run.seen == {"open": "free", "close": "free"}
