"""One-pass ordered dropout (issue 23): the full network on several sample groups
(`supernet.largest_share`, its samples weighed up by `largest_weight`), its own pass on every k-th
batch only (`largest_every`), and an EMA of the weights as the distillation teacher (`teacher:
ema`): each variant's loss wiring."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from netadapt.arch import ModelSpec
from netadapt.config import SupernetConfig, parse_config
from netadapt.errors import ConfigError
from netadapt.models import build_supernet
from netadapt.ordered_dropout import GroupStatsBatchNorm2d, full_group_count, sample_widths, set_bn_groups
from netadapt.supernet import EmaTeacher, ema_teacher, supernet_loss
from netadapt.training import Batch, Loop, train_epoch

SPEC = ModelSpec("plain_cnn", (1, 16, 16), 4)


def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g)


def batch(inputs: torch.Tensor, labels: torch.Tensor, index: int = 0) -> Batch:
    return Batch(inputs, labels, len(labels), None, False, torch.amp.GradScaler("cpu", enabled=False), index)


def test_largest_groups_make_that_many_groups_the_full_network():
    space = build_supernet(SPEC).space()
    widths = sample_widths(space, 128, torch.Generator().manual_seed(0), "sandwich", 16, full_groups=4)
    groups = 128 // 16
    for d in space.dims:
        w = widths[d.name]
        for g in range(groups):
            assert len(set(w[g::groups].tolist())) == 1, "a group shares one draw"
        assert all((w[g::groups] == d.max_width).all() for g in range(4)), "groups 0-3 are the full network"
        assert (w[4::groups] == d.min_width).all(), "the sandwich's smallest follows them"
    full = torch.stack([widths[d.name] == d.max_width for d in space.dims]).all(0)
    assert int(full.sum()) >= 4 * 16 and bool(full[[g for g in range(128) if g % groups < 4]].all())


def test_running_statistics_pool_the_full_groups_while_each_group_keeps_its_own():
    """With several full-network groups, normalization stays per group (equal groups), and the
    running statistics are those of plain batch norm over all the full groups' samples."""
    torch.manual_seed(0)
    groups, full = 8, 3
    x = torch.randn(64, 5, 4, 4) * torch.arange(1, 65).view(64, 1, 1, 1) + torch.arange(64).view(64, 1, 1, 1)
    gbn = GroupStatsBatchNorm2d(5)
    set_bn_groups(gbn, groups, full)
    out = gbn(x)
    for g in range(groups):
        assert torch.allclose(out[g::groups], torch.nn.BatchNorm2d(5)(x[g::groups]), atol=1e-4)
    ref = torch.nn.BatchNorm2d(5)
    ref(x[[i for i in range(64) if i % groups < full]])
    assert torch.allclose(gbn.running_mean, ref.running_mean, atol=1e-4)
    assert torch.allclose(gbn.running_var, ref.running_var, rtol=1e-4)


def reference_step(before: dict, inputs, labels, widths, groups: int, full_groups: int,
                   full_pass: bool, teacher: torch.Tensor | None, distill: float,
                   largest_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Gradients of the recipe, written out: the full network's pass on the whole batch (when
    `full_pass`), then the sampled pass with per-group statistics, distilled from `teacher`, plus
    `largest_weight` x the full groups' mean cross-entropy."""
    reference = build_supernet(SPEC)
    reference.load_state_dict(before)
    reference.train()
    if full_pass:
        full = reference(inputs)
        F.cross_entropy(full, labels).backward()
        teacher = full.detach().softmax(-1) if teacher is None else teacher
    set_bn_groups(reference, groups, full_groups)
    logits = reference(inputs, widths)
    loss = F.cross_entropy(logits, labels)
    if teacher is not None and distill:
        loss = (1 - distill) * loss - distill * (teacher * logits.log_softmax(-1)).sum(-1).mean()
    full = [i for i in range(len(labels)) if i % groups < full_groups]
    (loss + largest_weight * F.cross_entropy(logits[full], labels[full])).backward()
    return {k: p.grad.clone() for k, p in reference.named_parameters()}


