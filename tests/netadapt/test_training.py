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
