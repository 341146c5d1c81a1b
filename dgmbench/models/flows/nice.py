"""NICE: Non-linear Independent Components Estimation (Dinh, Krueger & Bengio, ICLR 2015
workshop).

Data -> noise through additive coupling layers (eq. 5-6) with alternating partitions,
then a diagonal scaling layer (Sec. 3.3), under a factorised standard logistic prior
(Sec. 3.4, eq. 2):

    y = x + (1 - b) * m(b * x)           (b alternates between odd and even dimensions)
    h = exp(s) * y,                      log|det| = sum_d s_d (couplings are volume-preserving)
    log p(x) = sum_d log p_logistic(h_d) + sum_d s_d,
    log p_logistic(h) = -log(1 + e^h) - log(1 + e^-h).

Reference configuration (defaults): the paper's MNIST model, 4 coupling layers, each
coupling function a ReLU MLP with 5 hidden layers of 1000 units (Sec. 5.1). The data are
dequantised and scaled to [0,1] (uniform noise of width 1/256) with no logit: the
published 1980.50 nats is a log-likelihood of exactly this [0,1]-space density
(-1980.50 / (784 ln 2) + 8 = 4.36 bits/dim in pixel space).
"""
from __future__ import annotations

from dataclasses import dataclass

from dgmbench.models.base import register_model
from dgmbench.models.flows import nets
from dgmbench.models.flows.flow import FlowModel, StandardLogistic, StandardNormal
from dgmbench.models.flows.transforms import Chain, Coupling, DiagonalScaling, alternating_mask

PRIORS = ("logistic", "gaussian")


@register_model("nice")
class NICE(FlowModel):
    @dataclass
    class Config:
        num_couplings: int = 4
        hidden: int = 1000
        hidden_layers: int = 5
        prior: str = "logistic"  # "logistic" (paper, MNIST) or "gaussian" (paper, TFD/SVHN)

    citation = (
        "Dinh, L., Krueger, D. & Bengio, Y. (2015). NICE: Non-linear Independent Components "
        "Estimation. ICLR workshop."
    )
    train_defaults = {"lr": 1e-3}

    def transform(self):
        c = self.config
        if c.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {c.prior!r}")
        dim = self.info.dim
        if dim < 2:
            raise ValueError("NICE needs at least 2 dimensions")
        couplings = [
            Coupling(alternating_mask(dim, i % 2), nets.mlp(dim, c.hidden, c.hidden_layers, dim), affine=False)
            for i in range(c.num_couplings)
        ]
        return Chain([*couplings, DiagonalScaling((dim,))])

    def base_distribution(self):
        return StandardLogistic(self.info.dim) if self.config.prior == "logistic" else StandardNormal(self.info.dim)

    @classmethod
    def quick_config(cls, info):
        return {"num_couplings": 4, "hidden": 64, "hidden_layers": 2}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15, "lr": 1e-2}
