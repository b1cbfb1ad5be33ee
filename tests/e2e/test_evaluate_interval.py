"""`netadapt evaluate` states how sure its latency is: `metrics/evaluate.json` carries the bootstrap
95% intervals and the verdict that follows from them (met, missed, or undecided within noise after
timing again up to `search.undecided_retimings`), and the console line names the interval. The
device is a fake patched into the process: timings in rounds, chosen per case, no wall clock."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from netadapt.resources import metric
from netadapt.resources.spread import Rounds
from netadapt_flows.cli import main
from tests import presets


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[list[str], Path]:
    """Prepared, profiled, a super-network trained, searched (MACs) and fine-tuned on tiny data."""
    root = tmp_path_factory.mktemp("interval")
    args = presets.project(root, presets.tiny_data(root / "data", train=200, test=60))
    for stage in ["prepare", "profile", "supernet", "search", "finetune"]:
        assert main([stage, *args]) == 0
    return args, root


def device(*ratios_by_timing: list[float]):
    """A `network_timings` whose n-th timing gives the base 1 ms a round and the final network the
    n-th list's figures, one a round."""
    timings = []

    def network_timings(supernet, archs, settings, seed=0):
        figures = ratios_by_timing[min(len(timings), len(ratios_by_timing) - 1)]
        timings.append(1)
        return [Rounds(((1.0,),) * len(figures)), Rounds(tuple((f,) for f in figures))]
    return network_timings


@pytest.mark.parametrize("figures, verdict, met, timings", [
    ([[0.40, 0.41, 0.39, 0.40, 0.41, 0.40]], "met", True, 1),  # all within 0.4 * 1.05
    ([[0.50, 0.52, 0.49, 0.51, 0.50, 0.53]], "missed", False, 1),  # all above it
    ([[0.38, 0.46, 0.40, 0.44, 0.39, 0.45]], "undecided", True, 3),  # straddles, twice more: counted as met
])
def test_evaluate_writes_the_interval_and_the_verdict_that_follows(project, monkeypatch, caplog, figures, verdict,
                                                                   met, timings):
    args, root = project
    monkeypatch.setattr(metric, "network_timings", device(*figures))
    with caplog.at_level(logging.INFO, logger="netadapt"):
        assert main(["evaluate", *args, "-S", "search.metric=latency", "-S", "search.budget=0.4"]) == 0
    headline = json.loads((root / "m" / "evaluate.json").read_text())
    low, high = headline["latency_ratio_ci95_low"], headline["latency_ratio_ci95_high"]
    assert low <= headline["latency_ratio"] <= high and low < high
    assert headline["latency_measured_ms_ci95_low"] <= headline["latency_measured_ms"] <= \
        headline["latency_measured_ms_ci95_high"]
    assert headline["budget_verdict"] == verdict and headline["budget_met"] is met
    report = json.loads((root / "a" / "reports" / "evaluate.json").read_text())
    assert report["latency_timings"] == timings and report["latency_rounds"] == 6 * timings
    named = f"[{low:.4g}, {high:.4g}] of the base"
    assert any(named in r.getMessage() and "the budget 0.4 of the base" in r.getMessage() and
               {"met": ": met", "missed": ": missed", "undecided": ": undecided within noise after 3 timings, "
                "counted as met"}[verdict] in r.getMessage()
               for r in caplog.records), "the verdict names the interval"