@pytest.mark.parametrize("k", [2, 3, 4])
def test_every_kth_batch_has_the_full_pass_and_its_loss_enters_the_gradient(k):
    cfg = SupernetConfig(batch_size=32, group_size=8, largest="batch", largest_every=k, distill=0.5)
    torch.manual_seed(0)
    model = build_supernet(SPEC)
    space = model.space()
    before = {n: v.clone() for n, v in model.state_dict().items()}
    inputs, labels = images(32, 1)
    for index in range(2 * k + 1):
        model.load_state_dict(before)
        model.zero_grad(set_to_none=True)
        g = torch.Generator().manual_seed(index)
        supernet_loss(cfg, space, g)(model, batch(inputs, labels, index))
        widths = sample_widths(space, 32, torch.Generator().manual_seed(index), "sandwich", 8)
        full_pass = index % k == 0
        expected = reference_step(before, inputs, labels, widths, 4, 1, full_pass, None, 0.5)
        for name, p in model.named_parameters():
            assert torch.allclose(p.grad, expected[name], atol=1e-5), (index, name)
    assert [i for i in range(2 * k + 1) if i % k == 0] == [0, k, 2 * k]


def test_an_epoch_runs_the_full_pass_on_batches_0_k_2k():
    """Counted in train_epoch itself: the full network's own pass is the forward without widths."""
    cfg = SupernetConfig(batch_size=16, group_size=4, largest="batch", largest_every=3, distill=0.5)
    torch.manual_seed(0)
    model = build_supernet(SPEC)
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(len(args) == 1 or args[1] is None))
    from netadapt.data import Split

    x, y = images(16 * 7, 2)
    split = Split(((x.clamp(-1, 1) + 1) * 127).to(torch.uint8), y)
    g = torch.Generator().manual_seed(0)
    train_epoch(model, split, torch.optim.SGD(model.parameters(), lr=0.01), None, Loop(16, 4), g,
                torch.device("cpu"), supernet_loss(cfg, model.space(), g))
    full_batches, index, pending = [], 0, False
    for is_full in seen:  # each batch: [the full pass], then the sampled pass
        if is_full:
            pending = True
        else:
            full_batches += [index] if pending else []
            index, pending = index + 1, False
    assert full_batches == [0, 3, 6] and index == 7


@pytest.mark.parametrize("weight", [0.0, 0.75])
def test_largest_groups_train_the_full_network_on_their_share(weight):
    """The full network's groups are in the one pass; with `largest_weight` their samples' mean
    loss enters the gradient once more, times that weight."""
    cfg = SupernetConfig(batch_size=32, group_size=4, largest="group", largest_share=0.375, distill=0.0,
                         largest_weight=weight)  # 3 of 8 groups
    torch.manual_seed(0)
    model = build_supernet(SPEC)
    space = model.space()
    before = {n: v.clone() for n, v in model.state_dict().items()}
    inputs, labels = images(32, 3)
    supernet_loss(cfg, space, torch.Generator().manual_seed(5))(model, batch(inputs, labels))
    widths = sample_widths(space, 32, torch.Generator().manual_seed(5), "sandwich", 4, full_groups=3)
    expected = reference_step(before, inputs, labels, widths, 8, 3, False, None, 0.0, weight)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-5), name


