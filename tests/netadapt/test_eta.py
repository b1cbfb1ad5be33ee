"""Progress with an ETA off a terminal (`dvc repro`, a pipe, Prefect's log): a log line every 10 s
once a step has run 10 s, naming the step, how far it is and the time left; a short step says nothing."""

from __future__ import annotations

import logging

import pytest
import tqdm.std

from netadapt import eta


class Clock:
    """A clock that moves only when told: tqdm's time, so no test waits or depends on the machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(tqdm.std, "time", clock)
    monkeypatch.setattr(eta.sys.stderr, "isatty", lambda: False, raising=False)
    return clock


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "netadapt"]


def test_a_long_step_logs_its_progress_and_eta_every_ten_seconds(clock, caplog):
    caplog.set_level(logging.INFO, logger="netadapt")
    bar = eta.progress_bar(range(8), total=8, desc="search candidates", unit="candidates")
    for i in bar:  # each candidate takes 6 s: 48 s in all
        clock.now += 6
        bar.set_postfix(loss="0.512", refresh=False)
    bar.close()
    shown = lines(caplog)
    assert shown, "a step of 48 s reports its progress"
    first = shown[0]
    # after 2 candidates (12 s): 6 s per candidate, 6 to go, 36 s left
    assert first == "search candidates: 2/8 candidates (25%), 00:12 elapsed, ETA 00:36, loss=0.512", first
    assert len(shown) <= 48 // 10 + 1, "at most one line per 10 s"
    assert all(line.startswith("search candidates: ") and "ETA" in line for line in shown)


def test_a_short_step_and_another_ranks_loop_print_nothing(clock, caplog):
    caplog.set_level(logging.INFO, logger="netadapt")
    for _ in eta.progress_bar(range(5), total=5, desc="supernet epoch 1/3", unit="batches"):
        clock.now += 1.5  # 7.5 s in all
    for _ in eta.progress_bar(range(5), total=5, desc="supernet epoch 1/3", unit="batches", enabled=False):
        clock.now += 30
    assert lines(caplog) == []


def test_a_bar_updated_by_hand_counts_what_was_done_before(clock, caplog):
    """Profiling: units measured earlier (the cache) count as done; the ETA is for the rest."""
    caplog.set_level(logging.INFO, logger="netadapt")
    bar = eta.progress_bar(total=100, initial=40, desc="profile onnxruntime-cpu", unit="units")
    for _ in range(6):
        clock.now += 5
        bar.update(10)
    bar.close()
    assert lines(caplog)[0].startswith("profile onnxruntime-cpu: 60/100 units (60%), 00:10 elapsed, ETA ")
