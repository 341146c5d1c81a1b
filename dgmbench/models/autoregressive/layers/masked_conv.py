"""Masked convolutions for autoregressive image models (van den Oord et al. 2016a, Sec. 3.4).

Ordering: pixels in raster order (row by row, left to right) and, within a pixel, the image
channels in order R < G < B. Feature channels are split into C groups, one per image channel
(``channel_groups``). A feature of group g at pixel i may see every channel of every pixel
before i and, at pixel i itself,

* mask A (first layer, which must not see the value it predicts): channels of groups < g,
* mask B (every later layer):                                       channels of groups <= g.

``context`` picks the spatial part of the mask:

* ``full``        rows above (all columns of the kernel) and the pixels to the left: PixelCNN.
* ``vertical``    rows above only (mask A) or rows above plus the whole current row (mask B).
                  Mask B is valid only on vertical-stack features, which themselves see only
                  rows above: the vertical stack of Gated PixelCNN (van den Oord et al. 2016b).
* ``horizontal``  a 1 x k kernel over the pixels to the left: the horizontal stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_groups(num_channels: int, image_channels: int) -> torch.Tensor:
    """Group (image channel) of each of `num_channels` feature channels: contiguous blocks."""
    return torch.arange(num_channels) * image_channels // num_channels


class MaskedConv2d(nn.Conv2d):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str,
        image_channels: int = 1,
        context: str = "full",
        in_groups: torch.Tensor | None = None,
        out_groups: torch.Tensor | None = None,
    ):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"masked convolutions need odd kernel sizes, got {(kh, kw)}")
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if context == "horizontal" and kh != 1:
            raise ValueError("a horizontal-stack convolution has kernel height 1")
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2))
        self.mask_type, self.context = mask_type, context
        in_groups = channel_groups(in_channels, image_channels) if in_groups is None else in_groups
        out_groups = channel_groups(out_channels, image_channels) if out_groups is None else out_groups
        row, col = kh // 2, kw // 2
        mask = torch.zeros(out_channels, in_channels, kh, kw)
        if context == "full":
            mask[:, :, :row, :] = 1
            mask[:, :, row, :col] = 1
        elif context == "vertical":
            mask[:, :, :row, :] = 1
            if mask_type == "B":
                mask[:, :, row, :] = 1
        elif context == "horizontal":
            mask[:, :, row, :col] = 1
        else:
            raise ValueError(f"unknown context {context!r}; valid: full, vertical, horizontal")
        if context != "vertical":
            later = out_groups[:, None] > in_groups[None, :]
            same = out_groups[:, None] == in_groups[None, :]
            mask[:, :, row, col] = (later | (same & (mask_type == "B"))).float()
        self.register_buffer("mask", mask, persistent=False)

    @property
    def reach(self) -> tuple[int, int, int]:
        """How far (up, left, right) one output pixel looks into its input."""
        kh, kw = self.kernel_size
        right = 0 if self.context == "horizontal" else kw // 2
        return kh // 2, kw // 2, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


def receptive_reach(module: nn.Module) -> tuple[int, int, int]:
    """An upper bound on how far (up, left, right) an output pixel of a stack of masked
    convolutions looks into the image: the sum of every layer's reach, which over-counts
    parallel stacks but never under-counts (a larger crop is always safe)."""
    up = left = right = 0
    for layer in module.modules():
        if isinstance(layer, MaskedConv2d):
            u, l, r = layer.reach
            up, left, right = up + u, left + l, right + r
    return up, left, right
