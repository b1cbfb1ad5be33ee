"""Flip-and-crop augmentation: seeded, content-preserving, and the same across data-parallel ranks."""

from __future__ import annotations

import torch

from netadapt.augment import crop_flip
from netadapt.distributed import World, local_positions


def images(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, 10, 12, generator=torch.Generator().manual_seed(1))


def test_the_same_seed_gives_the_same_augmented_batch_and_another_seed_another():
    x = images()
    a = crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, crop_flip(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, crop_flip(x, torch.Generator().manual_seed(1)))
    assert a.shape == x.shape


def test_every_output_is_a_shifted_possibly_flipped_window_of_its_image():
    x = images(16)
    out = crop_flip(x, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (4,) * 4, mode="reflect")
    padded_flipped = torch.nn.functional.pad(x.flip(-1), (4,) * 4, mode="reflect")
    flips = 0
    for i in range(len(x)):
        windows = [(f, dy, dx) for f, src in ((0, padded), (1, padded_flipped)) for dy in range(9) for dx in range(9)
                   if torch.equal(src[i, :, dy:dy + 10, dx:dx + 12], out[i])]
        assert windows, f"sample {i} is not a window of its own image"
        flips += windows[0][0]
    assert 0 < flips < len(x), "some flipped, some not"


def test_ranks_augment_their_part_as_one_process_would():
    x = images(16)
    whole = crop_flip(x, torch.Generator().manual_seed(5))
    for rank in range(2):
        part = local_positions(16, 4, World(rank, 2))
        mine = crop_flip(x[part], torch.Generator().manual_seed(5), batch=16, part=part)
        assert torch.equal(mine, whole[part])


def test_training_with_augment_feeds_augmented_images_deterministically():
    from torch import nn

    from netadapt.data import Split
    from netadapt.training import Loop, cross_entropy, train_epoch

    data = Split(torch.randint(0, 255, (16, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8),
                 torch.arange(16) % 2)

    def seen(augment: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        got = []
        model.register_forward_pre_hook(lambda m, args: got.append(args[0].clone()))
        train_epoch(model, data, torch.optim.SGD(model.parameters(), lr=0.1), None, Loop(16, augment=augment),
                    torch.Generator().manual_seed(7), torch.device("cpu"), cross_entropy())
        return got[0]

    plain, augmented = seen(False), seen(True)
    assert not torch.equal(plain, augmented) and torch.equal(augmented, seen(True))
