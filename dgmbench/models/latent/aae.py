"""Adversarial autoencoder (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016): an
autoencoder whose aggregated posterior q(z) = E_data[q(z|x)] is matched to the prior
p(z) = N(0, I) by a discriminator on the code space instead of a KL term.

Each minibatch has two phases (Sec. 2, "the reconstruction phase and the regularization
phase"), with a deterministic encoder z = f(x) (their "deterministic" variant) and a
Bernoulli decoder g:

    reconstruction:  min_{f,g} E_x[-log Bernoulli(x; sigmoid(g(f(x))))]
    regularisation:  max_D  E_{z~p}[log D(z)] + E_x[log(1 - D(f(x)))]            (GAN eq. 1 on z)
                     min_f  E_x[-log D(f(x))]                                       (non-saturating)

At the optimum of the game q(z) = p(z) (Goodfellow et al. 2014, Prop. 1 applied to codes),
so decoding prior samples z ~ p(z) gives the model's samples. There is no likelihood or bound:
the paper evaluates with a Parzen-window estimate on samples (their Table 1), which the
``parzen`` metric computes (``Implicit``).

Grey-level images (the paper's MNIST likelihood experiment; here the dequantized boards, values
in [0, 1]): the reconstruction term is the same cross-entropy with the grey levels as targets
(a loss, not a normalised density of continuous data, which the AAE never claims), and a sample
is the decoded mean sigmoid(g(z)) rather than a Bernoulli draw, as in the Parzen protocol the
paper follows (Goodfellow et al. 2014 score their generator's [0, 1] outputs the same way).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import GenerativeModel, Implicit, register_model


def relu_mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class AAEConfig:
    latent: int = 8  # Makhzani et al.'s MNIST likelihood experiment: 8-D Gaussian codes
    hidden: int = 1000  # two ReLU layers of 1000 units in encoder, decoder and discriminator
    layers: int = 2
    discriminator_hidden: int = 1000


@register_model("aae")
class AdversarialAutoencoder(GenerativeModel, Implicit):
    Config = AAEConfig
    family = "latent"
    value_types = ("binary", "continuous")
    citation = "Makhzani, Shlens, Jaitly, Goodfellow & Frey (2016), Adversarial Autoencoders, ICLR workshop"

    def __init__(self, config: AAEConfig, info):
        super().__init__(config, info)
        if min(config.latent, config.hidden, config.layers, config.discriminator_hidden) < 1:
            raise ValueError("latent, hidden, layers and discriminator_hidden must be >= 1")
        if info.value_type == "continuous" and not info.dequantization_levels:
            raise ValueError(f"the AAE's sigmoid decoder models values in [0, 1]: binary or dequantized "
                             f"images, but {info.board} holds unscaled continuous values")
        d, h, z = info.dim, config.hidden, config.latent
        self.encoder = relu_mlp([d] + [h] * config.layers + [z])
        self.decoder = relu_mlp([z] + [h] * config.layers + [d])
        self.discriminator = relu_mlp([z] + [config.discriminator_hidden] * config.layers + [1])

    def reconstruction_nll(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.encoder(x.flatten(1)))
        return F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction NLL (validation; the regularisation phase is adversarial)."""
        return self.reconstruction_nll(x).mean()

    def discriminator_loss(self, codes: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """-[log D(z_prior) + log(1 - D(f(x)))], batch mean (D outputs logits)."""
        real, fake = self.discriminator(prior), self.discriminator(codes)
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    def configure_optimizers(self, train):
        autoencoder = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return {
            "autoencoder": torch.optim.Adam(autoencoder, lr=train.lr, weight_decay=train.weight_decay),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=train.lr, betas=(0.5, 0.999)),
            "encoder": torch.optim.Adam(self.encoder.parameters(), lr=train.lr, betas=(0.5, 0.999)),
        }

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        x = x.flatten(1)
        # reconstruction phase
        optimizers["autoencoder"].zero_grad(set_to_none=True)
        reconstruction = self.reconstruction_nll(x).mean()
        reconstruction.backward()
        optimizers["autoencoder"].step()
        # regularisation phase: discriminator, then the encoder as its generator
        optimizers["discriminator"].zero_grad(set_to_none=True)
        prior = torch.randn(len(x), self.config.latent, device=x.device, dtype=x.dtype)
        d_loss = self.discriminator_loss(self.encoder(x).detach(), prior)
        d_loss.backward()
        optimizers["discriminator"].step()
        optimizers["encoder"].zero_grad(set_to_none=True)
        fooled = self.discriminator(self.encoder(x))
        g_loss = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        g_loss.backward()
        optimizers["encoder"].step()
        return {"loss": reconstruction.item(), "discriminator": d_loss.item(), "generator": g_loss.item()}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.latent, device=self.device)
        means = torch.sigmoid(self.decoder(z))
        if self.info.value_type == "continuous":
            return means.view(n, *self.info.shape)
        return torch.bernoulli(means).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 4, "hidden": 128, "discriminator_hidden": 64}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "lr": 1e-3}
