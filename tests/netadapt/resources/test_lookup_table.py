from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from netadapt.arch import ModelSpec
from netadapt.errors import NetAdaptError
from netadapt.layers import LayerSpec
from netadapt.models import build_supernet
from netadapt.resources import ResourceModel
from netadapt.resources.backends import time_module
from netadapt.resources.lookup_table import KEY_FIELDS, LatencyModel, LatencyTable, TableContext, TableError
from netadapt.plots import plot_fidelity
from netadapt.resources.calibration import fit_calibration
from netadapt.resources.enumeration import enumerate_layers
from netadapt.resources.profiling import profile_space
from netadapt.resources.samples import calibration_architectures, sample_architectures
from netadapt.resources.timing import ProfileSettings
from netadapt.resources.units import build_unit

SPEC = ModelSpec("plain_cnn", (1, 8, 8), 3)
FAST = ProfileSettings("torch-cpu", threads=1, warmup=1, repeats=3, network_repeats=5)


def synthetic_table(specs: list[LayerSpec], constant: float = 0.5) -> LatencyTable:
    """A table whose latencies are a known function of the unit (no timing involved)."""
    rows = [{**{k: getattr(s, k) for k in KEY_FIELDS}, "latency_ms": 0.001 + s.macs * 1e-6,
             "p10_ms": 0.0, "p90_ms": 0.0} for s in specs]
    return LatencyTable(TableContext.current("torch-cpu", 1, 1), pd.DataFrame(rows), constant)


def test_estimate_is_the_sum_of_units_plus_the_constant():
    model = build_supernet(SPEC)
    table = synthetic_table(enumerate_layers(model))
    lat = LatencyModel(model, table)
    assert isinstance(lat, ResourceModel)
    for _, arch in sample_architectures(model.space(), 4, seed=0):
        layers = model.layers(arch)
        assert lat.estimate(arch) == pytest.approx(sum(0.001 + s.macs * 1e-6 for s in layers) + 0.5)


def test_table_round_trip(tmp_path: Path):
    model = build_supernet(SPEC)
    table = synthetic_table(enumerate_layers(model), constant=0.25)
    table.save(tmp_path / "lut.csv")
    loaded = LatencyTable.load(tmp_path / "lut.csv")
    assert loaded.context == table.context and loaded.constant_ms == 0.25 and len(loaded) == len(table)
    for _, arch in sample_architectures(model.space(), 3, seed=1):
        assert loaded.estimate_layers(model.layers(arch)) == pytest.approx(table.estimate_layers(model.layers(arch)))


def test_missing_entry_is_an_error_naming_it_unless_interpolating():
    model = build_supernet(SPEC)
    specs = enumerate_layers(model)
    missing = next(s for s in specs if s.op == "conv" and s.cout == 24)
    table = synthetic_table([s for s in specs if s != missing])
    with pytest.raises(TableError, match=r"no entry for LayerSpec\(op='conv', cin=.*cout=24"):
        table.latency(missing)
    interpolated = replace(table, interpolate=True).latency(missing)
    exact = 0.001 + missing.macs * 1e-6
    assert interpolated == pytest.approx(exact, rel=0.35), "scaled from the nearest unit of its kind"


def test_a_table_for_another_setting_is_refused_unless_allowed():
    table = synthetic_table([LayerSpec("linear", 8, 3, 1, 1, bias=True)])
    here = table.context
    for field, value in [("backend", "onnxruntime-cpu"), ("threads", 2), ("batch_size", 8), ("torch_version", "1.0")]:
        with pytest.raises(TableError, match=f"{field}: table has .*, asked for {value!r}"):
            table.check(replace(here, **{field: value}))
        table.check(replace(here, **{field: value}), allow_mismatch=True)
    table.check(here)


def test_loading_a_missing_or_foreign_file_names_it(tmp_path: Path):
    with pytest.raises(TableError, match="lut.csv: latency table not found"):
        LatencyTable.load(tmp_path / "lut.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "x.json").write_text('{"context": %s, "constant_ms": 0}' % __import__("json").dumps(
        TableContext.current("torch-cpu", 1, 1).__dict__))
    with pytest.raises(TableError, match="x.csv: not a latency table"):
        LatencyTable.load(tmp_path / "x.csv")


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v1", "plain_cnn"])
def test_enumeration_covers_every_unit_of_every_architecture(name):
    model = build_supernet(ModelSpec(name, (1, 28, 28), 10))
    units = set(enumerate_layers(model))
    assert len(units) == len(enumerate_layers(model)), "deduplicated"
    for _, arch in sample_architectures(model.space(), 10, seed=3):
        assert set(model.layers(arch)) <= units


def test_enumeration_of_a_model_without_blocks_is_exhaustive():
    from tests.netadapt.models.test_protocol import TinyNet

    model = TinyNet(ModelSpec("tests:TinyNet", (1, 8, 8), 4))
    units = set(enumerate_layers(model))
    space = model.space()
    union = set()
    for h in space.dim("hidden").choices():
        for r in space.dim("res").choices():
            union.update(model.layers(space.with_widths({"hidden": h, "res": r})))
    assert units == union


EVERY_KIND_OF_UNIT = [LayerSpec("conv", 8, 16, 6, 6, 3, 1, norm=True, act="relu6"),
                      LayerSpec("conv", 8, 8, 6, 6, 3, 2, groups=8, norm=True, act="relu"),
                      LayerSpec("add", 8, 8, 6, 6), LayerSpec("partial_add", 8, 4, 6, 6),
                      LayerSpec("bypass_cat", 8, 4, 6, 6), LayerSpec("avgpool", 8, 8, 6, 6),
                      LayerSpec("linear", 8, 3, 1, 1, bias=True)]


