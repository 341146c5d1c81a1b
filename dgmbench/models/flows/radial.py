"""Radial flow density (Rezende & Mohamed, ICML 2015, Sec. 4.1, eq. 14).

K radial layers map data -> noise, base N(0, I):

    f(x) = x + beta h(alpha, r) (x - x0),  r = |x - x0|,  h = 1 / (alpha + r),
    log|det df/dx| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r),

with alpha = softplus(.) > 0 and beta = -alpha + softplus(.) >= -alpha, the invertibility
condition (Appendix A.2). Both directions are exact: the inverse solves a quadratic in r
(transforms/planar.py). Default K = 32, the paper's largest (Fig. 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import register_model
from dgmbench.models.flows.flow import FlowModel
from dgmbench.models.flows.transforms import Chain, Radial


@register_model("radial_flow")
class RadialFlow(FlowModel):
    @dataclass
    class Config:
        num_layers: int = 32
        init_seed: int = 0

    citation = (
        "Rezende, D. J. & Mohamed, S. (2015). Variational Inference with Normalizing Flows. ICML."
    )
    train_defaults = {"lr": 1e-2}

    def transform(self):
        if self.config.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.config.num_layers}")
        generator = torch.Generator().manual_seed(self.config.init_seed)
        return Chain([Radial(self.info.dim, generator) for _ in range(self.config.num_layers)])

    @classmethod
    def quick_config(cls, info):
        return {"num_layers": 8}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 10, "lr": 1e-2}
