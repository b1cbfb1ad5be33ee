"""Profiling on a shared CPU: a neighbour that stays while units are timed slows the reference
workload timed before, between and after the unit groups; the attempt is measured again, and a
table measured beside it is refused or used only with a warning that says what was seen. A table
over `profile.max_error` is never used. The device is the fake one (`tests/fake_device.py`), whose
neighbour is a factor on numbered invocations, and the OS's figures come from a folder of the
test's own: no wall clock, no dependence on this machine's load."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from netadapt.arch import ModelSpec
from netadapt.config import parse_config
from netadapt.models import build_supernet
from netadapt.resources import backends, contention
from netadapt.resources.lookup_table import TableError
from netadapt.resources.metric import latency_table, profile_settings
from netadapt.resources.profiling import UnstableProfileError, profile_space
from tests.presets import FAKE_DEVICE

PROFILE = {**FAKE_DEVICE, "warmup": 1, "repeats": 3, "network_repeats": 5, "fidelity_samples": 2}


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake device, its invocations numbered in `calls`, and an OS that reports a load of 5.1 on
    2 cores, 3 other runnable processes and 4% steal over the attempt."""
    calls = tmp_path / "calls"
    monkeypatch.setenv("FAKE_DEVICE_CALLS", str(calls))
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "loadavg").write_text("5.10 4.00 3.00 4/300 12345\n")
    reads = []

    def stat() -> tuple[int | None, int, int]:  # 4 running (this process and 3 others); 4% of the ticks stolen
        reads.append(1)
        return 4, 40 * len(reads), 1000 * len(reads)
    monkeypatch.setattr(contention, "PROC", proc)
    monkeypatch.setattr(contention, "cpu_stat", stat)
    monkeypatch.setattr(contention, "usable_cores", lambda: 2)
    backends.command_overhead_ms.cache_clear()  # its invocations are numbered too: count them in every test
    yield calls
    backends.command_overhead_ms.cache_clear()


def profile(max_error: float = 0.12, max_attempts: int = 2, cache_dir: Path | None = None):
    p = parse_config({"profile": PROFILE}).profile
    model = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3)).eval()
    return profile_space(model, profile_settings(p), p.fidelity_samples, 0, max_error=max_error,
                         max_attempts=max_attempts, cache_dir=cache_dir)


def test_a_quiet_device_shows_no_slowdown_and_the_first_attempt_stands(device):
    result = profile()
    metrics = result.metrics()
    assert result.attempts == 1 and metrics["reference_slowdown"] == 1.0 and metrics["contended"] is False
    assert metrics["load_average"] == 5.1 and metrics["cpu_cores"] == 2 and metrics["runnable_others"] == 3
    assert metrics["steal_fraction"] == pytest.approx(0.04), "the OS's figures are reported, not decisive"


def test_a_neighbour_that_leaves_gets_the_attempt_measured_again(device, monkeypatch, caplog):
    profile(max_attempts=1)
    per_attempt = device.stat().st_size  # invocations of one attempt (the 3 of the call overhead first)
    device.unlink()
    backends.command_overhead_ms.cache_clear()
    monkeypatch.setenv("FAKE_DEVICE_LOAD", f"3@10-{per_attempt}")  # stays for the rest of attempt 1, then leaves
    with caplog.at_level(logging.INFO, logger="netadapt"):
        result = profile()
    assert result.attempts == 2 and not result.contention.sustained and result.error <= 0.12
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "attempt 1/2" in warned[0] and "measuring again" in warned[0]
    assert "reference workload slowed 3.00x during profiling (load 5.1 on 2 cores, 3 other processes runnable, " \
           "steal 4%)" in warned[0] and "sustained contention" in warned[0]


def test_a_neighbour_that_stays_is_named_whenever_its_table_is_used(device, monkeypatch, caplog):
    """Slowed from the 10th invocation on: every reference after the first is 3x, in attempt 2 too
    (compared with attempt 1's fastest). The table is within max_error (the slowdown is uniform),
    so it is used, with a warning that says what was seen; the metrics say so too."""
    monkeypatch.setenv("FAKE_DEVICE_LOAD", "3@10")
    with caplog.at_level(logging.WARNING, logger="netadapt"):
        result = profile()
    assert result.contention.sustained and len(caplog.records) == 3, "two attempts, then the one used"
    assert result.metrics()["reference_slowdown"] == pytest.approx(3.0, rel=0.01) and result.metrics()["contended"] is True
    last = caplog.records[-1].getMessage()
    assert last.startswith("profile: every attempt saw sustained contention; using attempt ")
    assert "reference workload slowed 3.00x during profiling" in last


def test_a_table_over_the_threshold_beside_a_neighbour_is_refused_naming_it(device, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_DEVICE_LOAD", "3@10")
    with pytest.raises(UnstableProfileError) as info:
        profile(max_error=1e-9, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert message.startswith("profile.max_error: ") and "\n" not in message
    assert "reference workload slowed 3.00x during profiling (load 5.1 on 2 cores" in message


def test_a_table_over_max_error_is_never_used_silently(device, tmp_path):
    result = profile()
    lut = tmp_path / "lut.csv"
    result.table.save(lut)
    p = parse_config({"profile": PROFILE}).profile
    assert latency_table(p, lut).held_out_error == pytest.approx(result.error)
    strict = parse_config({"profile": {**PROFILE, "max_error": result.error / 2}}).profile
    with pytest.raises(TableError, match=r"lut.csv: its mean error on held-out networks was .* above "
                                         r"profile.max_error .*re-run `netadapt profile`"):
        latency_table(strict, lut)


def test_the_os_figures_read_where_linux_tells_and_are_absent_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(contention, "PROC", tmp_path)
    assert contention.load_average() is None and contention.cpu_stat() == (None, 0, 0)
    (tmp_path / "loadavg").write_text("2.50 1.0 0.5 3/100 1\n")
    (tmp_path / "stat").write_text("cpu  10 0 10 70 0 0 0 10 0 0\ncpu0 5 0 5 35 0 0 0 5 0 0\nprocs_running 3\n")
    assert contention.load_average() == 2.5 and contention.cpu_stat() == (3, 10, 100)
    seen = contention.Contention(1.0, 1.0)
    assert seen.describe() == "reference workload slowed 1.00x during profiling (1 core)" and not seen.sustained
