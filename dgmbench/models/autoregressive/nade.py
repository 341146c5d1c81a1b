"""Neural Autoregressive Distribution Estimator (Larochelle & Murray 2011).

    p(x) = prod_d p(x_{o_d} | x_{o_<d}),
    h_d  = sigmoid(c + W_{:, o_<d} x_{o_<d})                       (eq. 5)
    p(x_{o_d} = 1 | x_{o_<d}) = sigmoid(b_d + V_d . h_d)

The hidden pre-activations share weights across positions, so a_d = a_{d-1} + W_{:, o_{d-1}}
x_{o_{d-1}}: training computes every a_d at once with an exclusive cumulative sum (O(DH)
per example), and sampling carries a_d forward one dimension at a time (also O(DH)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model
from dgmbench.models.autoregressive.fvsbn import make_ordering


@dataclass
class NADEConfig:
    hidden: int = 500
    ordering: str = "raster"  # "raster" or "random"
    ordering_seed: int = 0


@register_model("nade")
class NADE(GenerativeModel, ExactLikelihood):
    Config = NADEConfig
    family = "autoregressive"
    value_types = ("binary",)
    citation = "Larochelle & Murray (2011), The Neural Autoregressive Distribution Estimator, AISTATS"

    def __init__(self, config: NADEConfig, info):
        super().__init__(config, info)
        d, h = info.dim, config.hidden
        self.register_buffer("order", make_ordering(d, config.ordering, config.ordering_seed))
        self.W = nn.Parameter(torch.randn(h, d) * 0.01)  # input -> hidden, column per dim
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.randn(d, h) * 0.01)  # hidden -> output, row per dim
        self.b = nn.Parameter(torch.zeros(d))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the D conditionals, in the model's ordering: (n, D)."""
        xo = x.flatten(1)[:, self.order]
        contributions = xo.unsqueeze(2) * self.W.T  # (n, D, H): W_{:, o_d} x_{o_d}
        pre = self.c + contributions.cumsum(1) - contributions  # exclusive cumsum: uses x_{o_<d}
        return (torch.sigmoid(pre) * self.V).sum(-1) + self.b

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        xo = x.flatten(1)[:, self.order]
        return -F.binary_cross_entropy_with_logits(self.logits(x), xo, reduction="none").sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        d = self.info.dim
        pre = self.c.expand(n, -1).clone()
        xo = torch.zeros(n, d, device=self.device)
        for i in range(d):
            p = torch.sigmoid(torch.sigmoid(pre) @ self.V[i] + self.b[i])
            xo[:, i] = torch.bernoulli(p)
            pre += xo[:, i : i + 1] * self.W[:, i]
        x = torch.empty_like(xo)
        x[:, self.order] = xo
        return x.view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 64}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15, "lr": 3e-3}
