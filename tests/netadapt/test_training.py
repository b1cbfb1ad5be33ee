"""Batching and scoring: fixed subsets hold every class; inputs have the standard layout."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.data import Split
from netadapt.training import accuracy, batches, epoch_steps, to_input


def class_sorted(per_class: int = 20, classes: int = 3) -> Split:
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = (labels * 100).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    return Split(images, labels)


class Constant(nn.Module):
    """Predicts class 0 for every input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 3).float()


def test_unshuffled_batches_come_in_a_fixed_class_mixed_order():
    split = class_sorted()
    first = [labels for _, labels in batches(split, 6, None, limit=2)]
    assert [sorted(torch.bincount(b, minlength=3).tolist()) for b in first] == [[2, 2, 2], [2, 2, 2]]
    again = [labels for _, labels in batches(split, 6, None, limit=2)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    every = torch.cat([labels for _, labels in batches(split, 7, None)])
    assert sorted(every.tolist()) == sorted(split.labels.tolist()), "a full pass still sees each sample once"


def test_scoring_a_few_batches_of_a_class_sorted_split_is_not_biased():
    """`search.eval_batches` scores a subset; on a class-sorted split it once scored class 0 alone."""
    acc = accuracy(Constant(), class_sorted(), 6, torch.device("cpu"), limit=2)[1]
    assert abs(acc - 1 / 3) < 1e-9


def test_inputs_have_the_standard_layout_whatever_the_image_strides():
    images = torch.as_strided(torch.arange(2 * 64, dtype=torch.uint8), (2, 1, 8, 8), (64, 1, 8, 1))
    x = to_input(images)
    assert x.stride() == (64, 64, 8, 1) and torch.equal(x, to_input(images.contiguous()))


def test_epoch_steps_count_what_batches_yields():
    split = class_sorted(per_class=11)  # 33 samples
    for drop_last in (False, True):
        yielded = sum(1 for _ in batches(split, 8, torch.Generator().manual_seed(0), drop_last=drop_last))
        assert yielded == epoch_steps(33, 8, drop_last) == (4 if drop_last else 5)


def test_mixed_precision_trains_in_half_precision_and_learns():
    """`amp`: the forward runs under autocast (bfloat16 on CPU; float16 + loss scaling on CUDA), the
    weights stay float32, and training still learns the task."""
    from netadapt.training import Loop, cross_entropy, train_epoch
    from tests.netadapt.test_supernet import quadrant_task

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 4))
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data, generator = quadrant_task(256, 1), torch.Generator().manual_seed(0)
    losses = [train_epoch(model, data, optimizer, None, Loop(32, amp=True), generator, torch.device("cpu"),
                          cross_entropy()) for _ in range(6)]
    assert set(seen) == {torch.bfloat16} and all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]
    seen.clear()
    train_epoch(model, data, optimizer, None, Loop(32, max_steps=1), generator, torch.device("cpu"), cross_entropy())
    assert set(seen) == {torch.float32}, "amp off: full precision"
