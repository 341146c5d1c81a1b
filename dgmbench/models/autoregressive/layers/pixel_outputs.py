"""Per-pixel output distributions of autoregressive image models and their raster-order
sampler.

An output map of shape (N, C*K, H, W) holds, for every pixel and image channel c, K numbers
in channels c*K .. c*K+K-1 (the layout that ``channel_groups`` gives the last masked layer):

* binary data (L = 2): K = 1 logit of a Bernoulli,
* discrete data with L levels: K = L logits of a softmax (the 256-way softmax of PixelCNN
  for 8-bit data, van den Oord et al. 2016a Sec. 5.3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood
from dgmbench.models.autoregressive.layers.masked_conv import MaskedConv2d


class PixelLikelihood(ExactLikelihood):
    """Exact log p(x) of a model whose ``logits(x)`` is the per-pixel output map above; list it
    before GenerativeModel among the bases so that its ``loss`` is the one used."""

    num_levels: int

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_log_prob(self.logits(x), x, self.num_levels)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()


def output_head(features: int, hidden: int, channels: int, num_levels: int) -> nn.Sequential:
    """ReLU, 1x1 type-B masked conv, ReLU, 1x1 type-B masked conv to the C*K output map:
    the per-pixel output stack shared by PixelCNN, Gated PixelCNN and PixelRNN."""
    return nn.Sequential(
        nn.ReLU(),
        MaskedConv2d(features, hidden, 1, "B", channels),
        nn.ReLU(),
        MaskedConv2d(hidden, channels * logits_per_channel(num_levels), 1, "B", channels),
    )


def scale_levels(x: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Levels 0..L-1 -> [-1, 1], the input scaling every model here uses."""
    return x * (2.0 / (num_levels - 1)) - 1.0


def logits_per_channel(num_levels: int) -> int:
    return 1 if num_levels == 2 else num_levels


def pixel_log_prob(logits: torch.Tensor, x: torch.Tensor, num_levels: int) -> torch.Tensor:
    """log p(x) = sum over pixels and channels of log p(x_i | x_<i), in nats, shape (N,)."""
    n, c = x.shape[:2]
    if num_levels == 2:
        per_value = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        log_probs = F.log_softmax(logits.view(n, c, num_levels, *x.shape[2:]), dim=2)
        per_value = log_probs.gather(2, x.long().unsqueeze(2)).squeeze(2)
    return per_value.flatten(1).sum(1)


def sample_values(logits: torch.Tensor, num_levels: int) -> torch.Tensor:
    """One value per row of `logits` (n, K): a Bernoulli draw (K = 1) or a softmax draw."""
    if num_levels == 2:
        return torch.bernoulli(torch.sigmoid(logits[:, 0]))
    return torch.multinomial(F.softmax(logits, dim=1), 1).squeeze(1).to(logits.dtype)


@torch.no_grad()
def sample_raster(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    shape: tuple[int, int, int],
    num_levels: int,
    reach: tuple[int, int, int],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sample pixel by pixel, channel by channel, running `logits_fn` only on the crop that
    the current pixel's output can see: rows r-up..r and columns c-left..c+right (clipped to
    the image). Rows below r never influence pixel r, and pixels outside the receptive field
    cannot either, so the logits at (r, c) are exactly those of the full network while each
    step costs (up+1)(left+right+1) pixels instead of H*W."""
    channels, height, width = shape
    k = logits_per_channel(num_levels)
    up, left, right = reach
    x = torch.zeros(n, channels, height, width, device=device, dtype=dtype)
    for row in range(height):
        top = max(0, row - up)
        for col in range(width):
            lo, hi = max(0, col - left), min(width, col + right + 1)
            for channel in range(channels):
                logits = logits_fn(x[:, :, top : row + 1, lo:hi])[:, :, row - top, col - lo]
                x[:, channel, row, col] = sample_values(
                    logits[:, channel * k : (channel + 1) * k], num_levels
                )
    return x
