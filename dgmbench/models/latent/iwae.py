"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2016) with one or more
stochastic Gaussian layers, trained on the k-sample bound, and the VAE trained on the same
k samples (the two columns of their Table 1).

Generative model with L stochastic layers h_1..h_L (h_0 = x):

    p(h_L) = N(0, I),   p(h_l | h_{l+1}) = N(mu, diag sigma^2)(h_{l+1}),   p(x | h_1) = Bernoulli
    q(h_1 | x), q(h_{l+1} | h_l): diagonal Gaussians, each an MLP of `depth` tanh layers.

The paper's architectures (Sec. 5): one stochastic layer 784-200-200-50 (latent=(50,),
hidden=(200,)) and two stochastic layers 784-200-200-100-100-100-50 (latent=(100, 50),
hidden=(200, 100)).

Objectives, with w_i = p(x, h^i) / q(h^i | x), h^i ~ q(h | x) reparameterised (Sec. 3):

    IWAE:  L_k(x) = E[log (1/k) sum_i w_i]                                   (Burda eq. 8)
    VAE:   E[(1/k) sum_i log w_i] = ELBO, its k-sample gradient estimate      (Burda eq. 7)

Active units (their Sec. 5.2 and Appendix): unit u is active when A_u = Cov_x(E_q(u|x)[u])
> 0.01; ``posterior_mean`` gives E_q[u] (exact for h_1, Monte Carlo over q(h_1|x) above).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model
from dgmbench.models.latent.vae import LOG_2PI, mlp

OBJECTIVES = ("iwae", "vae")


