"""BiGAN / ALI (Donahue, Krähenbühl & Darrell 2017; Dumoulin et al. 2017): a GAN with an
inference network. An encoder E maps data to latents, and the discriminator sees joint
pairs, (x, E(x)) from the data and (G(z), z) from the generator:

    min_{G,E} max_D E_x log D(x, E(x)) + E_z log(1 - D(G(z), z))                (BiGAN eq. 3)

At the optimum the two joint distributions match, so E inverts G (BiGAN Theorem 2); the
optimal D and the Jensen-Shannon value are those of the GAN on the joint space
(Prop. 1 / Theorem 1 of Goodfellow et al. 2014, tested in test_gan.py). ``encoder =
"deterministic"`` is BiGAN; ``"gaussian"`` is ALI's reparameterised stochastic encoder
q(z | x) = N(mu(x), sigma(x)^2). G and E take the non-saturating losses (labels swapped:
softplus(D(x, E(x))) + softplus(-D(G(z), z))).

Reconstruction quality, the inference network's check: ``reconstruction_mse`` = mean
per-dimension squared error of G(E(x)) (E's mean for ALI) against x, logged every step on
the real batch and available as :meth:`BiGAN.reconstruction_error`.

Networks: the generator follows ``architecture`` (DCGAN for images); the encoder and the
joint discriminator are MLPs on the flattened x (images scaled to [-1, 1]) and z (the
papers use convolutional x-paths joined with z-paths). Reference: BiGAN's MNIST setting,
50-D uniform z, Adam 2e-4, beta1 0.5, batch 128 (their Sec. 4.2), MLP widths ours.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import register_model
from dgmbench.models.gans.gan import CrossEntropyGAN
from dgmbench.models.gans.layers.adversarial import AdversarialConfig
from dgmbench.models.gans.layers.losses import gan_discriminator_loss

ENCODERS = ("deterministic", "gaussian")


@dataclass
class BiGANConfig(AdversarialConfig):
    latent: int = 50
    prior: str = "uniform"
    encoder: str = "deterministic"  # BiGAN; "gaussian": ALI
    e_hidden: tuple[int, ...] = (512, 512)  # encoder MLP widths
    d_hidden: tuple[int, ...] = (512, 512)  # joint discriminator MLP widths
    maxout_pieces: int = 0
    generator_loss: str = "non_saturating"


@register_model("bigan")
class BiGAN(CrossEntropyGAN):
    Config = BiGANConfig
    citation = (
        "Donahue, Krähenbühl & Darrell (2017), Adversarial Feature Learning, ICLR; Dumoulin et al. (2017), "
        "Adversarially Learned Inference, ICLR"
    )
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 128}

    def __init__(self, config, info):
        if config.encoder not in ENCODERS:
            raise ValueError(f"encoder {config.encoder!r} is not one of {', '.join(ENCODERS)}")
        if config.feature_matching or config.minibatch_kernels:
            raise ValueError("feature matching and minibatch discrimination are not defined for the joint discriminator")
        if config.generator_loss != "non_saturating":
            raise ValueError("BiGAN trains G and E with the non-saturating losses only")
        super().__init__(config, info)
        layers: list[nn.Module] = [nn.Flatten()]
        width = info.dim
        for h in config.e_hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        layers.append(nn.Linear(width, config.latent * (2 if config.encoder == "gaussian" else 1)))
        self.encoder = nn.Sequential(*layers)

    def critic_info(self):
        """The joint discriminator sees [x, z] as one vector."""
        return dataclasses.replace(self.info, shape=(self.info.dim + self.config.latent,))

    def build_discriminator(self):
        from dgmbench.models.gans.layers.networks import mlp_critic

        c = self.config
        return mlp_critic(self.critic_info(), tuple(c.d_hidden), c.maxout_pieces, c.dropout, c.input_dropout)

    def generator_params_module(self) -> nn.Module:
        return nn.ModuleList([self.generator, self.encoder])

    def encode(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """E(x); for ALI a reparameterised draw from q(z | x) (its mean if not sample)."""
        out = self.encoder(2 * x - 1 if self.info.is_image else x)
        if self.config.encoder == "deterministic":
            return out
        mean, log_std = out.chunk(2, dim=1)
        return mean + log_std.exp() * torch.randn_like(mean) if sample else mean

    def joint_score(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.discriminator(torch.cat([2 * x - 1 if self.info.is_image else x, z], dim=1))

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor) -> float:
        """Mean squared error per dimension of G(E(x)) against x."""
        return (self.generator(self.encode(x, sample=False)) - x).pow(2).mean().item()

    def discriminator_loss(self, real, fake, labels=None, inputs=None):
        with torch.no_grad():
            real_z = self.encode(real)
        real_scores, fake_scores = self.joint_score(real, real_z), self.joint_score(fake, inputs)
        loss = gan_discriminator_loss(real_scores, fake_scores, real_target=self.config.label_smoothing)
        if self.config.historical_averaging:
            loss = loss + self.config.historical_averaging * self.discriminator_average.penalty()
        scalars = {
            "d_loss": loss.item(), "d_real": real_scores.mean().item(), "d_fake": fake_scores.mean().item(),
            **self.critic_estimates(real_scores.detach(), fake_scores.detach()),
            "reconstruction_mse": self.reconstruction_error(real),
        }
        return loss, scalars

    def generator_loss(self, fake, real, labels=None, inputs=None):
        loss = F.softplus(self.joint_score(real, self.encode(real))).mean() + F.softplus(-self.joint_score(fake, inputs)).mean()
        if self.config.historical_averaging:
            loss = loss + self.config.historical_averaging * self.generator_average.penalty()
        return loss

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32, "e_hidden": (128,), "d_hidden": (128, 128)}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 5e-4}
