"""A profile killed midway (SIGKILL) resumes from its unit cache and times only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netadapt.resources.lookup_table import LatencyTable
from tests.conftest import REPO
from tests.presets import command_args


def _cached_units(folder: Path) -> int:
    files = list(folder.glob("units-*.jsonl"))
    return sum(max(0, len(f.read_bytes().split(b"\n")) - 2) for f in files)  # header and the (empty) tail


@pytest.mark.slow
def test_a_profile_killed_midway_resumes_and_times_only_the_rest(tiny_root: Path, tmp_path: Path):
    """`netadapt profile` on the command backend (the shipped device script, ~0.3 s per unit) is
    killed with SIGKILL once a group of units is in the cache; the second run times only the others
    and writes a complete table (accepted whatever its error: `presets.ANY_ERROR`). The cache then
    holds all 34 units, or none where the run saw sustained contention (its units are never reused)."""
    args = command_args(tiny_root, tmp_path)
    cli = [sys.executable, "-m", "netadapt_flows.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*cli, "prepare", *args], cwd=REPO, env=env, check=True, capture_output=True)
    cache_dir = tmp_path / "a" / "profile_cache" / "command"
    first = subprocess.Popen([*cli, "profile", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _cached_units(cache_dir) == 0 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    _, err = first.communicate()
    assert first.returncode == -signal.SIGKILL, f"killed midway, not finished or failed: {err.decode()[-2000:]}"
    killed_with = _cached_units(cache_dir)
    assert 0 < killed_with < 34
    assert not (tmp_path / "a" / "profile" / "lut.csv").exists()

    second = subprocess.run([*cli, "profile", *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{killed_with} of 34 units from" in second.stderr
    metrics = json.loads((tmp_path / "a" / "reports" / "profile.json").read_text())
    assert (metrics["units_from_cache"], metrics["units_measured"]) == (killed_with, 34 - killed_with)
    print(f"resume: run 1 cached {killed_with} units before SIGKILL; run 2 measured {34 - killed_with}, "
          f"held-out error {metrics['lut_mean_abs_error']:.1%}")
    assert metrics["entries"] == 34 and metrics["attempts"] == 1  # (its error is this machine's: not asserted)
    assert len(LatencyTable.load(tmp_path / "a" / "profile" / "lut.csv")) == 34
    if "every attempt saw sustained contention" in second.stderr:  # a busy machine (CI): the table is used,
        assert "discarded 34 cached unit(s)" in second.stderr  # its units timed beside a neighbour are not kept
        assert _cached_units(cache_dir) == 0
    else:
        assert _cached_units(cache_dir) == 34
    print(f"resume: the cache keeps {_cached_units(cache_dir)} units")
