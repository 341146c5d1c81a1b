"""The invertible-transform protocol shared by every flow.

A :class:`Transform` is a bijection y = f(x) between tensors of shape (n, *event_shape):

    forward(x) -> (y, log|det df/dx|(x))        shape (n, *out), (n,)
    inverse(y) -> (x, log|det df^-1/dy|(y))     = (f^-1(y), -log|det df/dx|(f^-1(y)))

The log-determinant is summed over every non-batch dimension, so it is one number per
example. Convention of the whole package (as in nflows and zuko): ``forward`` is the
*normalising* direction, data -> base noise, so that a flow's density is

    log p(x) = log p_base(f(x)) + log|det df/dx|,

and sampling runs ``inverse``. Which of the two is cheap is a property of the transform
(``cheap_direction``): a MAF layer is cheap forward (one masked pass) and sequential in
reverse; :class:`InverseTransform` swaps the directions without copying parameters, which
turns a MAF layer into an IAF layer (cheap sampling) and lets a transform built for density
estimation serve as a VAE posterior (z = T(eps), log q(z) = log q0(eps) - log|det dT/deps|).

Transforms are separate from distributions (see :mod:`dgmbench.models.flows.flow`).
"""
from __future__ import annotations

import torch
from torch import nn


def sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).sum(1)


class Transform(nn.Module):
    """A bijection with its log|det J|; subclasses implement forward and inverse."""

    # "forward", "inverse" or "both": which direction costs one network pass.
    cheap_direction = "both"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class InverseTransform(Transform):
    """f^-1 as a transform: forward and inverse of the wrapped transform swapped."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform
        swap = {"forward": "inverse", "inverse": "forward", "both": "both"}
        self.cheap_direction = swap[transform.cheap_direction]

    def forward(self, x):
        return self.transform.inverse(x)

    def inverse(self, y):
        return self.transform.forward(y)


class Chain(Transform):
    """f = f_K o ... o f_1: forward applies the transforms in order and adds their
    log-determinants (chain rule); inverse runs them backwards."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)
        directions = {t.cheap_direction for t in self.transforms}
        self.cheap_direction = directions.pop() if len(directions) == 1 else "both" if not directions else "mixed"

    def forward(self, x):
        total = x.new_zeros(len(x))
        for transform in self.transforms:
            x, log_det = transform(x)
            total = total + log_det
        return x, total

    def inverse(self, y):
        total = y.new_zeros(len(y))
        for transform in reversed(self.transforms):
            y, log_det = transform.inverse(y)
            total = total + log_det
        return y, total
