"""Energy-based GAN (Zhao, Mathieu & LeCun 2017): the discriminator is an autoencoder whose
reconstruction error D(x) = ||Dec(Enc(x)) - x||^2 (per pixel, mean) is an energy, low on
data and pushed above a margin m on generated samples:

    L_D(x, z) = D(x) + [m - D(G(z))]^+                                              (eq. 1)
    L_G(z)    = D(G(z))                                                             (eq. 2)

At the equilibrium of this game p_G = p_data (Theorem 2). EBGAN-PT adds the pulling-away
term to the generator's loss, on the encoder codes S of a generated batch of N,

    f_PT(S) = 1 / (N (N - 1)) sum_{i != j} (S_i . S_j / (|S_i| |S_j|))^2                 (eq. 6)

(weight ``pt_weight``; the paper uses 0.1), which penalises near-parallel codes, i.e. a
collapsed batch. Logged: ``d_real``/``d_fake`` (the mean energies) and ``pulling_away``.

Networks: a DCGAN-style convolutional autoencoder for images (MLP for vectors) with a
``code``-dimensional bottleneck; the margin applies to our per-pixel mean squared energy
on the [-1, 1] image scale, so its value (0.5 by default) is ours: the paper grid-searches
m for its own (summed) energy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dgmbench.models.base import register_model
from dgmbench.models.gans.layers.adversarial import AdversarialConfig, AdversarialModel
from dgmbench.models.gans.layers.networks import autoencoder_critic


def pulling_away(codes: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity over ordered pairs i != j of a batch of codes (eq. 6)."""
    n = len(codes)
    if n < 2:
        return torch.zeros((), device=codes.device)
    unit = F.normalize(codes, dim=1)
    similarity = (unit @ unit.T).pow(2)
    return (similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))


@dataclass
class EBGANConfig(AdversarialConfig):
    latent: int = 100
    prior: str = "uniform"
    code: int = 64  # autoencoder bottleneck
    margin: float = 0.5  # m, on the per-pixel mean squared energy
    pt_weight: float = 0.0  # weight of the pulling-away term (EBGAN-PT: 0.1)
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.5, 0.999)


class AutoencoderGAN(AdversarialModel):
    """Shared by EBGAN and BEGAN: the discriminator is an autoencoder whose score is an energy."""

    energy_power = 2

    def build_discriminator(self):
        c = self.config
        if c.minibatch_kernels:
            raise ValueError(f"{type(self).__name__}'s autoencoder discriminator has no minibatch-discrimination layer")
        return autoencoder_critic(self.critic_info(), self.architecture, c.code, c.base_channels, tuple(c.d_hidden),
                                  c.critic_norm, self.energy_power)


@register_model("ebgan")
class EBGAN(AutoencoderGAN):
    Config = EBGANConfig
    citation = "Zhao, Mathieu & LeCun (2017), Energy-based Generative Adversarial Network, ICLR"
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 64}

    def discriminator_objective(self, real_scores, fake_scores):
        return real_scores.mean() + F.relu(self.config.margin - fake_scores).mean()

    def generator_objective(self, fake_scores):
        return fake_scores.mean()

    def generator_loss(self, fake, real, labels=None, inputs=None):
        loss = super().generator_loss(fake, real, labels, inputs)
        if self.config.pt_weight:
            loss = loss + self.config.pt_weight * pulling_away(self.critic_features(fake, labels))
        return loss

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32, "code": 16}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 2e-4}
