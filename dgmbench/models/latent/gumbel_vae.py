"""VAE with categorical latents trained through the Gumbel-softmax / Concrete relaxation
(Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017).

Latent: N independent categorical variables z_1..z_N with K categories each, uniform prior
p(z_i) = 1/K; posterior q(z_i | x) = Categorical(softmax(alpha_i(x))); Bernoulli decoder
p(x | z) fed the N one-hot vectors.

Training uses the relaxed sample (Jang eq. 1; the Concrete distribution of Maddison):
    y_i = softmax((log pi_i + g_i) / tau),  g_ij ~ Gumbel(0, 1)
and the loss -(log p(x | y) - KL(q(z|x) || p(z))) with the categorical KL in closed form, as
in Jang et al.'s experiments; with ``hard=True`` the forward pass uses the one-hot argmax
and the backward pass the relaxed gradient (straight-through Gumbel, Jang Sec. 2.2). The
temperature is annealed as tau = max(tau_min, tau_0 exp(-r t)) (Jang Sec. 4).

Everything the model *reports* uses the discrete posterior, never the relaxation:
    ELBO(x) = E_q(z|x)[log p(x | z)] - KL(q(z|x) || p(z))       (one discrete z per example)
    L_k(x)  = E[log (1/k) sum_j p(x, z_j) / q(z_j | x)],  z_j ~ q(z | x) discrete
For tiny N and K, ``elbo_by_enumeration`` and ``log_prob_by_enumeration`` sum over all K^N
states exactly.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model
from dgmbench.models.latent.vae import mlp


@dataclass
class GumbelVAEConfig:
    groups: int = 30  # N categorical latents (Jang et al. MNIST: 30 x 10 categories)
    categories: int = 10  # K
    encoder: tuple[int, ...] = (512, 256)  # hidden sizes (Jang et al.)
    decoder: tuple[int, ...] = (256, 512)
    temperature: float = 1.0  # tau_0
    min_temperature: float = 0.5
    anneal_rate: float = 3e-5  # r, per training step
    hard: bool = False  # straight-through Gumbel-softmax
    iwae_chunk: int = 1000


@register_model("gumbel_vae")
class GumbelSoftmaxVAE(GenerativeModel, LowerBound):
    Config = GumbelVAEConfig
    family = "latent"
    value_types = ("binary",)
    citation = (
        "Jang, Gu & Poole (2017), Categorical Reparameterization with Gumbel-Softmax, ICLR; "
        "Maddison, Mnih & Teh (2017), The Concrete Distribution, ICLR"
    )

    def __init__(self, config: GumbelVAEConfig, info):
        super().__init__(config, info)
        if config.groups < 1 or config.categories < 2:
            raise ValueError(f"need groups >= 1 and categories >= 2, got {config.groups} and {config.categories}")
        if not 0 < config.min_temperature <= config.temperature:
            raise ValueError("need 0 < min_temperature <= temperature")
        n, k = config.groups, config.categories
        self.encoder = mlp([info.dim, *config.encoder, n * k])
        self.decoder = mlp([n * k, *config.decoder, info.dim])
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def posterior_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log q(z_i = j | x), shape (n, N, K)."""
        logits = self.encoder(x.flatten(1)).view(len(x), self.config.groups, self.config.categories)
        return torch.log_softmax(logits, dim=-1)

    def log_likelihood(self, x: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for (relaxed) one-hot z of shape (..., n, N, K): shape (..., n)."""
        logits = self.decoder(one_hot.flatten(-2))
        return -F.binary_cross_entropy_with_logits(logits, x.flatten(1).expand_as(logits), reduction="none").sum(-1)

    def kl(self, log_q: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || uniform) = sum_i sum_j q_ij (log q_ij + log K), shape (n,)."""
        return (log_q.exp() * (log_q + math.log(self.config.categories))).sum((-2, -1))

    def discrete_sample(self, log_q: torch.Tensor, k: int) -> torch.Tensor:
        """k one-hot samples z ~ q(z|x): (k, n, N, K)."""
        index = torch.distributions.Categorical(logits=log_q).sample((k,))
        return F.one_hot(index, self.config.categories).to(log_q.dtype)

    def elbo(self, x: torch.Tensor) -> Bound:
        log_q = self.posterior_log_probs(x)
        reconstruction = self.log_likelihood(x, self.discrete_sample(log_q, 1)[0])
        kl = self.kl(log_q)
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        log_q = self.posterior_log_probs(x)
        log_prior = -self.config.groups * math.log(self.config.categories)
        chunks = []
        for start in range(0, k, self.config.iwae_chunk):
            z = self.discrete_sample(log_q, min(self.config.iwae_chunk, k - start))
            log_q_z = (z * log_q).sum((-2, -1))
            chunks.append(self.log_likelihood(x, z) + log_prior - log_q_z)
        return torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k)

    def all_states(self, dtype=torch.float32) -> torch.Tensor:
        """Every z as N one-hot rows, (K^N, 1, N, K): for tiny models only."""
        n, k = self.config.groups, self.config.categories
        if k**n > 1 << 16:
            raise ValueError(f"enumerating {k}^{n} latent states is infeasible")
        index = torch.tensor(list(itertools.product(range(k), repeat=n)))
        return F.one_hot(index, k).to(dtype).unsqueeze(1)

    def elbo_by_enumeration(self, x: torch.Tensor) -> torch.Tensor:
        """sum_z q(z|x) log p(x|z) - KL(q || p), exact, shape (n,)."""
        log_q = self.posterior_log_probs(x)
        z = self.all_states(log_q.dtype)
        q_z = (z * log_q).sum((-2, -1)).exp()  # (K^N, n)
        return (q_z * self.log_likelihood(x, z.expand(-1, len(x), -1, -1))).sum(0) - self.kl(log_q)

    def log_prob_by_enumeration(self, x: torch.Tensor) -> torch.Tensor:
        z = self.all_states(self.decoder[0].weight.dtype)
        log_px_z = self.log_likelihood(x, z.expand(-1, len(x), -1, -1))
        return torch.logsumexp(log_px_z, 0) - self.config.groups * math.log(self.config.categories)

    def temperature(self) -> float:
        c = self.config
        return max(c.min_temperature, c.temperature * math.exp(-c.anneal_rate * self.steps.item()))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Training: the relaxed objective; evaluation: the discrete negative ELBO."""
        if not (self.training and torch.is_grad_enabled()):
            return -self.elbo(x).elbo.mean()
        log_q = self.posterior_log_probs(x)
        y = F.gumbel_softmax(log_q, tau=self.temperature(), hard=self.config.hard, dim=-1)
        self.steps += 1
        return -(self.log_likelihood(x, y) - self.kl(log_q)).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        c = self.config
        index = torch.randint(0, c.categories, (n, c.groups), device=self.device)
        z = F.one_hot(index, c.categories).float()
        return torch.bernoulli(torch.sigmoid(self.decoder(z.flatten(1)))).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"groups": 8, "categories": 4, "encoder": (64,), "decoder": (64,), "anneal_rate": 1e-3}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "lr": 3e-3}
