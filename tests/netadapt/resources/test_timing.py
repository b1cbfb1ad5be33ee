"""Whole networks timed side by side: any modules (`module_latencies`), or a space's networks
(`network_latencies`, which extracts them first). No wall clock in the assertions: a fake runner
counts the calls and returns a fixed time per network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netadapt.arch import ModelSpec
from netadapt.models import build_supernet
from netadapt.resources import timing
from netadapt.resources.timing import BURST, BURST_WARMUP, ProfileSettings, module_latencies, network_latencies

SETTINGS = ProfileSettings("torch-cpu", threads=1, warmup=1, repeats=3, network_repeats=10)


def fake_runners(monkeypatch: pytest.MonkeyPatch) -> dict[int, list]:
    """Runners that return a module's width (its first parameter's row count) as its time, and record
    the inputs each was built with."""
    built: dict[int, list] = {}

    def runner(self, module, inputs):
        ms = float(next(module.parameters()).shape[0])
        built[id(module)] = [inputs[0].shape, 0]

        def run() -> float:
            built[id(module)][1] += 1
            return ms
        return run

    monkeypatch.setattr(ProfileSettings, "runner", runner)
    return built


def test_any_modules_are_timed_in_order_in_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    built = fake_runners(monkeypatch)
    modules = [nn.Conv2d(3, 16, 3), nn.Conv2d(3, 4, 3), nn.Conv2d(3, 8, 3)]
    assert module_latencies(modules, (3, 8, 8), SETTINGS, seed=1) == [16.0, 4.0, 8.0]
    bursts = -(-SETTINGS.network_repeats // BURST)
    assert [built[id(m)] for m in modules] == [[torch.Size([1, 3, 8, 8]), bursts * (BURST_WARMUP + BURST)]] * 3


def test_a_spaces_networks_are_extracted_then_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    supernet = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3)).eval()
    space = supernet.space()
    timed = []
    monkeypatch.setattr(timing, "module_latencies",
                        lambda modules, shape, settings, seed: timed.append((modules, shape)) or [1.0] * len(modules))
    assert network_latencies(supernet, [space, space.narrowest()], SETTINGS) == [1.0, 1.0]
    (modules, shape), = timed
    assert shape == (1, 8, 8) and all(not hasattr(m, "space") for m in modules)
    widths = [sum(p.numel() for p in m.parameters()) for m in modules]
    assert widths[0] > widths[1]  # the narrowest network, physically slim
