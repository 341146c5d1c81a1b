"""Deterministic autoencoder baseline: codes z = f(x), reconstruction by a Bernoulli decoder
g(z), trained on the reconstruction error alone,

    loss(x) = -log Bernoulli(x; sigmoid(g(f(x)))) = BCE(x, g(f(x))),

and made generative after the fact by a full-covariance Gaussian N(mu, Sigma) fitted to the
codes of the training examples: z ~ N(mu, Sigma), x ~ Bernoulli(sigmoid(g(z))).

It is not a likelihood model: nothing ties the code distribution to N(mu, Sigma) during
training, there is no posterior over z and no bound on log p(x), so it reports only sample
metrics (``Implicit``). Next to the VAE on one table it shows what the KL term buys: a
reconstruction loss far below the VAE's -ELBO and samples that are worse for it.

The Gaussian is refitted every epoch from the exact first and second moments of the codes
the training steps of that epoch computed (so with the parameters of the moment each batch
was seen); the checkpoint kept by early stopping keeps the Gaussian of its own epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dgmbench.models.base import GenerativeModel, Implicit, register_model
from dgmbench.models.latent.vae import mlp


@dataclass
class AutoencoderConfig:
    latent: int = 50
    hidden: int = 500
    layers: int = 2  # tanh hidden layers in the encoder and in the decoder (as the VAE's)
    jitter: float = 1e-5  # added to the fitted covariance's diagonal


@register_model("autoencoder")
class Autoencoder(GenerativeModel, Implicit):
    Config = AutoencoderConfig
    family = "latent"
    value_types = ("binary",)
    citation = (
        "Hinton & Salakhutdinov (2006), Reducing the Dimensionality of Data with Neural Networks, "
        "Science (deterministic autoencoder; Gaussian code sampling as a baseline)"
    )

    def __init__(self, config: AutoencoderConfig, info):
        super().__init__(config, info)
        if config.latent < 1 or config.hidden < 1 or config.jitter < 0:
            raise ValueError("latent and hidden must be >= 1 and jitter >= 0")
        d, h, z = info.dim, config.hidden, config.latent
        self.encoder = mlp([d] + [h] * config.layers + [z])
        self.decoder = mlp([z] + [h] * config.layers + [d])
        self.register_buffer("code_mean", torch.zeros(z))
        self.register_buffer("code_cov", torch.eye(z))
        # running sums of the current epoch's codes: count, sum z, sum z z^T
        self.register_buffer("code_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("code_sum", torch.zeros(z, dtype=torch.float64))
        self.register_buffer("code_outer", torch.zeros(z, z, dtype=torch.float64))

    def reconstruction_nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | g(f(x))) per example: what training minimises."""
        logits = self.decoder(self.encoder(x.flatten(1)))
        return F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruction_nll(x).mean()

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        (opt,) = optimizers.values()
        opt.zero_grad(set_to_none=True)
        codes = self.encoder(x.flatten(1))
        logits = self.decoder(codes)
        loss = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(-1).mean()
        loss.backward()
        if train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        with torch.no_grad():
            c = codes.detach().double()
            self.code_count += len(c)
            self.code_sum += c.sum(0)
            self.code_outer += c.T @ c
        return {"loss": loss.item()}

    @torch.no_grad()
    def fit_code_distribution(self) -> None:
        """N(mu, Sigma) from the codes accumulated since the last fit (maximum likelihood)."""
        n = self.code_count.item()
        if n < 2:
            return
        mean = self.code_sum / n
        cov = self.code_outer / n - torch.outer(mean, mean)
        cov = cov + self.config.jitter * torch.eye(len(mean), dtype=cov.dtype, device=cov.device)
        self.code_mean.copy_(mean)
        self.code_cov.copy_(cov)
        self.code_count.zero_()
        self.code_sum.zero_()
        self.code_outer.zero_()

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        # The trainer validates after each epoch's steps: the epoch's codes are complete.
        self.fit_code_distribution()
        return self.loss(x).item()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.fit_code_distribution()  # codes seen since the last fit, if any
        gaussian = torch.distributions.MultivariateNormal(self.code_mean.double(), covariance_matrix=self.code_cov.double())
        z = gaussian.sample((n,)).to(self.code_mean.dtype)
        return torch.bernoulli(torch.sigmoid(self.decoder(z))).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 8, "hidden": 128}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "lr": 3e-3}
