"""Boundary equilibrium GAN (Berthelot, Schumm & Metz 2017): an autoencoder discriminator
with L1 reconstruction loss L(v) = mean |v - D(v)| (eta = 1), and a proportional control of
how hard the discriminator pushes generated samples away:

    L_D = L(x) - k_t L(G(z))
    L_G = L(G(z))
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)                     (eq. 4)

which holds E L(G(z)) = gamma E L(x) (the diversity ratio gamma, Sec. 3.3). Convergence
measure (Sec. 3.4.1), logged as ``convergence`` with ``k``:

    M_global = L(x) + |gamma L(x) - L(G(z))|

Reference configuration (Sec. 4): gamma = 0.5 (the paper shows 0.3 to 0.7), lambda_k =
0.001, k_0 = 0, Adam with learning rate 1e-4, a 64-D code and z. The paper's networks
(ELU, repeated 3x3 convolutions, no batch norm) are replaced by the DCGAN-style
autoencoder of gans/layers/networks.py without normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import register_model
from dgmbench.models.gans.ebgan import AutoencoderGAN
from dgmbench.models.gans.layers.adversarial import AdversarialConfig


@dataclass
class BEGANConfig(AdversarialConfig):
    latent: int = 64
    prior: str = "uniform"
    code: int = 64
    gamma: float = 0.5
    lambda_k: float = 0.001
    generator_norm: str = "none"
    critic_norm: str = "none"
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.5, 0.999)


@register_model("began")
class BEGAN(AutoencoderGAN):
    Config = BEGANConfig
    citation = "Berthelot, Schumm & Metz (2017), BEGAN: Boundary Equilibrium Generative Adversarial Networks, arXiv:1703.10717"
    train_defaults = {"patience": None, "lr": 1e-4, "batch_size": 64}
    energy_power = 1

    def __init__(self, config, info):
        if not 0 < config.gamma <= 1:
            raise ValueError(f"gamma (the diversity ratio) must be in (0, 1], got {config.gamma}")
        super().__init__(config, info)
        self.register_buffer("k", torch.zeros(()))  # k_0 = 0; a buffer, so a resumed run keeps it
        self._last_losses: tuple[float, float] | None = None

    def discriminator_objective(self, real_scores, fake_scores):
        return real_scores.mean() - self.k * fake_scores.mean()

    def generator_objective(self, fake_scores):
        return fake_scores.mean()

    def critic_estimates(self, real_scores, fake_scores):
        real, fake = real_scores.mean().item(), fake_scores.mean().item()
        self._last_losses = (real, fake)
        return {"convergence": real + abs(self.config.gamma * real - fake), "k": float(self.k)}

    @torch.no_grad()
    def after_discriminator_step(self) -> None:
        real, fake = self._last_losses
        self.k.add_(self.config.lambda_k * (self.config.gamma * real - fake)).clamp_(0.0, 1.0)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32, "code": 16}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 5e-4}
