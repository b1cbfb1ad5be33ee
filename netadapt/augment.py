"""Training-time augmentation in tensors (no torchvision): random horizontal flip and random crop
from a reflect-padded image, the standard recipe for small images such as CIFAR-10.

Draws come from the training generator, for the whole global batch, and each process keeps its
part: data-parallel ranks augment their samples exactly as one process would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING = 4  # pixels of reflect padding a crop may shift by, each way


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
