import math

import pytest
import torch

import netadapt.netadapt_v1 as v1_module
from netadapt.arch import ModelSpec
from netadapt.data import Split
from netadapt.models import build_supernet, extract
from netadapt.models.reorder import filter_norms
from netadapt.netadapt_v1 import FineTuning, NetAdaptV1
from netadapt.resources.analytic import MacsModel
from netadapt.schedule import Schedule
from netadapt.search import SearchSettings
from tests.netadapt.models.test_models import trained_looking


def test_keeping_filters_preserves_the_function_and_puts_the_largest_first():
    for name in ["plain_cnn", "mobilenet_v2", "mobilenet_v1"]:
        model = trained_looking(ModelSpec(name, (1, 28, 28), 10))
        x = torch.randn(2, 1, 28, 28)
        before = model(x)
        dim = next(d for d in model.space().dims if model.can_reorder(d.name))
        producer = next(b.producer(dim.name) for b in model.blocks if b.producer(dim.name) is not None)
        norms = filter_norms(producer).clone()
        model.keep_largest_filters(dim.name, model.space())
        assert torch.allclose(model(x), before, atol=1e-5), name
        assert torch.equal(filter_norms(producer), norms.sort(descending=True).values), name


def test_v1_pruning_keeps_the_largest_norm_filters():
    """Shrinking conv0 from 16 to 8 keeps exactly the 8 filters of largest L2 norm."""
    model = build_supernet(ModelSpec("plain_cnn", (1, 28, 28), 10)).eval()
    conv = model.blocks[0].op.conv
    with torch.no_grad():
        conv.weight.mul_(torch.linspace(0.1, 2.0, 16).roll(5).view(16, 1, 1, 1))
    norms = conv.weight.flatten(1).norm(dim=1)
    expected = conv.weight[norms.topk(8).indices.sort().values]
    model.keep_largest_filters("conv0", model.space())
    slim = extract(model, model.space().with_widths({"conv0": 8}))
    kept = slim[0][0].weight
    assert {tuple(w.flatten().tolist()) for w in kept} == {tuple(w.flatten().tolist()) for w in expected}


def test_long_term_fine_tune_runs_one_cosine_over_all_its_epochs(monkeypatch):
    """10 samples in batches of 4 take 3 steps an epoch: 2 epochs follow one cosine over 6 steps, the
    learning rate falling at every step. (A new cosine each epoch, chained on the last one's end,
    left every epoch after the first at learning rate 0.)"""
    seen, make_optimizer = [], v1_module.make_optimizer

    def spied_optimizer(*args, **kwargs):
        optimizer = make_optimizer(*args, **kwargs)
        optimizer.register_step_pre_hook(lambda opt, a, k: seen.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(v1_module, "make_optimizer", spied_optimizer)
    network = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3))
    data = Split(torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8), torch.arange(10) % 3)
    tuning = FineTuning(short_term_steps=1, long_term_epochs=2, lr=0.1, batch_size=4, eval_batch_size=4,
                        eval_batches=1, seed=0, device=torch.device("cpu"))
    v1 = NetAdaptV1(network, MacsModel(network), data, data, tuning)
    v1.finish(network.space())
    expected = [0.05 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert seen == pytest.approx(expected)
    assert all(a > b for a, b in zip(seen, seen[1:]))


def test_an_iteration_is_seeded_from_the_index_the_loop_hands_in():
    """`propose(t, ...)` starts iteration t from the network kept at its start: proposing the same
    iteration again (a clipped one, re-proposed) fine-tunes exactly as before; another t, otherwise
    alike, fine-tunes from other seeds."""
    network = build_supernet(ModelSpec("plain_cnn", (1, 8, 8), 3))
    data = Split(torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8), torch.arange(12) % 3)
    tuning = FineTuning(short_term_steps=2, long_term_epochs=0, lr=0.1, batch_size=4, eval_batch_size=4,
                        eval_batches=1, seed=0, device=torch.device("cpu"))
    macs = MacsModel(network)
    v1 = NetAdaptV1(network, macs, data, data, tuning)
    space = network.space()
    schedule = Schedule(base=macs.estimate(space), budget=0.3 * macs.estimate(space), initial_reduction=0.2, decay=1.0)

    def tuned(t: int) -> dict[str, torch.Tensor]:
        proposal = v1.propose(t, space, schedule.base, schedule, v1.candidates, SearchSettings(seed=0))
        assert v1.iteration == proposal.iteration == t and proposal.candidates
        v1.evaluate([c.arch for c in proposal.candidates])
        first = proposal.candidates[0].arch.widths_json()
        return {k: v.clone() for k, v in v1.networks[first].state_dict().items()}

    first, again, later = tuned(0), tuned(0), tuned(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], later[k]) for k in first)
    assert v1.kept_state(space)["iteration"] == 2


def test_v1_proposes_no_fixed_dimension():
    """`model.fixed`: one proposal per dimension the search may move, none for a fixed one."""
    network = build_supernet(ModelSpec("mobilenet_v2", (1, 28, 28), 10, kwargs={"kernel": 5}, fixed=("*.kernel",)))
    data = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4) % 2)
    tuning = FineTuning(short_term_steps=0, long_term_epochs=0, lr=0.1, batch_size=4, eval_batch_size=4,
                        eval_batches=1, seed=0, device=torch.device("cpu"))
    macs = MacsModel(network)
    space = network.space()
    proposals = NetAdaptV1(network, macs, data, data, tuning).candidates(
        space, macs.estimate(space), 0.97 * macs.estimate(space), None)
    moved = [name for c in proposals for name, w in c.arch.widths.items() if w != space.widths[name]]
    assert moved and len(moved) == len(proposals) and not any(name.endswith(".kernel") for name in moved)
    assert len(proposals) == sum(not d.fixed for d in space.dims)