@pytest.mark.parametrize("backend", ["torch-cpu", "onnxruntime-cpu"])
def test_backends_time_every_kind_of_unit(backend):
    for spec in EVERY_KIND_OF_UNIT:
        module, inputs = build_unit(spec)
        t = time_module(module, inputs, backend, threads=1, warmup=1, repeats=3)
        # onnxruntime's timings exclude the Python call overhead, so a unit that costs less than that
        # overhead's jitter may read 0 (it did on CI); wall-clock torch timings are always positive.
        assert (0 < t.p10_ms if backend == "torch-cpu" else 0 <= t.p10_ms)
        assert t.p10_ms <= t.median_ms <= t.p90_ms and t.repeats == 3


def test_onnxruntime_timings_are_wall_time_less_the_call_overhead(monkeypatch):
    from netadapt.resources import backends

    module, inputs = build_unit(EVERY_KIND_OF_UNIT[0])
    monkeypatch.setattr(backends, "ort_call_overhead_ms", lambda threads: 0.0)
    assert time_module(module, inputs, "onnxruntime-cpu", warmup=1, repeats=3).p10_ms > 0
    monkeypatch.setattr(backends, "ort_call_overhead_ms", lambda threads: 1e9)  # never negative
    assert time_module(module, inputs, "onnxruntime-cpu", warmup=1, repeats=3).p90_ms == 0.0


def test_unit_modules_compute_what_the_slim_network_computes():
    module, (x,) = build_unit(LayerSpec("partial_add", 8, 4, 3, 3))
    y = module.branch.value  # the branch's output, measured in its own conv units
    assert torch.equal(module(x), torch.cat([x[:, :4] + y, x[:, 4:]], 1))
    module, (x,) = build_unit(LayerSpec("bypass_cat", 8, 4, 3, 3))
    assert torch.equal(module(x), torch.cat([module.body.value, x[:, 4:]], 1))


def test_cuda_backend_without_a_gpu_names_the_key():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    module, inputs = build_unit(LayerSpec("linear", 8, 3, 1, 1, bias=True))
    with pytest.raises(NetAdaptError, match="profile.backend: torch-cuda was asked for"):
        time_module(module, inputs, "torch-cuda")


def test_estimate_adds_the_per_unit_offset(tmp_path: Path):
    model = build_supernet(SPEC)
    table = synthetic_table(enumerate_layers(model), constant=0.5)
    arch = model.space()
    plain = table.estimate_layers(model.layers(arch))
    table.unit_offset_ms = 0.01
    assert table.estimate_layers(model.layers(arch)) == pytest.approx(plain + 0.01 * len(model.layers(arch)))
    table.save(tmp_path / "lut.csv")
    assert LatencyTable.load(tmp_path / "lut.csv").unit_offset_ms == 0.01


def test_calibration_fit_recovers_a_known_plane():
    sums, units = [0.9, 0.2, 0.5, 0.4, 0.7, 0.3], [43, 16, 30, 25, 38, 43]
    measured = [1.2 * s - 0.002 * n + 0.05 for s, n in zip(sums, units)]
    assert fit_calibration(sums, units, measured) == (pytest.approx(1.2), pytest.approx(-0.002), pytest.approx(0.05))


def test_calibration_fit_leaves_out_what_the_networks_cannot_tell_apart():
    # one unit count: no offset, the scale and constant still fitted
    assert fit_calibration([0.2, 0.4, 0.6], [10, 10, 10], [0.3, 0.5, 0.7]) == (
        pytest.approx(1.0), 0.0, pytest.approx(0.1))
    # a negative scale (wider networks measured faster: noise) falls back to scale 1 and an offset
    sums, units = [0.2, 0.4, 0.6, 0.3], [10, 20, 30, 30]
    measured = [-0.5 * s + 0.01 * n + 0.5 for s, n in zip(sums, units)]
    offset, constant = np.polyfit(units, [m - s for m, s in zip(measured, sums)], 1)
    assert fit_calibration(sums, units, measured) == (1.0, pytest.approx(offset), pytest.approx(constant))
    assert fit_calibration([0.3], [10], [0.5]) == (1.0, 0.0, pytest.approx(0.2))


def test_profile_space_on_a_tiny_net(tmp_path: Path):
    model = build_supernet(SPEC).eval()
    result = profile_space(model, FAST, fidelity_samples=3, seed=0)
    table, check = result.table, result.fidelity
    assert len(table) == len(enumerate_layers(model))
    assert (table.entries.latency_ms > 0).all()
    fitted = [name for name, _ in calibration_architectures(model.space())]
    assert fitted[:2] == ["base", "smallest"] and {"calibration0", "width0.5"} <= set(fitted)
    assert list(check.network) == fitted + ["random0", "random1", "random2"]
    assert check.in_fit.tolist() == [True] * len(fitted) + [False] * 3
    assert list(result.held_out.network) == ["random0", "random1", "random2"]
    assert (check.measured_ms > 0).all() and result.attempts == 1
    assert check.rel_error.tolist() == pytest.approx(
        ((check.estimated_ms - check.measured_ms).abs() / check.measured_ms).tolist())
    plot_fidelity(check, tmp_path / "f.png", "tiny")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measure_latency_times_a_whole_network():
    from netadapt.models import extract
    from netadapt.resources.backends import measure_latency

    model = build_supernet(SPEC).eval()
    t = measure_latency(extract(model, model.space()), SPEC.input_shape, "torch-cpu", threads=1, batch_size=2,
                        warmup=1, repeats=5)
    assert 0 < t.p10_ms <= t.median_ms <= t.p90_ms and t.repeats == 5
