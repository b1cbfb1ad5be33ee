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


# random-resized crops (data prepared at data.image_size: train stored with a margin)

def test_crop_boxes_follow_torchvisions_ranges_and_are_seeded():
    from netadapt.augment import crop_boxes

    boxes = crop_boxes(2000, 37, 37, torch.Generator().manual_seed(0))
    assert torch.equal(boxes, crop_boxes(2000, 37, 37, torch.Generator().manual_seed(0)))
    top, left, h, w = boxes.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 37) & (left + w <= 37) & (h > 0) & (w > 0)).all())
    area = (h * w).double() / 37 ** 2
    assert float(area.min()) > 0.05 and float(area.max()) <= 1.0 and float(area.mean()) > 0.4
    ratio = w.double() / h.double()
    assert float(ratio.min()) > 0.6 and float(ratio.max()) < 1.6, "3/4..4/3, up to the rounding of small boxes"
    assert len({tuple(b) for b in boxes.tolist()}) > 1000, "varied"


def test_crop_boxes_fall_back_to_the_centred_whole_image_cut_to_the_ratio():
    from netadapt.augment import crop_boxes

    # 4 x 100: no area of 8% or more fits a ratio within 3/4..4/3, so every draw falls back
    boxes = crop_boxes(5, 4, 100, torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[0, 47, 4, 5]] * 5  # h 4, w round(4 * 4/3) = 5, left (100 - 5) // 2


def test_resized_crops_are_bilinear_resizes_of_the_boxes_and_flip():
    import torch.nn.functional as F

    from netadapt.augment import resized_crops

    x = torch.randn(3, 2, 18, 18, generator=torch.Generator().manual_seed(2))
    boxes = torch.tensor([[0, 0, 18, 18], [2, 5, 7, 9], [10, 1, 8, 6]])
    out = resized_crops(x, boxes, 16)
    for i, (t, l, h, w) in enumerate(boxes.tolist()):
        expected = F.interpolate(x[i:i + 1, :, t:t + h, l:l + w], size=(16, 16), mode="bilinear", align_corners=False)
        assert torch.allclose(out[i:i + 1], expected, atol=1e-5), i
    flipped = resized_crops(x, boxes, 16, torch.tensor([True, False, True]))
    assert torch.allclose(flipped[0], out[0].flip(-1), atol=1e-6) and torch.equal(flipped[1], out[1])
    assert torch.allclose(resized_crops(x, boxes[:1].expand(3, 4), 18), x, atol=1e-5), "the whole image at its size"


def test_random_resized_crops_are_seeded_vary_per_epoch_and_split_across_ranks():
    from netadapt.augment import augment, random_resized_crop_flip

    x = torch.randn(16, 3, 18, 18, generator=torch.Generator().manual_seed(1))
    epoch0 = random_resized_crop_flip(x, 16, torch.Generator().manual_seed(0))
    assert epoch0.shape == (16, 3, 16, 16)
    assert torch.equal(epoch0, random_resized_crop_flip(x, 16, torch.Generator().manual_seed(0)))
    assert not torch.equal(epoch0, random_resized_crop_flip(x, 16, torch.Generator().manual_seed(1)))
    assert torch.equal(augment(x, 16, torch.Generator().manual_seed(0)), epoch0)
    assert torch.equal(augment(x, 0, torch.Generator().manual_seed(0)), crop_flip(x, torch.Generator().manual_seed(0)))
    for rank in range(2):
        part = local_positions(16, 4, World(rank, 2))
        mine = random_resized_crop_flip(x[part], 16, torch.Generator().manual_seed(0), batch=16, part=part)
        assert torch.equal(mine, epoch0[part])


def test_training_on_a_margin_split_crops_to_the_input_size_anew_each_epoch():
    from torch import nn

    from netadapt.data import Split
    from netadapt.data.view import InputView
    from netadapt.training import Loop, cross_entropy, train_epoch

    data = Split(torch.randint(0, 255, (16, 1, 9, 9), generator=torch.Generator().manual_seed(0), dtype=torch.uint8),
                 torch.arange(16) % 2, InputView(size=8))

    def seen(augment: bool, epoch: int) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        got = []
        model.register_forward_pre_hook(lambda m, args: got.append(args[0].clone()))
        train_epoch(model, data, torch.optim.SGD(model.parameters(), lr=0.1), None, Loop(16, augment=augment),
                    torch.Generator().manual_seed(epoch), torch.device("cpu"), cross_entropy())
        return got[0]

    assert seen(False, 0).shape == seen(True, 0).shape == (16, 1, 8, 8), "the stored 9x9 reach the network at 8x8"
    assert torch.equal(seen(True, 0), seen(True, 0)) and not torch.equal(seen(True, 0), seen(True, 1))
