"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
Sec. 3.5 and Table 2).

    p(x) = prod_i p(x_i | x_<i)                                              (Eq. 1)
    p(x_i | x_<i) = p(x_i,R | x_<i) p(x_i,G | x_<i, x_i,R) p(x_i,B | x_<i, x_i,R, x_i,G)   (Eq. 2)

in raster order. One stack of masked convolutions computes every conditional at once: a
7x7 mask-A convolution (a pixel cannot see itself), residual blocks (Fig. 5: 1x1 -> 3x3
mask B -> 1x1, h and 2h feature maps), two 1x1 mask-B layers with ReLU, and per channel a
Bernoulli (binary data) or an L-way softmax (discrete data, 256-way for 8-bit; Sec. 5.3).
The channel masks (``layers.masked_conv``) give the R -> G -> B dependency of Eq. 2.

The stack of masked 3x3 convolutions has a blind spot: pixels up and to the right of
(r, c) beyond the "staircase" of the masks (e.g. (r-1, c+2) after three layers) never reach
it, even though they come earlier in the ordering; Gated PixelCNN removes it.

Sampling is sequential (D = C*H*W network evaluations). Each step runs the network only on
the crop of rows r-up..r and columns c-left..c+right that the current pixel's output can see
(``sample_raster``), instead of on the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dgmbench.models.base import GenerativeModel, register_model
from dgmbench.models.autoregressive.layers.masked_conv import MaskedConv2d, receptive_reach
from dgmbench.models.autoregressive.layers.pixel_outputs import (
    PixelLikelihood,
    output_head,
    sample_raster,
    scale_levels,
)


@dataclass
class PixelCNNConfig:
    hidden: int = 128  # h of Fig. 5; the residual stream has 2h feature maps
    num_blocks: int = 15  # residual blocks after the first layer
    first_kernel: int = 7  # the mask-A layer
    kernel: int = 3  # the mask-B layer inside each block
    output_hidden: int = 1024  # the two 1x1 output layers
    residual: bool = True  # False: plain stack ReLU -> kxk mask-B conv (no 1x1s, no skip)


class ResidualBlock(nn.Module):
    """Fig. 5 of van den Oord et al. (2016a): 2h -> h (1x1) -> h (kxk, mask B) -> 2h (1x1)."""

    def __init__(self, hidden: int, kernel: int, image_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(2 * hidden, hidden, 1, "B", image_channels),
            nn.ReLU(),
            MaskedConv2d(hidden, hidden, kernel, "B", image_channels),
            nn.ReLU(),
            MaskedConv2d(hidden, 2 * hidden, 1, "B", image_channels),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


@register_model("pixelcnn")
class PixelCNN(PixelLikelihood, GenerativeModel):
    Config = PixelCNNConfig
    family = "autoregressive"
    value_types = ("binary", "discrete")
    citation = (
        "van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. (2016). Pixel Recurrent Neural Networks. ICML."
    )

    def __init__(self, config: PixelCNNConfig, info):
        super().__init__(config, info)
        if not info.is_image:
            raise ValueError(f"PixelCNN needs (C, H, W) images; {info.board} has shape {info.shape}")
        channels = info.shape[0]
        features = 2 * config.hidden
        self.num_levels = info.num_levels
        self.input_conv = MaskedConv2d(channels, features, config.first_kernel, "A", channels)
        if config.residual:
            blocks = [ResidualBlock(config.hidden, config.kernel, channels) for _ in range(config.num_blocks)]
        else:
            blocks = [
                nn.Sequential(nn.ReLU(), MaskedConv2d(features, features, config.kernel, "B", channels))
                for _ in range(config.num_blocks)
            ]
        self.blocks = nn.Sequential(*blocks)
        self.output = output_head(features, config.output_hidden, channels, self.num_levels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C*K, H, W): the parameters of p(x_i,c | x_<i, x_i,<c) for every pixel i and channel c."""
        return self.output(self.blocks(self.input_conv(scale_levels(x, self.num_levels))))

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return sample_raster(
            self.logits,
            n,
            self.info.shape,
            self.num_levels,
            receptive_reach(self),
            self.device,
            self.output[-1].weight.dtype,
        )

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 16, "num_blocks": 2, "first_kernel": 5, "output_hidden": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 8, "lr": 3e-3}
