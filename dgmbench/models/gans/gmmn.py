"""Generative moment matching network (Li, Swersky & Zemel 2015; Dziugaite, Roy &
Ghahramani 2015): a generator x = G(z) trained, with no discriminator, to minimise the
maximum mean discrepancy between a generated minibatch and a data minibatch, the
non-adversarial implicit baseline.

    L(theta) = sqrt(MMD^2_b(X, G_theta(Z)))      (Li et al. eq. 2-3, square root as Sec. 3)

with a sum of Gaussian kernels over several bandwidths (gans/layers/mmd.py); MMD with a
characteristic kernel is zero only when the two distributions are equal. ``unbiased``
uses the U-statistic MMD^2_u instead (Dziugaite et al.), without the square root (it can
be negative).

Reference configuration (Li et al. 2015, Sec. 5, MNIST): ReLU MLP 64-256-256-1024 with a
sigmoid output (ours: tanh mapped to [0, 1]), Gaussian kernels with bandwidths
2, 5, 10, 20, 40, 80 (on pixel vectors in [0, 1]), minibatch 1000; z is 10-D uniform
(our choice where the paper's code is not at hand). Trained with Adam here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import GenerativeModel, Implicit, register_model
from dgmbench.models.gans.layers.mmd import mmd2
from dgmbench.models.gans.layers.networks import mlp_generator


@dataclass
class GMMNConfig:
    latent: int = 10
    hidden: tuple[int, ...] = (64, 256, 256, 1024)
    bandwidths: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
    unbiased: bool = False  # True: the U-statistic (Dziugaite et al.), no square root


@register_model("gmmn")
class GMMN(GenerativeModel, Implicit):
    Config = GMMNConfig
    family = "gans"
    value_types = ("continuous",)
    citation = "Li, Swersky & Zemel (2015), Generative Moment Matching Networks, ICML"
    train_defaults = {"patience": None, "batch_size": 1000, "lr": 1e-3}

    def __init__(self, config: GMMNConfig, info):
        super().__init__(config, info)
        if not config.bandwidths or min(config.bandwidths) <= 0:
            raise ValueError(f"bandwidths must be positive kernel widths, got {config.bandwidths}")
        self.generator = mlp_generator(info, config.latent, tuple(config.hidden), "none", None)

    def generate(self, n: int) -> torch.Tensor:
        return self.generator(torch.rand(n, self.config.latent, device=self.device) * 2 - 1)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.generate(n)

    def mmd2(self, x: torch.Tensor) -> torch.Tensor:
        """MMD^2 between x and an equally large generated batch."""
        return mmd2(x, self.generate(len(x)), tuple(self.config.bandwidths), self.config.unbiased)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        value = self.mmd2(x)
        return value if self.config.unbiased else value.clamp_min(1e-12).sqrt()

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        scalars = super().training_step(x, optimizers, train)
        return {"mmd": scalars["loss"]}

    def validation_score(self, x: torch.Tensor) -> float | None:
        return None  # a noisy minibatch statistic: no early stopping, keep the last checkpoint

    @classmethod
    def quick_variant(cls) -> str:
        return "dequantized"

    @classmethod
    def quick_config(cls, info):
        return {"hidden": (64, 128), "bandwidths": (0.5, 1.0, 2.0, 4.0)}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "batch_size": 256, "lr": 3e-3}
