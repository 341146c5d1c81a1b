"""Variational autoencoder (Kingma & Welling 2014) with a Bernoulli decoder and a diagonal
Gaussian posterior, and the importance-weighted bound of Burda et al. (2016).

    ELBO(x)  = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I))                (KW eq. 10)
    L_k(x)   = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)],  z_i ~ q(z|x)       (Burda eq. 8)

The KL term is analytic; the reconstruction term uses one reparameterized sample.
L_1 = ELBO <= L_k <= log p(x), and L_k -> log p(x) as k grows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model

LOG_2PI = math.log(2 * math.pi)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


@dataclass
class VAEConfig:
    latent: int = 50
    hidden: int = 500
    layers: int = 2  # hidden layers in the encoder and in the decoder
    iwae_chunk: int = 1000  # importance samples evaluated per pass (memory bound)


@register_model("vae")
class VAE(GenerativeModel, LowerBound):
    Config = VAEConfig
    family = "latent"
    value_types = ("binary",)
    citation = "Kingma & Welling (2014), Auto-Encoding Variational Bayes, ICLR"

    def __init__(self, config: VAEConfig, info):
        super().__init__(config, info)
        d, h, z = info.dim, config.hidden, config.latent
        self.encoder = mlp([d] + [h] * config.layers + [2 * z])
        self.decoder = mlp([z] + [h] * config.layers + [d])

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return mean, log_var

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) for z of shape (..., n, latent) against x (n, D): shape (..., n)."""
        logits = self.decoder(z)
        target = x.flatten(1).expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def elbo(self, x: torch.Tensor) -> Bound:
        mean, log_var = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        reconstruction = self.log_likelihood(x, z)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        mean, log_var = self.posterior(x)
        std = (0.5 * log_var).exp()
        chunks = []
        for start in range(0, k, self.config.iwae_chunk):
            m = min(self.config.iwae_chunk, k - start)
            eps = torch.randn(m, *mean.shape, device=mean.device)
            z = mean + eps * std
            log_q = (-0.5 * eps.pow(2) - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)
            log_prior = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
            chunks.append(self.log_likelihood(x, z) + log_prior - log_q)  # (m, n)
        log_w = torch.cat(chunks)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.elbo(x).elbo.mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.latent, device=self.device)
        return torch.bernoulli(torch.sigmoid(self.decoder(z))).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 8, "hidden": 128}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "lr": 3e-3}
