"""NetAdapt V1 under `search.preset: netadapt-reference`, wired end to end on tiny data (the
preset's step counts overridden to tiny ones: the wiring is under test, not the scale)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

import netadapt.netadapt_v1 as v1_module
from netadapt.checkpoints import load_supernet
from netadapt_flows.cli import main
from tests import presets

TINY_V1 = ["-S", "search.algorithm=netadapt", "-S", "search.short_term_steps=1", "-S", "search.long_term_epochs=0",
           "-S", "search.train_batch_size=32", "-S", "search.budget=0.7", "-S", "search.initial_reduction=0.3"]
ONE_EPOCH = ["-S", "supernet.epochs=1"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_supernet(path)[0].state_dict()


def test_reference_v1_without_a_checkpoint_starts_from_a_plainly_trained_network(tmp_path, monkeypatch):
    """The preset makes the supernet stage train plainly (its network is the one an explicit
    `supernet.sampling: none` trains, bit for bit), and V1 adapts that very network."""
    data = presets.tiny_data(tmp_path / "data", train=120, test=20)
    args = [*presets.project(tmp_path / "ref", data), *ONE_EPOCH]
    reference = [*args, *TINY_V1, "-S", "search.preset=netadapt-reference"]
    assert main(["prepare", *args]) == 0
    assert main(["supernet", *reference]) == 0
    supernet = tmp_path / "ref" / "a" / "supernet" / "supernet.pt"

    # the quick preset (algorithm mcd), plain training asked for by name
    plain = [*presets.project(tmp_path / "plain", data), *ONE_EPOCH]
    shutil.copytree(tmp_path / "ref" / "a" / "prepared", tmp_path / "plain" / "a" / "prepared")
    assert main(["supernet", *plain, "-S", "supernet.sampling=none"]) == 0
    expected, trained = weights(tmp_path / "plain" / "a" / "supernet" / "supernet.pt"), weights(supernet)
    assert trained.keys() == expected.keys() and all(torch.equal(expected[k], v) for k, v in trained.items())

    started, start_network = [], v1_module.start_network

    def spied(*a, **k):
        network, path = start_network(*a, **k)
        started.append((path, {key: v.clone() for key, v in network.state_dict().items()}))
        return network, path

    monkeypatch.setattr(v1_module, "start_network", spied)
    assert main(["search", *reference]) == 0
    ((path, start),) = started
    assert path == supernet
    assert start.keys() == expected.keys() and all(torch.equal(expected[k], v) for k, v in start.items())
