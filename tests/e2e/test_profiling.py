"""The profile stage through the CLI on a fake machine: nothing written when every attempt is bad,
held-out and in-sample errors reported."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from netadapt_flows.cli import main
from tests.netadapt.resources.test_profiling import FakeMachine


def _stage_args(idx_root: Path, tmp_path: Path) -> list[str]:
    return ["-S", "data.name=fashion-mnist", "-S", f"data.root={idx_root}", "-S", "model.name=plain_cnn",
            "-S", "profile.warmup=1", "-S", "profile.repeats=3", "-S", "profile.network_repeats=5",
            "-S", "profile.fidelity_samples=4", "-S", "profile.max_error=0.2", "-S", "profile.max_attempts=2",
            "--artifacts", str(tmp_path / "a"), "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]


def test_profile_stage_writes_nothing_when_every_attempt_is_bad(idx_root: Path, tmp_path: Path, monkeypatch, capsys):
    args = _stage_args(idx_root, tmp_path)
    assert main(["prepare", *args]) == 0
    FakeMachine(monkeypatch, busy_attempts=99)
    capsys.readouterr()
    assert main(["profile", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("netadapt: error: profile.max_error: ") and "above 20.0%" in err
    assert not (tmp_path / "a" / "profile" / "lut.csv").exists()
    assert not (tmp_path / "a" / "profile" / "lut.json").exists()
    assert not (tmp_path / "m" / "profile.json").exists()
    assert not (tmp_path / "a" / "reports" / "profile.json").exists()


def test_profile_stage_reports_held_out_and_in_sample_error(idx_root: Path, tmp_path: Path, monkeypatch):
    args = _stage_args(idx_root, tmp_path)
    assert main(["prepare", *args]) == 0
    FakeMachine(monkeypatch, held_out_bias=0.1, busy_attempts=1)
    assert main(["profile", *args]) == 0
    metrics = json.loads((tmp_path / "a" / "reports" / "profile.json").read_text())
    assert metrics["attempts"] == 2 and metrics["fidelity_networks"] == 4
    assert metrics["lut_mean_abs_error"] == pytest.approx(1 / 11)
    assert metrics["lut_in_sample_mean_abs_error"] == pytest.approx(0, abs=1e-9)
    assert metrics["base_latency_measured_ms"] == pytest.approx(metrics["base_latency_estimated_ms"])
    assert {"reference_drift", "unit_repeat_spread", "lut_in_sample_max_abs_error"} <= set(metrics)
    fidelity = pd.read_csv(tmp_path / "p" / "fidelity.csv")
    assert fidelity.in_fit.tolist() == [True] * metrics["calibration_networks"] + [False] * 4
    assert (tmp_path / "a" / "profile" / "lut.csv").is_file()
