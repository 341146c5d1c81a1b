"""NADE written as a per-pixel loop, the design of pytorch-generative's NADE
(github.com/EugenHotaj/pytorch-generative, pytorch_generative/models/autoregressive/nade.py):
carry the hidden pre-activation a through the dimensions, a = a + W[:, d] x_d, take
h = sigmoid(a) and p_d = sigmoid(V_d . h + b_d) at every step, and let autograd
differentiate the whole loop. Written here from that description (not copied) as the peer
our NADE is timed against; same parameters, same initialisation, same density."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LoopNADE(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.W = nn.Parameter(torch.randn(hidden, dim) * 0.01)
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(dim, hidden) * 0.01)
        self.b = nn.Parameter(torch.zeros(dim))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c.expand(len(x), -1)
        logits = []
        for d in range(x.shape[1]):
            h = torch.sigmoid(a)
            logits.append(h @ self.V[d] + self.b[d])
            a = a + x[:, d : d + 1] * self.W[:, d]
        return torch.stack(logits, dim=1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()
