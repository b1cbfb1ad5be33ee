"""How a prepared split's uint8 images become network input, at batch time: per-channel
normalization (`data.mean` / `data.std`, of pixel / 255, as torchvision's `Normalize` after
`ToTensor`), and, for a training split stored larger than the network's input (a margin for
random-resized crops, `augment.random_resized_crop_flip`), the resize that gives the input size
when a batch is not augmented (BN recalibration, V1's scoring on train).

The default, 0.5 and 0.5 for every channel, maps 0..255 to [-1, 1]: the normalization this
project has always used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


@dataclass(frozen=True)
class InputView:
    """`mean`, `std`: per channel (one value: every channel; empty: the defaults). `size` > 0: the
    network sees `size` x `size` images and the split is stored larger (a training split's margin);
    0: the network sees the images as stored."""

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    size: int = 0

    def _per_channel(self, values: tuple[float, ...], default: float, channels: int) -> torch.Tensor:
        values = values or (default,)
        if len(values) == 1:
            values = values * channels
        if len(values) != channels:
            raise ValueError(f"{len(values)} normalization values for images of {channels} channels")
        return torch.tensor(values, dtype=torch.float64).view(channels, 1, 1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [b, C, H, W] -> float32 (x / 255 - mean) / std, in the standard contiguous layout
        whatever strides the images came with."""
        x = images.to(torch.float32, memory_format=torch.contiguous_format)
        c = x.shape[-3]
        mean = self._per_channel(self.mean, DEFAULT_MEAN, c)
        std = self._per_channel(self.std, DEFAULT_STD, c)
        # x / (255 std) - mean / std: with the defaults exactly x / 127.5 - 1, as ever
        scale, shift = (255.0 * std).to(torch.float32), (mean / std).to(torch.float32)
        return x.div_(scale.to(x.device)).sub_(shift.to(x.device))

    def inputs(self, images: torch.Tensor, stored: bool = False) -> torch.Tensor:
        """Network input from uint8 images: normalized and, unless `stored` (the caller crops them
        itself: training's augmentation), resized to `size` when stored larger (bilinear, antialiased)."""
        x = self.normalize(images)
        if self.size and not stored and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x
