"""Transforms on (n, C, H, W) images: squeeze, Glow's invertible 1x1 convolution, and the
multi-scale architecture that factors out half the channels at every scale."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.flows.transforms.base import Transform


class Squeeze(Transform):
    """(C, H, W) -> (4C, H/2, W/2): each 2x2 spatial block becomes 4 channels (RealNVP
    Sec. 3.6). A permutation, so log|det| = 0."""

    def forward(self, x):
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"squeeze needs even height and width, got {h}x{w}")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(n)

    def inverse(self, y):
        n, c4, h, w = y.shape
        c = c4 // 4
        x = y.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)
        return x, y.new_zeros(n)


def _random_rotation(channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    return q


class InvertibleConv1x1(Transform):
    """Glow's invertible 1x1 convolution (Kingma & Dhariwal 2018, Sec. 3.2): y = W x at
    every pixel, log|det| = H W log|det W|, W initialised as a random rotation.

    ``lu=True`` parameterises W = P L (U + diag(sign(s) exp(log|s|))) (eq. 10) with P a fixed
    permutation, L unit lower-triangular and U strictly upper-triangular, so that
    log|det W| = sum log|s| costs O(C) instead of O(C^3)."""

    def __init__(self, channels: int, lu: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        self.lu = lu
        weight = _random_rotation(channels, generator)
        if not lu:
            self.weight = nn.Parameter(weight)
            return
        p, lower, upper = torch.linalg.lu(weight)
        s = torch.diagonal(upper)
        self.register_buffer("permutation", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("identity", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight_and_log_det(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.lu:
            return self.weight, torch.linalg.slogdet(self.weight)[1]
        lower = self.lower * self.lower_mask + self.identity
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.permutation @ lower @ upper, self.log_s.sum()

    def forward(self, x):
        weight, log_det = self.weight_and_log_det()
        y = F.conv2d(x, weight[:, :, None, None])
        return y, (log_det * x.shape[2] * x.shape[3]).expand(len(x))

    def inverse(self, y):
        weight, log_det = self.weight_and_log_det()
        x = F.conv2d(y, torch.linalg.inv(weight)[:, :, None, None])
        return x, (-log_det * y.shape[2] * y.shape[3]).expand(len(y))


class MultiScale(Transform):
    """One scale of the multi-scale architecture (RealNVP Sec. 3.6, Glow Fig. 2b):

        h = level(x);  h = [h1, h2] along channels;  output = [flatten(h2), inner(h1)]

    h2 is factored out: it goes straight to the base distribution, while h1 is transformed
    further by ``inner`` (the next scale). With ``inner=None`` the scale is the last one and
    its whole output is flattened. The map x -> flat vector is a bijection whose log|det|
    is level's plus inner's. A learned split prior p(h2 | h1) = N(mu(h1), sigma(h1)^2)
    (Glow) is the last transform of ``level``: a channel coupling with scale "exp" and a
    zero-initialised network, since N(h2; mu, sigma^2) = N((h2 - mu)/sigma; 0, 1) / sigma.

    ``level_shape`` is the (C, H, W) of level's output."""

    def __init__(self, level: Transform, level_shape: tuple[int, int, int], inner: Transform | None = None):
        super().__init__()
        self.level, self.inner = level, inner
        self.level_shape = tuple(level_shape)
        channels = self.level_shape[0]
        self.kept = channels // 2 if inner is not None else channels

    def forward(self, x):
        h, log_det = self.level(x)
        if self.inner is None:
            return h.flatten(1), log_det
        h1, h2 = h[:, : self.kept], h[:, self.kept :]
        z_inner, inner_log_det = self.inner(h1)
        return torch.cat([h2.flatten(1), z_inner], dim=1), log_det + inner_log_det

    def inverse(self, z):
        c, height, width = self.level_shape
        if self.inner is None:
            return self.level.inverse(z.reshape(len(z), c, height, width))
        factored = (c - self.kept) * height * width
        h2 = z[:, :factored].reshape(len(z), c - self.kept, height, width)
        h1, inner_log_det = self.inner.inverse(z[:, factored:])
        x, log_det = self.level.inverse(torch.cat([h1, h2], dim=1))
        return x, log_det + inner_log_det

