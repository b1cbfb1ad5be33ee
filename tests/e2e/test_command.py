"""`netadapt profile` end to end on the shipped onnxruntime device script through the `command`
backend, and a failing command named by its key (the backend itself: tests/netadapt/resources/
test_command.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netadapt.resources.lookup_table import LatencyTable, TableContext
from netadapt_flows.cli import main
from tests.presets import command_args


@pytest.mark.slow  # the device script runs once per unit: a process start each
def test_profile_stage_through_the_command_backend(tiny_root: Path, tmp_path: Path):
    args = command_args(tiny_root, tmp_path)
    assert main(["prepare", *args]) == 0
    assert main(["profile", *args]) == 0
    metrics = json.loads((tmp_path / "a" / "reports" / "profile.json").read_text())
    assert metrics["backend"] == "command" and metrics["entries"] == 34 and metrics["fidelity_networks"] == 3
    assert metrics["units_measured"] == 34 and metrics["units_from_cache"] == 0 and metrics["attempts"] == 1
    assert metrics["lut_mean_abs_error"] >= 0 and metrics["base_latency_measured_ms"] > 0  # (any error: timed)
    table = LatencyTable.load(tmp_path / "a" / "profile" / "lut.csv")
    table.check(TableContext.current("command", 1, 1))
    cached = list((tmp_path / "a" / "profile_cache" / "command").glob("units-*.jsonl"))
    assert len(cached) == 1 and len(cached[0].read_text().splitlines()) == 1 + 34


def test_profile_stage_fails_naming_the_key_when_the_command_fails(tiny_root: Path, tmp_path: Path, capsys):
    args = command_args(tiny_root, tmp_path)
    assert main(["prepare", *args]) == 0
    capsys.readouterr()
    assert main(["profile", *args, "-S", "profile.command=sh -c 'echo device offline >&2; exit 1' {model}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("netadapt: error: profile.command: exited with status 1: ")
    assert err.endswith("last output line: 'device offline'")
    assert main(["profile", *args, "-S", "profile.command=bench {modle}"]) == 2
    assert "profile.command: unknown placeholder {modle}" in capsys.readouterr().err
    assert not (tmp_path / "a" / "profile" / "lut.csv").exists()
