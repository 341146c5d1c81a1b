"""Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016,
"Conditional Image Generation with PixelCNN Decoders", Sec. 2.1-2.3, Fig. 2).

Same factorisation as PixelCNN, p(x) = prod_i p(x_i | x_<i), with R -> G -> B inside a pixel,
but two stacks that together see the whole past without PixelCNN's blind spot:

* the vertical stack v sees every pixel in the rows above (k x k convolutions masked to the
  rows above; the first is mask A, which leaves out the current row),
* the horizontal stack h sees the pixels to the left in the current row (1 x k convolutions)
  and receives the vertical stack through a 1x1 convolution (never the other way round,
  which would leak the future into v).

Each layer uses the gated activation (Eq. 2), with an optional class bias (Eq. 4)

    y = tanh(W_f * x + V_f^T y_class) . sigmoid(W_g * x + V_g^T y_class),

and a residual connection on the horizontal stack. The output is a Bernoulli (binary) or an
L-way softmax (discrete data) per channel, read from the horizontal stack.

Class conditioning (``conditional=True``, needs ``info.num_classes``): ``log_prob(x, y)`` and
``loss(x, y)`` give log p(x | y); without labels they give the exact marginal under a
uniform class prior, log (1/K) sum_y p(x | y) (K network passes), so the model stays an
exact-likelihood model that the generic trainer and metrics can use; ``sample(n, y)`` draws
y uniformly when it is not given. Off by default.

Sampling runs the network on the crop of the image that the current pixel can see (see
``layers.pixel_outputs.sample_raster``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model
from dgmbench.models.autoregressive.layers.masked_conv import (
    MaskedConv2d,
    channel_groups,
    receptive_reach,
)
from dgmbench.models.autoregressive.layers.pixel_outputs import (
    output_head,
    pixel_log_prob,
    sample_raster,
    scale_levels,
)


@dataclass
class GatedPixelCNNConfig:
    hidden: int = 128  # feature maps in each stack
    num_layers: int = 15  # gated layers after the first (mask-A) layer
    first_kernel: int = 7
    kernel: int = 3
    output_hidden: int = 1024  # the two 1x1 output layers
    conditional: bool = False  # class-conditional on info.num_classes labels


def gate(z: torch.Tensor) -> torch.Tensor:
    filter_, gate_ = z.chunk(2, dim=1)
    return torch.tanh(filter_) * torch.sigmoid(gate_)


class GatedLayer(nn.Module):
    """One layer of Fig. 2: vertical and horizontal gated convolutions (mask B)."""

    def __init__(self, hidden: int, kernel: int, image_channels: int, num_classes: int | None):
        super().__init__()
        # The two halves (tanh and sigmoid) of a gated convolution multiply channel by channel,
        # so both halves carry the same channel groups.
        doubled = torch.cat([channel_groups(hidden, image_channels)] * 2)
        self.vertical = MaskedConv2d(
            hidden, 2 * hidden, kernel, "B", image_channels, "vertical", out_groups=doubled
        )
        self.horizontal = MaskedConv2d(
            hidden, 2 * hidden, (1, kernel), "B", image_channels, "horizontal", out_groups=doubled
        )
        # Vertical features only see rows above, so any channel may feed any horizontal one.
        self.vertical_to_horizontal = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        self.horizontal_out = MaskedConv2d(hidden, hidden, 1, "B", image_channels)
        self.class_bias = nn.Embedding(num_classes, 4 * hidden) if num_classes else None

    def forward(self, v, h, y=None):
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        if self.class_bias is not None:
            bias_v, bias_h = self.class_bias(y)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + bias_v, h_pre + bias_h
        return gate(v_pre), h + self.horizontal_out(gate(h_pre))


@register_model("gated_pixelcnn")
class GatedPixelCNN(GenerativeModel, ExactLikelihood):
    Config = GatedPixelCNNConfig
    family = "autoregressive"
    value_types = ("binary", "discrete")
    citation = (
        "van den Oord, A., Kalchbrenner, N., Vinyals, O., Espeholt, L., Graves, A. & Kavukcuoglu, K. "
        "(2016). Conditional Image Generation with PixelCNN Decoders. NeurIPS."
    )

    def __init__(self, config: GatedPixelCNNConfig, info):
        super().__init__(config, info)
        if not info.is_image:
            raise ValueError(f"Gated PixelCNN needs (C, H, W) images; {info.board} has shape {info.shape}")
        if config.conditional and not info.num_classes:
            raise ValueError(f"conditional=True needs class labels, but {info.board} has none")
        channels = info.shape[0]
        self.num_levels = info.num_levels
        self.num_classes = info.num_classes if config.conditional else None
        self.uses_labels = self.num_classes is not None  # trained on log p(x | y)
        hidden, first = config.hidden, config.first_kernel
        self.vertical_in = MaskedConv2d(channels, hidden, first, "A", channels, "vertical")
        self.horizontal_in = MaskedConv2d(channels, hidden, (1, first), "A", channels, "horizontal")
        self.layers = nn.ModuleList(
            GatedLayer(hidden, config.kernel, channels, self.num_classes) for _ in range(config.num_layers)
        )
        self.output = output_head(hidden, config.output_hidden, channels, self.num_levels)

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C*K, H, W) parameters of p(x_i,c | x_<i, x_i,<c [, y])."""
        if self.num_classes is not None and y is None:
            raise ValueError("a conditional model's logits need labels y")
        scaled = scale_levels(x, self.num_levels)
        v, h = self.vertical_in(scaled), self.horizontal_in(scaled)
        for layer in self.layers:
            v, h = layer(v, h, y)
        return self.output(h)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes is None or y is not None:
            return pixel_log_prob(self.logits(x, y), x, self.num_levels)
        per_class = torch.stack(
            [
                self.log_prob(x, torch.full((len(x),), label, dtype=torch.long, device=x.device))
                for label in range(self.num_classes)
            ],
            dim=1,
        )
        return torch.logsumexp(per_class, dim=1) - math.log(self.num_classes)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return -self.log_prob(x, y).mean()

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes is not None and y is None:
            y = torch.randint(self.num_classes, (n,), device=self.device)
        return sample_raster(
            lambda crop: self.logits(crop, y),
            n,
            self.info.shape,
            self.num_levels,
            receptive_reach(self),
            self.device,
            self.output[-1].weight.dtype,
        )

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 12, "num_layers": 2, "first_kernel": 5, "output_hidden": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 6, "lr": 3e-3}

    @classmethod
    def quick_variant(cls):
        return "17level"
