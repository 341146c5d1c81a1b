"""Coupling layers (NICE, RealNVP, Glow) and the masks that choose what conditions what.

With a binary mask b (1 = passed through unchanged and used as the conditioner):

    additive (NICE eq. 5):   y = x + (1 - b) * t(b * x)
    affine (RealNVP eq. 9):  y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))

so the Jacobian is triangular after permuting b's dimensions first, with diagonal 1 on b's
part and exp(s) on the rest: log|det| = sum (1 - b) * s. ``scale`` fixes how the network's
raw output r becomes s:

* ``"exp"``      s = r                                   (the plain RealNVP form; with a
                 zero-initialised network this is also Glow's learned split prior)
* ``"tanh"``     s = w * tanh(r), per-channel learned w    (RealNVP's stabilised scale)
* ``"sigmoid"``  exp(s) = sigmoid(r + 2), and t is added before scaling, y = (x + t) *
                 sigmoid(r + 2) on the changing part      (Glow's affine coupling)

:class:`Coupling` takes any mask (checkerboard, channel, alternating); its network sees the
masked input at full width. :class:`ChannelCoupling` is the same map for an even channel
split, with a network that sees only the conditioning half and outputs only the other
half's parameters (RealNVP's channel couplings, Glow).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from dgmbench.models.flows.transforms.base import Transform, sum_except_batch

SCALES = ("exp", "tanh", "sigmoid")


def alternating_mask(dim: int, parity: int) -> torch.Tensor:
    """Vector mask: 1 on dimensions d with d % 2 == parity (NICE's odd/even partitions)."""
    return (torch.arange(dim) % 2 == parity).float()


def checkerboard_mask(channels: int, height: int, width: int, parity: int) -> torch.Tensor:
    """RealNVP's spatial checkerboard: 1 where (i + j) % 2 == parity, every channel."""
    grid = (torch.arange(height)[:, None] + torch.arange(width)[None, :]) % 2 == parity
    return grid.float().expand(channels, height, width).clone()


def channel_mask(channels: int, height: int, width: int, parity: int) -> torch.Tensor:
    """RealNVP's / Glow's channel-wise mask: 1 on the first half of the channels (parity 0)
    or on the second half (parity 1)."""
    first = (torch.arange(channels) < channels // 2)
    keep = first if parity == 0 else ~first
    return keep.float()[:, None, None].expand(channels, height, width).clone()


class Coupling(Transform):
    """An additive or affine coupling layer; ``net`` maps the masked input (same shape as
    x) to t (additive) or to [r, t] stacked along dimension 1 (affine)."""

    def __init__(self, mask: torch.Tensor, net: nn.Module, affine: bool = True, scale: str = "tanh"):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"coupling scale must be one of {SCALES}, got {scale!r}")
        self.register_buffer("mask", mask)
        self.net, self.affine, self.scale = net, affine, scale
        if affine and scale == "tanh":
            self.tanh_weight = nn.Parameter(torch.ones(mask.shape[0]))

    def _shift_and_log_scale(self, conditioner: torch.Tensor):
        out = self.net(conditioner * self.mask)
        if not self.affine:
            return out, None
        raw, shift = out.chunk(2, dim=1)
        if self.scale == "exp":
            log_scale = raw
        elif self.scale == "tanh":
            weight = self.tanh_weight.view(1, -1, *([1] * (raw.dim() - 2)))
            log_scale = weight * torch.tanh(raw)
        else:
            log_scale = F.logsigmoid(raw + 2.0)
        return shift, log_scale

    def forward(self, x):
        shift, log_scale = self._shift_and_log_scale(x)
        free = 1 - self.mask
        if not self.affine:
            return x + free * shift, x.new_zeros(len(x))
        if self.scale == "sigmoid":
            y = x * self.mask + free * ((x + shift) * log_scale.exp())
        else:
            y = x * self.mask + free * (x * log_scale.exp() + shift)
        return y, sum_except_batch(free * log_scale)

    def inverse(self, y):
        shift, log_scale = self._shift_and_log_scale(y)  # b * y == b * x
        free = 1 - self.mask
        if not self.affine:
            return y - free * shift, y.new_zeros(len(y))
        if self.scale == "sigmoid":
            x = y * self.mask + free * (y * (-log_scale).exp() - shift)
        else:
            x = y * self.mask + free * ((y - shift) * (-log_scale).exp())
        return x, -sum_except_batch(free * log_scale)


class ChannelCoupling(Transform):
    """A coupling on an even split of the channels (RealNVP's channel masks, Glow's coupling
    and split prior) whose network sees only the conditioning half x_a and outputs
    parameters only for the other half x_b, as in the papers' code: the same map as
    ``Coupling`` with a ``channel_mask``, at half the network's input and output width.

        parity 0: x_a = first half, x_b = second half;  parity 1: the other way round.
        affine:   y_b = x_b * exp(s(x_a)) + t(x_a)   (scale "exp"/"tanh"), or
                  y_b = (x_b + t(x_a)) * sigmoid(r(x_a) + 2)   (scale "sigmoid", Glow)
        additive: y_b = x_b + t(x_a)
    ``net`` maps (n, C/2, H, W) to (n, C, H, W) = [r, t] (affine) or (n, C/2, H, W) = t."""

    def __init__(self, channels: int, net: nn.Module, affine: bool = True, scale: str = "sigmoid", parity: int = 0):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"coupling scale must be one of {SCALES}, got {scale!r}")
        if channels % 2:
            raise ValueError(f"a channel coupling needs an even number of channels, got {channels}")
        self.half, self.parity, self.net, self.affine, self.scale = channels // 2, parity, net, affine, scale
        if affine and scale == "tanh":
            self.tanh_weight = nn.Parameter(torch.ones(channels // 2))

    def _split(self, x):
        first, second = x[:, : self.half], x[:, self.half :]
        return (first, second) if self.parity == 0 else (second, first)

    def _merge(self, a, b):
        return torch.cat([a, b] if self.parity == 0 else [b, a], dim=1)

    def _shift_and_log_scale(self, a):
        out = self.net(a)
        if not self.affine:
            return out, None
        raw, shift = out.chunk(2, dim=1)
        if self.scale == "exp":
            return shift, raw
        if self.scale == "tanh":
            return shift, self.tanh_weight.view(1, -1, 1, 1) * torch.tanh(raw)
        return shift, F.logsigmoid(raw + 2.0)

    def forward(self, x):
        a, b = self._split(x)
        shift, log_scale = self._shift_and_log_scale(a)
        if not self.affine:
            return self._merge(a, b + shift), x.new_zeros(len(x))
        if self.scale == "sigmoid":
            y_b = (b + shift) * log_scale.exp()
        else:
            y_b = b * log_scale.exp() + shift
        return self._merge(a, y_b), sum_except_batch(log_scale)

    def inverse(self, y):
        a, y_b = self._split(y)
        shift, log_scale = self._shift_and_log_scale(a)
        if not self.affine:
            return self._merge(a, y_b - shift), y.new_zeros(len(y))
        if self.scale == "sigmoid":
            b = y_b * (-log_scale).exp() - shift
        else:
            b = (y_b - shift) * (-log_scale).exp()
        return self._merge(a, b), -sum_except_batch(log_scale)
