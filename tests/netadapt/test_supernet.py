from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netadapt.arch import ModelSpec
from netadapt.config import SupernetConfig
from netadapt.data import Split
from netadapt.evaluation import evaluate_subnet
from netadapt.models import build_supernet
from netadapt import supernet as supernet_module
from netadapt.checkpoints import load_supernet, save_supernet
from netadapt.supernet import train_supernet
from netadapt.training import accuracy, cosine_schedule


def quadrant_task(n: int, seed: int) -> Split:
    """Four classes: which quadrant of a 16x16 image is bright. Learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randint(0, 60, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 2)
        images[i, 0, r * 8:(r + 1) * 8, col * 8:(col + 1) * 8] += 180
    return Split(images, labels)


CFG = SupernetConfig(epochs=8, batch_size=32, group_size=8, lr=0.05)
SPEC = ModelSpec("plain_cnn", (1, 16, 16), 4)


def train(seed: int = 0, cfg: SupernetConfig = CFG):
    torch.manual_seed(seed)
    model = build_supernet(SPEC)
    history = train_supernet(model, quadrant_task(256, 1), quadrant_task(64, 2), cfg, seed, torch.device("cpu"))
    return model, history


def test_training_lowers_the_loss_and_trains_small_and_large_sub_networks():
    model, history = train()
    assert history[-1].loss < 0.6 * history[0].loss
    assert history[-1].holdout_acc_largest > 0.9
    assert history[-1].holdout_acc_smallest > 0.5, "the smallest sub-network learned too (chance is 0.25)"


def test_training_is_deterministic_on_cpu():
    a, ha = train()
    b, hb = train()
    assert [m.loss for m in ha] == [m.loss for m in hb]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path: Path):
    model, _ = train(cfg=SupernetConfig(epochs=1, batch_size=32, group_size=8))
    save_supernet(tmp_path / "s.pt", model, "abc123")
    blob = torch.load(tmp_path / "s.pt", weights_only=True)
    assert set(blob) == {"state_dict", "arch", "config_digest"}
    loaded, digest = load_supernet(tmp_path / "s.pt")
    assert digest == "abc123" and loaded.space() == model.space()
    x = torch.randn(4, 1, 16, 16)
    model.eval()
    assert torch.equal(loaded(x), model(x))


def test_sub_network_evaluation_leaves_the_super_network_untouched():
    model, _ = train(cfg=SupernetConfig(epochs=1, batch_size=32, group_size=8))
    holdout = quadrant_task(64, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arch = model.space().smallest()
    evaluate_subnet(model, arch, holdout, bn_recalibration_batches=2, batch_size=16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    full = evaluate_subnet(model, model.space(), holdout, bn_recalibration_batches=0)
    assert full == accuracy(model, holdout, 64, torch.device("cpu"))[1]


def test_the_cosine_schedule_ends_with_the_last_batch_trained(monkeypatch):
    """Grouped training drops a partial batch; the schedule must count only the batches it runs."""
    made = []

    def spy(optimizer, total_steps):
        made.append(cosine_schedule(optimizer, total_steps))
        return made[-1]

    monkeypatch.setattr(supernet_module, "cosine_schedule", spy)
    torch.manual_seed(0)
    cfg = SupernetConfig(epochs=2, batch_size=32, group_size=8)
    train_supernet(build_supernet(SPEC), quadrant_task(100, 1), quadrant_task(16, 2), cfg, 0, torch.device("cpu"))
    (scheduler,) = made
    assert scheduler.last_epoch == scheduler.T_max == 2 * 3


def one_step(largest_pass: bool, distill: float, labels_seed: int = 0, subnet_weight: float = 1.0):
    """One SGD step (lr 1, no momentum) of a super-network on 32 quadrant images, groups of 8, every
    group sampled at the smallest widths but group 0 (the full network)."""
    from netadapt.ordered_dropout import set_bn_groups
    from netadapt.supernet import OrderedDropoutLoss
    from netadapt.training import Loop, train_epoch

    torch.manual_seed(0)
    model = build_supernet(SPEC)
    space = model.space()
    data = quadrant_task(32, labels_seed)
    small = {d.name: d.min_width for d in space.dims}

    def widths(batch):
        return {d.name: torch.tensor([d.max_width if i % 4 == 0 else small[d.name] for i in range(batch)])
                for d in space.dims}

    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    train_epoch(model, data, optimizer, None, Loop(32, group_size=8, max_steps=1), torch.Generator().manual_seed(0),
                torch.device("cpu"), OrderedDropoutLoss(widths, 8, largest_pass=largest_pass, distill=distill,
                                                        subnet_weight=subnet_weight))
    return model, before, data, widths, set_bn_groups


def test_the_largest_pass_trains_the_full_network_on_the_whole_batch():
    """Without it, channels only the full network uses learn from group 0 alone; with it, the step
    adds the gradient of plain training on the whole batch (and, with distill, sub-networks learn
    from its probabilities, and the sampled pass weighs `subnet_weight`): the update is exactly that sum."""
    import torch.nn.functional as F

    for distill, weight in ((0.0, 1.0), (0.5, 1.0), (0.5, 0.25)):
        model, before, data, widths, set_bn_groups = one_step(True, distill, subnet_weight=weight)
        reference = build_supernet(SPEC)
        reference.load_state_dict(before)
        reference.train()
        inputs = data.images.float().div(127.5).sub(1.0)
        set_bn_groups(reference, 1)
        full = reference(inputs)
        F.cross_entropy(full, data.labels).backward()
        teacher = full.detach().softmax(-1)
        set_bn_groups(reference, 4)
        order = torch.randperm(32, generator=torch.Generator().manual_seed(0))  # the batch train_epoch drew
        logits = reference(inputs[order], widths(32))
        loss = F.cross_entropy(logits, data.labels[order])
        if distill:
            loss = (1 - distill) * loss - distill * (teacher[order] * logits.log_softmax(-1)).sum(-1).mean()
        (weight * loss).backward()
        for name, p in reference.named_parameters():
            expected = before[name] - p.grad
            assert torch.allclose(model.state_dict()[name], expected, atol=1e-5), (distill, weight, name)
    plain_model, plain_before, *_ = one_step(False, 0.0)
    moved = {k for k in plain_before if not torch.equal(plain_before[k], plain_model.state_dict()[k])}
    assert moved, "a step without the largest pass still trains"


def test_distillation_needs_the_largest_pass():
    from netadapt.config import parse_config
    from netadapt.errors import ConfigError
    import pytest

    with pytest.raises(ConfigError, match="supernet.distill: the teacher is the full network's pass"):
        parse_config({"supernet": {"distill": 0.5, "largest": "group"}})
    assert parse_config({"supernet": {"distill": 0.5, "largest": "batch"}}).supernet.distill == 0.5
    with pytest.raises(ConfigError, match="supernet.subnet_weight: weighs the sampled"):
        parse_config({"supernet": {"subnet_weight": 0.5, "largest": "group", "distill": 0.0}})
    with pytest.raises(ConfigError, match="supernet.subnet_weight"):
        parse_config({"supernet": {"subnet_weight": 0.0, "largest": "batch"}})
    assert parse_config({"supernet": {"subnet_weight": 0.5, "largest": "batch"}}).supernet.subnet_weight == 0.5


@pytest.mark.parametrize("sampling, largest, distill, weight, amp", [
    ("sandwich", "batch", 0.5, 0.25, False), ("sandwich", "batch", 0.5, 1.0, True),
    ("random", "group", 0.0, 1.0, False), ("none", "batch", 0.0, 1.0, True)])
def test_a_step_is_exactly_the_ordered_dropout_recipe(sampling, largest, distill, weight, amp):
    """Bit for bit (same process, same ops): one generator shuffles the batch, then draws the flips
    and crops, then the widths; the full network's pass (shared BN statistics, its backward inside
    autocast), then the sampled pass (per-group statistics, in-place distillation, backward outside
    autocast); then one SGD step. A change of draw order, reduction or precision fails here."""
    import torch.nn.functional as F

    from netadapt.augment import crop_flip
    from netadapt.ordered_dropout import sample_widths, set_bn_groups
    from netadapt.supernet import supernet_loss
    from netadapt.training import Loop, to_input, train_epoch

    cfg = SupernetConfig(batch_size=32, group_size=8, sampling=sampling, largest=largest, distill=distill,
                         subnet_weight=weight, label_smoothing=0.1, amp=amp, augment=True,
                         largest_share=0.0, largest_weight=0.0)  # the full network on group 0 (test_onepass: more)
    data = quadrant_task(48, 3)
    torch.manual_seed(0)
    model = build_supernet(SPEC)
    reference = build_supernet(SPEC)
    reference.load_state_dict(model.state_dict())
    space = model.space()
    loop = Loop(32, 8 if sampling != "none" else 1, max_steps=1, amp=amp, augment=True)
    generator = torch.Generator().manual_seed(11)
    loss = train_epoch(model, data, torch.optim.SGD(model.parameters(), lr=0.5), None, loop, generator,
                       torch.device("cpu"), supernet_loss(cfg, space, generator))

    g = torch.Generator().manual_seed(11)
    order = torch.randperm(48, generator=g)[:32]
    inputs, labels = crop_flip(to_input(data.images[order]), g), data.labels[order]
    widths = sample_widths(space, 32, g, sampling, 8)
    reference.train()
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp)  # noqa: E731
    teacher = None
    if widths is not None and largest == "batch":
        with autocast():
            full = reference(inputs)
            F.cross_entropy(full, labels, label_smoothing=0.1).backward()
        teacher = full.detach().float().softmax(-1)
    set_bn_groups(reference, 4 if widths is not None else 1)
    with autocast():
        logits = reference(inputs, widths) if widths is not None else reference(inputs)
        expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
        if teacher is not None and distill:
            expected = (1 - distill) * expected + distill * -(teacher * logits.float().log_softmax(-1)).sum(-1).mean()
    (expected * weight if teacher is not None else expected).backward()
    set_bn_groups(reference, 1)
    torch.optim.SGD(reference.parameters(), lr=0.5).step()
    assert loss == expected.item()
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())
    assert torch.equal(g.get_state(), generator.get_state()), "the same draws, no more"
