"""Conditioner networks for coupling layers: MLPs for vectors (NICE, toy RealNVP) and
convolutional nets for images (RealNVP's residual net, Glow's three-layer net). Every net's
last layer starts at zero, so each coupling starts as the identity map."""
from __future__ import annotations

import torch
from torch import nn

from dgmbench.models.flows.transforms.elementwise import ActNorm


def mlp(dim_in: int, hidden: int, layers: int, dim_out: int) -> nn.Sequential:
    modules, width = [], dim_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    last = nn.Linear(width, dim_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*modules, last)


def zero_conv(channels_in: int, channels_out: int, kernel: int = 3) -> nn.Conv2d:
    conv = nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


def resnet(channels_in: int, hidden: int, blocks: int, channels_out: int) -> nn.Sequential:
    """RealNVP's conditioner (Dinh et al. 2017, Sec. 4.1): residual blocks with batch norm."""
    return nn.Sequential(
        nn.Conv2d(channels_in, hidden, 3, padding=1),
        *[ResidualBlock(hidden) for _ in range(blocks)],
        nn.BatchNorm2d(hidden), nn.ReLU(),
        zero_conv(hidden, channels_out),
    )


class GlowNet(nn.Module):
    """Glow's coupling network (Kingma & Dhariwal 2018, Sec. 3.3): 3x3 conv, ReLU, 1x1 conv,
    ReLU, zero-initialised 3x3 conv, with actnorm after the first two convolutions."""

    def __init__(self, channels_in: int, hidden: int, channels_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, hidden, 3, padding=1, bias=False)
        self.norm1 = ActNorm(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 1, bias=False)
        self.norm2 = ActNorm(hidden)
        self.out = zero_conv(hidden, channels_out)
        self.log_out_scale = nn.Parameter(torch.zeros(channels_out))  # Glow's Conv2dZeros scale

    def forward(self, x):
        h = self.norm1(self.conv1(x))[0].relu()
        h = self.norm2(self.conv2(h))[0].relu()
        return self.out(h) * (3 * self.log_out_scale).exp()[None, :, None, None]