def gaussian_log_prob(value: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """sum_j log N(value_j; mean_j, exp(log_var_j)) over the last dimension."""
    return (-0.5 * (value - mean).pow(2) / log_var.exp() - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)


@dataclass
class IWAEConfig:
    latent: tuple[int, ...] = (50,)  # stochastic layer sizes, bottom (next to x) to top
    hidden: tuple[int, ...] = (200,)  # deterministic units of the MLPs around each stochastic layer
    depth: int = 2  # tanh hidden layers per MLP
    k: int = 50  # importance samples per example in training
    objective: str = "iwae"  # "iwae" (L_k) or "vae" (the k-sample average ELBO)
    active_unit_samples: int = 100  # Monte Carlo samples for E_q[h_l], l >= 2
    iwae_chunk: int = 1000  # importance samples evaluated per pass (memory bound)


@register_model("iwae")
class IWAE(GenerativeModel, LowerBound):
    Config = IWAEConfig
    family = "latent"
    value_types = ("binary",)
    citation = "Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, ICLR"
    # Burda et al. use Adam with epsilon 1e-4 and a schedule from 1e-3 down over 3^8 passes.
    train_defaults = {"lr": 1e-3, "batch_size": 20}

    def __init__(self, config: IWAEConfig, info):
        super().__init__(config, info)
        latent, hidden = tuple(config.latent), tuple(config.hidden)
        if not latent or len(hidden) != len(latent) or min(latent + hidden) < 1:
            raise ValueError(
                f"latent and hidden must list one positive size per stochastic layer, got latent={config.latent!r}, hidden={config.hidden!r}"
            )
        if config.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {config.objective!r}")
        if config.k < 1:
            raise ValueError(f"k must be >= 1, got {config.k}")
        sizes = (info.dim,) + latent
        self.latent_sizes = latent
        # encoders[l]: h_l -> (mean, log_var) of h_{l+1}; decoders[l]: h_{l+1} -> parameters of h_l
        self.encoders = nn.ModuleList(
            mlp([sizes[l]] + [hidden[l]] * config.depth + [2 * sizes[l + 1]]) for l in range(len(latent))
        )
        self.decoders = nn.ModuleList(
            mlp([sizes[l + 1]] + [hidden[l]] * config.depth + [sizes[l] * (1 if l == 0 else 2)])
            for l in range(len(latent))
        )

    def posterior_sample(self, x: torch.Tensor, k: int):
        """k reparameterised samples h_1..h_L ~ q(h|x), each (k, n, size_l), with log q (k, n)
        and the Gaussian parameters (n, size_1) of q(h_1|x)."""
        below = x.flatten(1)  # q(h_1|x) is computed once and broadcast over the k samples
        hs, log_q, first = [], 0.0, None
        for encoder in self.encoders:
            mean, log_var = encoder(below).chunk(2, dim=-1)
            eps = torch.randn(k, *mean.shape[-2:], dtype=mean.dtype, device=mean.device)
            below = mean + eps * (0.5 * log_var).exp()
            log_q = log_q + (-0.5 * eps.pow(2) - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)
            hs.append(below)
            first = first if first is not None else (mean, log_var)
        return hs, log_q, first

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | h_1 = z) for z of shape (..., n, latent[0]): shape (..., n)."""
        logits = self.decoders[0](z)
        return -F.binary_cross_entropy_with_logits(logits, x.flatten(1).expand_as(logits), reduction="none").sum(-1)

    def log_prior(self, hs: list[torch.Tensor]) -> torch.Tensor:
        """log p(h_1, ..., h_L) = log N(h_L; 0, I) + sum_l log p(h_l | h_{l+1})."""
        top = hs[-1]
        log_p = (-0.5 * top.pow(2) - 0.5 * LOG_2PI).sum(-1)
        for l in range(len(hs) - 1):
            mean, log_var = self.decoders[l + 1](hs[l + 1]).chunk(2, dim=-1)
            log_p = log_p + gaussian_log_prob(hs[l], mean, log_var)
        return log_p

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log w_i = log p(x, h^i) - log q(h^i | x) for k samples, shape (k, n)."""
        hs, log_q, _ = self.posterior_sample(x, k)
        return self.log_likelihood(x, hs[0]) + self.log_prior(hs) - log_q

    def elbo(self, x: torch.Tensor) -> Bound:
        hs, log_q, (mean, log_var) = self.posterior_sample(x, 1)
        hs, log_q = [h[0] for h in hs], log_q[0]
        reconstruction = self.log_likelihood(x, hs[0])
        if len(hs) == 1:  # analytic KL to N(0, I)
            kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
        else:  # single-sample estimate of KL(q(h|x) || p(h))
            kl = log_q - self.log_prior(hs)
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        chunks = [self.log_weights(x, min(self.config.iwae_chunk, k - start))
                  for start in range(0, k, self.config.iwae_chunk)]
        return torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        log_w = self.log_weights(x, self.config.k)
        if self.config.objective == "iwae":
            return -(torch.logsumexp(log_w, 0) - math.log(self.config.k)).mean()
        return -log_w.mean()

    @torch.no_grad()
    def posterior_mean(self, x: torch.Tensor) -> torch.Tensor:
        """E_q[h_l | x] for every stochastic layer, concatenated: (n, sum(latent)). Exact for
        h_1; for higher layers averaged over `active_unit_samples` draws of the layers below."""
        s = self.config.active_unit_samples
        below = x.flatten(1)
        means = []
        for l, encoder in enumerate(self.encoders):
            mean, log_var = encoder(below).chunk(2, dim=-1)
            means.append(mean if l == 0 else mean.mean(0))
            if l == 0:
                mean, log_var = mean.expand(s, *mean.shape), log_var.expand(s, *log_var.shape)
            below = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return torch.cat(means, dim=-1)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        h = torch.randn(n, self.latent_sizes[-1], device=self.device)
        for decoder in reversed(self.decoders[1:]):
            mean, log_var = decoder(h).chunk(2, dim=-1)
            h = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return torch.bernoulli(torch.sigmoid(self.decoders[0](h))).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"latent": (8,), "hidden": (64,), "k": 5}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "lr": 3e-3, "batch_size": 100}

