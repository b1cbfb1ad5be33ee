"""Resumable profiling: the per-device unit cache, rescaling of resumed units, discarding after a bad
attempt, and a `netadapt profile` killed with SIGKILL midway that resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netadapt.arch import ModelSpec
from netadapt.layers import LayerSpec
from netadapt.models import build_supernet
from netadapt.resources import timing
from netadapt.resources.cache import CachedUnit, UnitCache
from netadapt.resources.enumeration import enumerate_layers
from netadapt.resources.lookup_table import KEY_FIELDS
from netadapt.resources.profiling import cache_context, profile_space
from netadapt.resources.timing import ProfileSettings, time_units
from tests.netadapt.resources.test_profiling import FAST, SPEC, FakeMachine, unit_ms

UNITS = [LayerSpec("conv", 8, 16, 6, 6, 3, 1, norm=True, act="relu6"), LayerSpec("add", 8, 8, 6, 6),
         LayerSpec("linear", 8, 3, 1, 1, bias=True)]


def test_units_round_trip_and_a_torn_last_line_is_ignored_then_cut_off(tmp_path: Path):
    cache = UnitCache(tmp_path, {"backend": "torch-cpu", "threads": 1})
    assert cache.load() == {}
    first = {UNITS[0]: CachedUnit(1.0, 0.9, 1.2, 4.0, "a-0"), UNITS[1]: CachedUnit(0.5, 0.4, 0.6, 4.0, "a-0")}
    cache.append(first)
    with open(cache.path, "ab") as f:  # a kill in the middle of the next group's write
        f.write(b'{"unit": {"op": "linear", "cin": 8')
    assert cache.load() == first
    second = {UNITS[2]: CachedUnit(0.1, 0.1, 0.1, 5.0, "b-0")}
    cache.append(second)
    assert cache.load() == {**first, **second}
    lines = cache.path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines), "the torn line was cut off"
    assert json.loads(lines[0])["context"] == {"format": 1, "backend": "torch-cpu", "threads": 1}


def test_a_cache_for_another_setting_is_never_read(tmp_path: Path):
    model = build_supernet(SPEC)
    here = UnitCache(tmp_path, cache_context(model, FAST))
    here.append({UNITS[0]: CachedUnit(1.0, 1.0, 1.0, 1.0, "a-0")})
    for other in [ProfileSettings("torch-cpu", threads=2, warmup=1, repeats=3, network_repeats=5),
                  ProfileSettings("onnxruntime-cpu", threads=1, warmup=1, repeats=3, network_repeats=5),
                  ProfileSettings("torch-cpu", threads=1, batch_size=4, warmup=1, repeats=3, network_repeats=5),
                  ProfileSettings("torch-cpu", threads=1, warmup=1, repeats=30, network_repeats=5)]:
        assert UnitCache(tmp_path, cache_context(model, other)).load() == {}, other
    wider = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3, width_mult=2.0))  # another reference network
    assert UnitCache(tmp_path, cache_context(wider, FAST)).load() == {}
    assert UnitCache(tmp_path, cache_context(model, FAST)).load() == here.load() != {}
    here.path.write_text('{"format": 1, "context": {"backend": "forged"}}\n' + here.path.read_text().split("\n", 1)[1])
    assert here.load() == {} and not here.path.exists(), "a foreign header: discarded, never trusted"


def test_resumed_units_are_rescaled_to_this_runs_reference_speed(monkeypatch, tmp_path: Path):
    """An interrupted run timed some units on a machine twice as slow as the resumed run: each unit
    carries its group's reference median, so the resumed table has every unit at one speed."""
    speed = {"factor": 2.0}

    def make_runner(module, inputs, backend, threads=1, command=None):
        return lambda: module.fake_ms * speed["factor"]

    FakeMachine(monkeypatch)
    monkeypatch.setattr(timing, "make_runner", make_runner)
    model = build_supernet(SPEC).eval()
    specs = enumerate_layers(model)
    reference = type("Ref", (), {"fake_ms": 1.0})()
    cache = UnitCache(tmp_path, cache_context(model, FAST))
    first = time_units(specs[:12], FAST, group_size=5, reference=make_runner(reference, (), ""), cache=cache)
    assert first.measured == 12 and len(cache.load()) == 12
    speed["factor"] = 1.0
    resumed = time_units(specs, FAST, group_size=5, reference=make_runner(reference, (), ""), cache=cache)
    assert (resumed.measured, resumed.from_cache) == (len(specs) - 12, 12)
    ratios = [r["latency_ms"] / unit_ms(LayerSpec(**{k: r[k] for k in KEY_FIELDS})) for r in resumed.rows]
    assert ratios == pytest.approx([ratios[0]] * len(specs)), "cached and fresh units at one speed"
    assert resumed.drift == pytest.approx(2.0), "the earlier groups' references were twice as slow"


def test_a_bad_attempt_discards_the_cache_and_the_retry_times_every_unit(monkeypatch, tmp_path: Path):
    """A cache holding wrong units (say, measured while a neighbour ran) gives a bad table; the retry
    must not reload them: it measures all units again, and the cache then holds only those."""
    FakeMachine(monkeypatch)
    model = build_supernet(SPEC).eval()
    specs = enumerate_layers(model)
    cache = UnitCache(tmp_path, cache_context(model, FAST))
    base_ms = sum(unit_ms(s) for s in model.layers(model.space()))  # what the fake reference reads
    cache.append({s: CachedUnit(unit_ms(s) * (10.0 if i % 3 == 0 else 1.0), 0.0, 0.0, base_ms, "busy-0")
                  for i, s in enumerate(specs)})
    result = profile_space(model, FAST, fidelity_samples=4, seed=0, max_error=0.2, max_attempts=2, cache_dir=tmp_path)
    assert result.attempts == 2 and result.error == pytest.approx(0, abs=1e-9)
    assert (result.units_measured, result.units_from_cache) == (len(specs), 0)
    assert {u.group for u in cache.load().values()} != {"busy-0"} and len(cache.load()) == len(specs)


def test_a_good_table_from_the_cache_times_no_unit(monkeypatch, tmp_path: Path):
    machine = FakeMachine(monkeypatch)
    model = build_supernet(SPEC).eval()
    profile_space(model, FAST, fidelity_samples=4, seed=0, cache_dir=tmp_path)
    calls = machine.calls
    again = profile_space(model, FAST, fidelity_samples=4, seed=0, cache_dir=tmp_path)
    assert (again.units_measured, again.units_from_cache) == (0, len(enumerate_layers(model)))
    assert again.error == pytest.approx(0, abs=1e-9)
    assert machine.calls - calls < calls / 2, "only the reference and the networks were timed again"
