"""`netadapt profile` end to end with the default backend: the table, its report and the fidelity
plot (the table itself: tests/netadapt/resources/test_lookup_table.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from netadapt.config import ProfileConfig
from netadapt.resources.lookup_table import LatencyTable, TableContext
from netadapt_flows.cli import main
from tests import presets


def test_profile_stage_through_the_cli(idx_root: Path, tmp_path: Path):
    common = ["-S", "data.name=fashion-mnist", "-S", f"data.root={idx_root}", "-S", "model.name=plain_cnn",
              *presets.outputs(tmp_path)]
    assert main(["prepare", *common]) == 0
    # The default backend, briefly timed, its table accepted whatever its error (`presets.ANY_ERROR`):
    # only what timing cannot change is asserted.
    fast = presets.flags({"profile": {"warmup": 1, "repeats": 3, "network_repeats": 5, "fidelity_samples": 2,
                                      **presets.ANY_ERROR}})
    assert main(["profile", *common, *fast]) == 0
    metrics = json.loads((tmp_path / "m" / "profile.json").read_text())
    for key in ["backend", "entries", "seconds", "base_latency_measured_ms", "base_latency_estimated_ms",
                "lut_mean_abs_error", "lut_max_abs_error"]:
        assert key in metrics
    metrics = json.loads((tmp_path / "a" / "reports" / "profile.json").read_text())  # every metric
    backend = ProfileConfig().backend  # the default, as params.yaml's
    assert metrics["backend"] == backend and metrics["fidelity_networks"] == 2
    assert {"lut_in_sample_mean_abs_error", "reference_drift", "unit_repeat_spread", "attempts"} <= set(metrics)
    table = LatencyTable.load(tmp_path / "a" / "profile" / "lut.csv")
    assert len(table) == metrics["entries"]
    table.check(TableContext.current(backend, 1, 1))
    assert (tmp_path / "p" / "fidelity.png").is_file()
    assert pd.read_csv(tmp_path / "p" / "fidelity.csv").network.tolist()[:2] == ["base", "smallest"]
