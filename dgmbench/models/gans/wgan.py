"""Wasserstein GAN with weight clipping (Arjovsky, Chintala & Bottou 2017).

The critic f_w maximises E_data f_w(x) - E_z f_w(G(z)) (eq. 3). Over 1-Lipschitz f this is
the Kantorovich-Rubinstein dual of the earth mover's distance W1(p_data, p_g); clipping
every critic weight to [-c, c] after each critic step keeps f_w K-Lipschitz for some K
that depends on c and the architecture, so the maximum estimates K * W1. Each step logs
``wasserstein_estimate`` = E f(x) - E f(G(z)) on the batch (the paper's Figure 3/4 curve).

Algorithm 1 and Sec. 4 (reference configuration): n_critic = 5 critic updates per
generator update, clip c = 0.01, RMSProp with learning rate 5e-5, batch 64, DCGAN
networks without a sigmoid at the critic's output; the critic is trained 100 times per
generator update for the first 25 generator updates and every 500th (``critic_warmup``,
from the authors' code, to have a near-optimal critic when it matters most).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import register_model
from dgmbench.models.gans.layers.adversarial import AdversarialConfig, AdversarialModel
from dgmbench.models.gans.layers.losses import wasserstein_critic_loss, wasserstein_generator_loss


@dataclass
class WGANConfig(AdversarialConfig):
    latent: int = 100
    n_critic: int = 5
    clip: float = 0.01
    critic_warmup: bool = True  # 100 critic steps for the first 25 and every 500th generator step
    optimizer: str = "rmsprop"


class WassersteinGAN(AdversarialModel):
    """The critic game of eq. 3, shared by WGAN and WGAN-GP."""

    def discriminator_objective(self, real_scores, fake_scores):
        return wasserstein_critic_loss(real_scores, fake_scores)

    def generator_objective(self, fake_scores):
        return wasserstein_generator_loss(fake_scores)

    def critic_estimates(self, real_scores, fake_scores):
        return {"wasserstein_estimate": (real_scores.mean() - fake_scores.mean()).item()}


@register_model("wgan")
class WGAN(WassersteinGAN):
    Config = WGANConfig
    citation = "Arjovsky, Chintala & Bottou (2017), Wasserstein Generative Adversarial Networks, ICML"
    train_defaults = {"patience": None, "lr": 5e-5, "batch_size": 64}

    def __init__(self, config, info):
        if config.clip <= 0:
            raise ValueError(f"clip must be positive, got {config.clip}")
        super().__init__(config, info)

    def critic_iterations(self, generator_updates: int) -> int:
        if self.config.critic_warmup and (generator_updates < 25 or generator_updates % 500 == 0):
            return 100
        return self.config.n_critic

    @torch.no_grad()
    def after_discriminator_step(self) -> None:
        for p in self.discriminator.parameters():
            p.clamp_(-self.config.clip, self.config.clip)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32, "critic_warmup": False}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 1e-3}
