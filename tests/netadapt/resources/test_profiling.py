"""Profiling's fidelity check and its guard against a busy machine, on a fake machine whose timings
are synthetic functions of the layer specs (no wall clock: deterministic under any CI load)."""

from __future__ import annotations

import logging

import pytest

from netadapt.arch import Architecture, ModelSpec
from netadapt.config import parse_config
from netadapt.errors import ConfigError, NetAdaptError
from netadapt.layers import LayerSpec
from netadapt.models import build_supernet
from netadapt.resources import profiling, timing
from netadapt.resources.lookup_table import KEY_FIELDS
from netadapt.resources.profiling import UnstableProfileError, profile_space
from netadapt.resources.samples import calibration_architectures, held_out_architectures
from netadapt.resources.timing import ProfileSettings, UnitTimes

SPEC = ModelSpec("plain_cnn", (1, 8, 8), 3)
FAST = ProfileSettings("torch-cpu", threads=1, warmup=1, repeats=3, network_repeats=5)


def unit_ms(spec: LayerSpec) -> float:
    return 0.01 + spec.macs * 1e-5


class FakeMachine:
    """Times modules by formula instead of by clock.

    A unit costs `unit_ms(spec)`; a network costs `network` of its units' costs (their sum), times (1 + `held_out_bias`)
    when it is not one of the calibration networks, a systematic error only a held-out check can
    see. During the first `busy_attempts` profiling attempts a neighbour job starts and stops
    every 37 calls and triples each call it overlaps.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, held_out_bias: float = 0.0, busy_attempts: int = 0,
                 network=lambda unit_times: sum(unit_times)):
        self.held_out_bias, self.busy_attempts = held_out_bias, busy_attempts
        self.attempt = self.calls = 0
        build_unit, extract, measure_table = timing.build_unit, timing.extract, profiling.measure_table

        def fake_build_unit(spec, batch_size=1):
            module, inputs = build_unit(spec, batch_size)
            module.fake_ms = unit_ms(spec)
            return module, inputs

        def fake_extract(supernet, arch: Architecture):
            module = extract(supernet, arch)
            calibration = {a.widths_json() for _, a in calibration_architectures(supernet.space())}
            bias = 0.0 if arch.widths_json() in calibration else self.held_out_bias
            module.fake_ms = network([unit_ms(s) for s in supernet.layers(arch)]) * (1 + bias)
            return module

        def counting_measure_table(*args, **kwargs):
            self.attempt += 1
            return measure_table(*args, **kwargs)

        monkeypatch.setattr(timing, "build_unit", fake_build_unit)
        monkeypatch.setattr(timing, "extract", fake_extract)
        monkeypatch.setattr(timing, "make_runner", self.make_runner)
        monkeypatch.setattr(profiling, "measure_table", counting_measure_table)

    def make_runner(self, module, inputs, backend, threads=1, command=None):
        def run() -> float:
            self.calls += 1
            busy = self.attempt <= self.busy_attempts and (self.calls // 37) % 2 == 1
            return module.fake_ms * (3.0 if busy else 1.0)
        return run


def test_reported_error_is_over_held_out_networks_only(monkeypatch):
    """Calibration networks fit the table exactly; held-out ones run 10% slower than their units add
    up to. The contract's error must be that 1/11 on every held-out network, not diluted by the
    base (which sets the rescaling) or any network of the fit."""
    FakeMachine(monkeypatch, held_out_bias=0.1)
    model = build_supernet(SPEC).eval()
    result = profile_space(model, FAST, fidelity_samples=4, seed=0)
    check = result.fidelity
    calibration = {a.widths_json() for _, a in calibration_architectures(model.space())}
    held_out = result.held_out
    assert len(held_out) == 4 and list(held_out.network) == ["random0", "random1", "random2", "random3"]
    assert not set(held_out.arch) & calibration, "no calibration network among the held-out ones"
    assert model.space().widths_json() not in set(held_out.arch), "the base (rescaling) is not held out"
    assert set(check[check.in_fit].arch) == calibration and {"base", "smallest"} <= set(check[check.in_fit].network)
    metrics = result.metrics()
    assert metrics["lut_mean_abs_error"] == pytest.approx(1 / 11)
    assert metrics["lut_max_abs_error"] == pytest.approx(1 / 11)
    assert metrics["lut_in_sample_mean_abs_error"] == pytest.approx(0, abs=1e-9)
    assert metrics["fidelity_networks"] == 4 and metrics["calibration_networks"] == len(calibration)
    assert metrics["reference_drift"] == 1.0 and metrics["unit_repeat_spread"] == 1.0 and metrics["attempts"] == 1


def test_a_unit_timed_alone_paying_a_per_call_cost_is_calibrated_out(monkeypatch):
    """A network runs its units for 0.7 of their lone time less 0.004 ms each (the per-call cost a
    unit timed alone pays), plus 0.05 ms: the fit must recover that for every network, the narrowest
    and the held-out ones included. (Fitting an offset alone left ~10% errors here.)"""
    FakeMachine(monkeypatch, network=lambda times: sum(0.7 * t - 0.004 for t in times) + 0.05)
    model = build_supernet(ModelSpec("mobilenet_v2", (1, 8, 8), 3, 0.25)).eval()
    result = profile_space(model, FAST, fidelity_samples=4, seed=0)
    assert result.fidelity.rel_error.max() == pytest.approx(0, abs=1e-6)
    assert "width0" in set(result.fidelity.network) and result.table.unit_offset_ms == pytest.approx(-0.004)


def test_held_out_networks_avoid_the_excluded_ones_and_each_other():
    space = build_supernet(SPEC).space()
    calibration = {a.widths_json() for _, a in calibration_architectures(space)}
    picks = held_out_architectures(space, 20, seed=3, exclude=calibration)
    widths = [a.widths_json() for _, a in picks]
    assert len(picks) == 20 and len(set(widths)) == 20 and not set(widths) & calibration
    everything = {a.widths_json() for _, a in held_out_architectures(space, 10_000, seed=0, exclude=set())}
    assert held_out_architectures(space, 5, seed=0, exclude=everything) == [], "a space too small: none, no hang"


def test_a_bad_attempt_is_measured_again_and_the_good_table_kept(monkeypatch, caplog):
    machine = FakeMachine(monkeypatch, busy_attempts=1)
    model = build_supernet(SPEC).eval()
    with caplog.at_level(logging.INFO, logger="netadapt"):
        result = profile_space(model, FAST, fidelity_samples=4, seed=0, max_error=0.2, max_attempts=3)
    assert machine.attempt == 2 and result.attempts == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "attempt 1/3" in warnings[0] and "measuring again" in warnings[0]
    assert result.error == pytest.approx(0, abs=1e-9)
    entries = result.table.entries
    assert entries.latency_ms.tolist() == pytest.approx(
        [unit_ms(LayerSpec(**{k: row[k] for k in KEY_FIELDS})) for row in entries.to_dict("records")])


def test_an_always_bad_machine_fails_naming_the_key(monkeypatch):
    machine = FakeMachine(monkeypatch, busy_attempts=99)
    model = build_supernet(SPEC).eval()
    with pytest.raises(UnstableProfileError) as info:
        profile_space(model, FAST, fidelity_samples=4, seed=0, max_error=0.2, max_attempts=2)
    message = str(info.value)
    assert isinstance(info.value, NetAdaptError) and machine.attempt == 2 and "\n" not in message
    assert message.startswith("profile.max_error: ") and "in 2 attempt(s)" in message
    for hint in ("reference drift", "repeat spread", "quiet machine", "profile.repeats"):
        assert hint in message


def test_drift_and_spread_of_unit_timings():
    row = lambda p10, p90: {"latency_ms": 1.0, "p10_ms": p10, "p90_ms": p90}
    times = UnitTimes([row(1.0, 1.2), row(0.0, 0.5), row(2.0, 3.0), row(1.0, 1.1)], 2.0, [1.5, 3.0, 2.0])
    assert times.drift == 2.0
    assert times.repeat_spread == pytest.approx(1.2), "median of 1.1, 1.2, 1.5; a p10 of 0 is skipped"
    assert UnitTimes([], 1.0, [1.0]).drift == 1.0 and UnitTimes([], 1.0, []).repeat_spread == 1.0


@pytest.mark.parametrize("key, value, message", [
    ("max_error", -0.1, "profile.max_error: must be > 0, got -0.1"),
    ("max_error", 0, "profile.max_error: must be > 0, got 0"),
    ("max_error", "high", "profile.max_error: must be a number, got 'high'"),
    ("max_attempts", 0, "profile.max_attempts: must be >= 1, got 0"),
    ("max_attempts", 1.5, "profile.max_attempts: must be an integer, got 1.5"),
    ("fidelity_samples", 0, "profile.fidelity_samples: must be >= 1, got 0"),
])
def test_bad_stability_keys_fail_at_config_time(key, value, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        parse_config({"profile": {key: value}})
