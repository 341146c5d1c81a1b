"""A minimal hand-written CD-1 for a binary RBM, the design of Hinton & Salakhutdinov's
rbm.m (www.cs.toronto.edu/~hinton/MatlabForSciencePaper.html) and of most tutorial code:
five matrix products per update (p(h|v_data), p(v|h), p(h|v_model) and the two outer
products), momentum and weight decay applied by hand, nothing else. Written here from that
description as the peer our RBM's training step is timed against (same update rule as
dgmbench's ``rbm`` with k=1, persistent=False: SGD with momentum, L2 on W only)."""
from __future__ import annotations

import torch


class MinimalCD1:
    def __init__(self, visible: int, hidden: int, lr: float = 0.05, momentum: float = 0.5,
                 weight_decay: float = 0.0, init_std: float = 0.01, device="cpu"):
        self.W = torch.randn(visible, hidden, device=device) * init_std
        self.b = torch.zeros(visible, device=device)
        self.c = torch.zeros(hidden, device=device)
        self.velocity = [torch.zeros_like(p) for p in (self.W, self.b, self.c)]
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay

    @torch.no_grad()
    def step(self, v0: torch.Tensor) -> None:
        n = v0.shape[0]
        p0 = torch.sigmoid(v0 @ self.W + self.c)
        h0 = (torch.rand_like(p0) < p0).float()
        pv = torch.sigmoid(h0 @ self.W.T + self.b)
        v1 = (torch.rand_like(pv) < pv).float()
        p1 = torch.sigmoid(v1 @ self.W + self.c)
        gradients = (
            (v0.T @ p0 - v1.T @ p1) / n - self.weight_decay * self.W,
            (v0 - v1).mean(0),
            (p0 - p1).mean(0),
        )
        for parameter, velocity, gradient in zip((self.W, self.b, self.c), self.velocity, gradients):
            velocity.mul_(self.momentum).add_(gradient, alpha=self.lr)
            parameter.add_(velocity)
