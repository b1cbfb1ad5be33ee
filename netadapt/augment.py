"""Training-time augmentation in tensors (no torchvision), redrawn every batch (so every epoch):

- `crop_flip`: random horizontal flip and random crop from a reflect-padded image, the standard
  recipe for small images such as CIFAR-10 (data prepared without `data.image_size`);
- `random_resized_crop_flip`: torchvision's `RandomResizedCrop(size)` (scale (0.08, 1), ratio
  (3/4, 4/3), 10 tries then the centre-crop fallback) and `RandomHorizontalFlip`, for data prepared
  at `data.image_size` (train stored larger, `data.prepared.train_size`).

Draws come from the training generator, for the whole global batch, and each process keeps its
part: data-parallel ranks augment their samples exactly as one process would.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PADDING = 4  # pixels of reflect padding a crop may shift by, each way
SCALE = (0.08, 1.0)  # RandomResizedCrop's area fraction range
RATIO = (3 / 4, 4 / 3)  # and aspect ratio (w / h) range, drawn log-uniformly
TRIES = 10


def augment(inputs: torch.Tensor, size: int, generator: torch.Generator, batch: int | None = None,
            part: torch.Tensor | None = None) -> torch.Tensor:
    """The augmentation of a training batch: random-resized crops to `size` x `size` when the
    split has a margin (`size` > 0: `view.InputView.size`), else `crop_flip`."""
    if size:
        return random_resized_crop_flip(inputs, size, generator, batch, part)
    return crop_flip(inputs, generator, batch, part)


def crop_flip(inputs: torch.Tensor, generator: torch.Generator, batch: int | None = None,
              part: torch.Tensor | None = None, padding: int = PADDING) -> torch.Tensor:
    """`inputs` [b, C, H, W] (float), each flipped left-right with probability 1/2 and cropped back to
    H x W at a uniform offset of up to `padding` pixels. The draws are made for `batch` samples (the
    global batch; default b) and `part` picks this process's (as `distributed.local_positions`)."""
    n = len(inputs) if batch is None else batch
    flip = torch.rand(n, generator=generator) < 0.5
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    if part is not None:
        flip, dy, dx = flip[part], dy[part], dx[part]
    device = inputs.device
    flip, dy, dx = flip.to(device), dy.to(device), dx.to(device)
    b, c, h, w = inputs.shape
    mode = "reflect" if padding < min(h, w) else "replicate"
    padded = F.pad(torch.where(flip[:, None, None, None], inputs.flip(-1), inputs), (padding,) * 4, mode=mode)
    rows = (dy[:, None] + torch.arange(h, device=device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device)[None, :])[:, None, None, :]
    return padded[torch.arange(b, device=device)[:, None, None, None], torch.arange(c, device=device)[None, :, None, None],
                  rows, cols]


def crop_boxes(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """[n, 4] int boxes (top, left, h, w) as torchvision's `RandomResizedCrop.get_params` draws them for
    an image of `height` x `width`: up to 10 tries of an area fraction in SCALE and a log-uniform
    aspect ratio in RATIO, the first that fits; else the whole image clamped to RATIO, centred. The
    same number of draws for every sample (10 tries of each, both offsets), whatever is accepted."""
    area = height * width
    scale = torch.empty(n, TRIES, dtype=torch.float64).uniform_(*SCALE, generator=generator)
    log_ratio = torch.empty(n, TRIES, dtype=torch.float64).uniform_(math.log(RATIO[0]), math.log(RATIO[1]),
                                                                     generator=generator)
    offsets = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    ratio = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(area * scale * ratio)).long()
    h = torch.round(torch.sqrt(area * scale / ratio)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(fits.any(1), fits.long().argmax(1), torch.full((n,), -1))
    rows = torch.arange(n)
    ch, cw = h[rows, first.clamp(min=0)], w[rows, first.clamp(min=0)]
    # the fallback: the whole image, cut to the nearest allowed aspect ratio, centred
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        fh, fw = int(round(width / RATIO[0])), width
    elif in_ratio > RATIO[1]:
        fh, fw = height, int(round(height * RATIO[1]))
    else:
        fh, fw = height, width
    fallback = first < 0
    ch, cw = torch.where(fallback, fh, ch), torch.where(fallback, fw, cw)
    top = torch.where(fallback, (height - fh) // 2, (offsets[:, 0] * (height - ch + 1)).long())
    left = torch.where(fallback, (width - fw) // 2, (offsets[:, 1] * (width - cw + 1)).long())
    return torch.stack([top, left, ch, cw], 1)


def resized_crops(inputs: torch.Tensor, boxes: torch.Tensor, size: int,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Each sample's box (top, left, h, w) of `inputs` [b, C, H, W] resized to `size` x `size`,
    bilinear as `F.interpolate(..., align_corners=False)` on the cropped box (sampling stays inside
    the box), flipped left-right where `flip`. One `grid_sample` for the whole batch; no
    antialiasing: a box is at most the stored image, only 8/7 of `size` (`data.prepared.TRAIN_MARGIN`)."""
    b, _, height, width = inputs.shape
    boxes = boxes.to(inputs.device, torch.float32)
    top, left, h, w = boxes.unbind(1)
    steps = (torch.arange(size, device=inputs.device, dtype=torch.float32) + 0.5) / size  # output pixel centres
    ys = torch.maximum(top[:, None] + steps[None] * h[:, None] - 0.5, top[:, None])
    ys = torch.minimum(ys, (top + h - 1)[:, None])
    xs = torch.maximum(left[:, None] + steps[None] * w[:, None] - 0.5, left[:, None])
    xs = torch.minimum(xs, (left + w - 1)[:, None])
    if flip is not None:
        xs = torch.where(flip.to(inputs.device)[:, None], xs.flip(1), xs)
    gx = (2 * xs + 1) / width - 1  # pixel index -> grid_sample's [-1, 1] (align_corners=False)
    gy = (2 * ys + 1) / height - 1
    grid = torch.stack([gx[:, None, :].expand(b, size, size), gy[:, :, None].expand(b, size, size)], -1)
    return F.grid_sample(inputs, grid.to(inputs.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop_flip(inputs: torch.Tensor, size: int, generator: torch.Generator, batch: int | None = None,
                             part: torch.Tensor | None = None) -> torch.Tensor:
    """`inputs` [b, C, H, W] (float): a random-resized crop of each to `size` x `size` (`crop_boxes`),
    flipped left-right with probability 1/2. Draws for `batch` samples, `part` this process's (as
    `crop_flip`)."""
    n = len(inputs) if batch is None else batch
    boxes = crop_boxes(n, inputs.shape[-2], inputs.shape[-1], generator)
    flip = torch.rand(n, generator=generator) < 0.5
    if part is not None:
        boxes, flip = boxes[part], flip[part]
    return resized_crops(inputs, boxes, size, flip)
