"""Fully visible sigmoid belief network (Frey 1998; the baseline of Larochelle & Murray 2011).

    p(x) = prod_d p(x_d | x_<d),    p(x_d = 1 | x_<d) = sigmoid(b_d + sum_{j<d} W_dj x_j)

in a fixed ordering of the dimensions (raster order, or a seeded random permutation).
W is strictly lower triangular in that ordering, so log p(x) is one masked matrix product;
sampling keeps the running logits b + W x_<d and adds one column per step: O(D^2) in all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model


def make_ordering(dim: int, ordering: str, seed: int) -> torch.Tensor:
    if ordering == "raster":
        return torch.arange(dim)
    if ordering == "random":
        return torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"unknown ordering {ordering!r}; valid orderings: raster, random")


@dataclass
class FVSBNConfig:
    ordering: str = "raster"  # "raster" or "random"
    ordering_seed: int = 0


@register_model("fvsbn")
class FVSBN(GenerativeModel, ExactLikelihood):
    Config = FVSBNConfig
    family = "autoregressive"
    value_types = ("binary",)
    citation = "Frey (1998), Graphical Models for Machine Learning and Digital Communication"

    def __init__(self, config: FVSBNConfig, info):
        super().__init__(config, info)
        d = info.dim
        self.register_buffer("order", make_ordering(d, config.ordering, config.ordering_seed))
        self.weight = nn.Parameter(torch.zeros(d, d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("mask", torch.tril(torch.ones(d, d), diagonal=-1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_{o_i} = 1 | x_{o_<i}) for i = 1..D, in the model's ordering."""
        xo = x.flatten(1)[:, self.order]
        return xo @ (self.weight * self.mask).T + self.bias

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        xo = x.flatten(1)[:, self.order]
        return -F.binary_cross_entropy_with_logits(self.logits(x), xo, reduction="none").sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        d = self.info.dim
        weight = self.weight * self.mask
        logits = self.bias.expand(n, d).clone()
        xo = torch.zeros(n, d, device=self.device)
        for i in range(d):
            xo[:, i] = torch.bernoulli(torch.sigmoid(logits[:, i]))
            logits += xo[:, i : i + 1] * weight[:, i]
        x = torch.empty_like(xo)
        x[:, self.order] = xo
        return x.view(n, *self.info.shape)

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "lr": 1e-2}
