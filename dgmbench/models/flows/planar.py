"""Planar flow density (Rezende & Mohamed, ICML 2015, Sec. 4.1, eq. 10-12).

K planar layers map data -> noise, base N(0, I):

    f(x) = x + u_hat tanh(w^T x + b),   log|det df/dx| = log|1 + u_hat^T w tanh'(w^T x + b)|,
    log p(x) = log N(f_K o ... o f_1(x); 0, I) + sum_k log|det_k|,

with the invertibility constraint w^T u_hat > -1 enforced by the paper's
reparameterisation (Appendix A.1, see transforms/planar.py). Density evaluation is the cheap
closed-form direction; sampling inverts each layer (a monotone scalar equation, solved by
bisection). The paper uses these layers as a VAE posterior in the noise -> z direction;
this model is the 2-D density counterpart (toy boards), with the paper's largest K = 32
as the default (Fig. 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import register_model
from dgmbench.models.flows.flow import FlowModel
from dgmbench.models.flows.transforms import Chain, Planar


@register_model("planar_flow")
class PlanarFlow(FlowModel):
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
        return Chain([Planar(self.info.dim, generator) for _ in range(self.config.num_layers)])

    @classmethod
    def quick_config(cls, info):
        return {"num_layers": 8}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 10, "lr": 1e-2}