def test_the_ema_teacher_updates_and_is_only_a_target():
    cfg = SupernetConfig(batch_size=32, group_size=8, largest="group", largest_share=0.5, teacher="ema",
                         distill=0.5, ema_decay=0.9)
    torch.manual_seed(0)
    model = build_supernet(SPEC)
    space = model.space()
    ema = ema_teacher(cfg, model)
    assert isinstance(ema, EmaTeacher) and ema_teacher(replace(cfg, teacher="full"), model) is None
    with pytest.raises(ValueError, match="EmaTeacher"):
        supernet_loss(cfg, space, torch.Generator())
    start = {n: p.clone() for n, p in ema.module.named_parameters()}
    with torch.no_grad():  # the student moves away from the average's start
        for p in model.parameters():
            p.add_(0.1)
    before = {n: v.clone() for n, v in model.state_dict().items()}
    inputs, labels = images(32, 4)
    supernet_loss(cfg, space, torch.Generator().manual_seed(2), ema)(model, batch(inputs, labels))

    decay = min(0.9, 1 / 10)  # the first update's warm-up decay
    for name, p in ema.module.named_parameters():
        assert torch.allclose(p, decay * start[name] + (1 - decay) * before[name], atol=1e-6), name
        assert p.grad is None and not p.requires_grad, "the teacher gets no gradient"
    assert ema.updates == 1
    teacher_net = build_supernet(SPEC)
    teacher_net.load_state_dict({**before, **{n: p for n, p in ema.module.named_parameters()}})
    teacher_net.train()
    with torch.no_grad():
        teacher = teacher_net(inputs).softmax(-1)
    widths = sample_widths(space, 32, torch.Generator().manual_seed(2), "sandwich", 8, full_groups=2)
    expected = reference_step(before, inputs, labels, widths, 4, 2, False, teacher, 0.5)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-5), name


def test_one_pass_settings_are_checked_once():
    def sn(**kw):
        return parse_config({"supernet": kw}).supernet

    assert sn(largest="batch", largest_every=3).largest_every == 3
    assert sn(largest="group", largest_share=0.5, teacher="ema", distill=0.5).teacher == "ema"
    for kw, message in ((dict(largest="group", largest_every=2, distill=0), "supernet.largest_every"),
                        (dict(teacher="ema", distill=0), "supernet.teacher"),
                        (dict(largest_share=1.0), "supernet.largest_share"),
                        (dict(largest_weight=-1.0), "supernet.largest_weight"),
                        (dict(largest="group", distill=0.5), "supernet.distill"),
                        (dict(largest_every=0), "supernet.largest_every"),
                        (dict(ema_decay=1.0), "supernet.ema_decay"),
                        (dict(teacher="mean"), "supernet.teacher")):
        with pytest.raises(ConfigError, match=message):
            sn(**kw)
    assert full_group_count(0.5, 8, 2) == 4 and full_group_count(0.25, 8, 2) == 2
    assert full_group_count(0.0, 8, 2) == 1, "group 0 is always the full network"
    assert full_group_count(0.5, 4, 2) == 2 and full_group_count(0.5, 3, 2) == 1 and full_group_count(0.9, 8, 2) == 6, \
        "the sandwich's smallest and one random group stay"


def test_the_full_samples_loss_splits_over_ranks_without_nan():
    """Across 2 data-parallel ranks (rank 0 holds groups 0-1 of 4, rank 1 groups 2-3), the ranks'
    terms average (as DDP averages gradients) to the single process's mean over the full groups."""
    from netadapt.distributed import World, local_positions
    from netadapt.supernet import OrderedDropoutLoss

    loss = OrderedDropoutLoss(lambda b: {}, group_size=4, largest_share=0.5, largest_weight=1.0)
    logits, labels = torch.randn(16, 4), torch.randint(0, 4, (16,))
    single = loss.full_network_loss(logits, batch(torch.zeros(16, 1), labels))
    full = [i for i in range(16) if i % 4 < 2]
    assert torch.allclose(single, F.cross_entropy(logits[full], labels[full]))
    ranks = []
    for rank in range(2):
        part = local_positions(16, 4, World(rank=rank, size=2, local_rank=rank))
        b = Batch(torch.zeros(8, 1), labels[part], 16, part, False, torch.amp.GradScaler("cpu", enabled=False))
        ranks.append(loss.full_network_loss(logits[part], b))
    assert torch.isfinite(ranks[1]) and ranks[1] == 0
    assert torch.allclose((ranks[0] + ranks[1]) / 2, single)
