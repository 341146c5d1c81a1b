"""RNADE: the real-valued neural autoregressive density estimator (Uria, Murray &
Larochelle, NeurIPS 2013).

NADE's weight-sharing recurrence with mixture-of-Gaussians conditionals (mixture density
networks) for real-valued vectors x in R^D, in the natural ordering:

    a_1 = c,   a_{d+1} = a_d + W[:, d] x_d                  (shared input weights, O(H) per step)
    h_d = sigmoid(rho_d a_d)                                (rho_d: per-dimension activation rescaling)
    alpha_d = softmax(V^alpha_d h_d + b^alpha_d)            (K mixing weights)
    mu_d    = V^mu_d h_d + b^mu_d,   sigma_d = exp(V^sigma_d h_d + b^sigma_d)

    p(x) = prod_d sum_k alpha_{d,k} N(x_d; mu_{d,k}, sigma_{d,k}^2)

so log_prob is an exact log-density (nats, with respect to Lebesgue measure on R^D).
The recurrence runs in NADE's blocked autograd functions (nade.py): ``nade_recurrence`` for
log_prob and ``nade_mean_nll`` for the training loss, O(DH) per example and O(nH) memory,
never an (n, D, H) tensor; sampling runs the recurrence once over the whole batch.

Initialisation: the output biases start data-dependent on the first training batch
(component means at the per-dimension quantiles, widths from the per-dimension spread),
so that short runs on data of any scale start from a sensible density. The flag lives in
a buffer, so a resumed run does not re-initialise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dgmbench.models.autoregressive.nade import nade_mean_nll, nade_recurrence
from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model


@register_model("rnade")
class RNADE(GenerativeModel, ExactLikelihood):
    @dataclass
    class Config:
        hidden_size: int = 100
        num_components: int = 10  # K Gaussians per conditional

    family = "autoregressive"
    value_types = ("continuous",)
    citation = (
        "Uria, B., Murray, I. & Larochelle, H. (2013). RNADE: The real-valued neural "
        "autoregressive density-estimator. NeurIPS."
    )

    def __init__(self, config: Config, info):
        super().__init__(config, info)
        dim, hidden, k = info.dim, config.hidden_size, config.num_components
        self.dim = dim
        self.input_weight = nn.Parameter(torch.randn(hidden, dim) / math.sqrt(dim))  # W
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))  # c
        self.rho = nn.Parameter(torch.ones(dim))
        # Per-dimension output weights for [alpha | mu | log sigma], each (D, H, K).
        self.output_weight = nn.Parameter(torch.randn(dim, hidden, 3 * k) * 0.01)
        output_bias = torch.zeros(dim, 3 * k)
        output_bias[:, k : 2 * k] = torch.linspace(-1.0, 1.0, k)
        self.output_bias = nn.Parameter(output_bias)
        self.register_buffer("initialized", torch.tensor(False))

    # --- the network ---------------------------------------------------------------
    def _mixture(self, params: torch.Tensor):
        """Split (..., 3K) into log mixing weights, means and standard deviations."""
        k = self.config.num_components
        log_alpha = torch.log_softmax(params[..., :k], dim=-1)
        mean = params[..., k : 2 * k]
        std = torch.exp(params[..., 2 * k :])
        return log_alpha, mean, std

    def conditional_params(self, x: torch.Tensor):
        """Mixture parameters of every conditional p(x_d | x_<d): three (n, D, K) tensors."""
        x = x.reshape(len(x), self.dim)
        params = nade_recurrence(x, self.input_weight, self.hidden_bias, self.output_weight, self.rho)
        return self._mixture(params + self.output_bias)

    def _mixture_log_density(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log sum_k alpha_k N(x; mu_k, sigma_k^2) elementwise, from (..., 3K) parameters."""
        log_alpha, mean, std = self._mixture(params)
        log_normal = torch.distributions.Normal(mean, std).log_prob(x[..., None])
        return torch.logsumexp(log_alpha + log_normal, dim=-1)

    def conditional_log_densities(self, x: torch.Tensor) -> torch.Tensor:
        """(n, D): log p(x_d | x_<d)."""
        x = x.reshape(len(x), self.dim)
        params = nade_recurrence(x, self.input_weight, self.hidden_bias, self.output_weight, self.rho)
        return self._mixture_log_density(params + self.output_bias, x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.conditional_log_densities(x).sum(1)

    # --- training ------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood; with gradients, in NADEMeanNLL's single sweep."""
        x = x.reshape(len(x), self.dim)
        if not torch.is_grad_enabled() or x.requires_grad:
            return -self.log_prob(x).mean()
        return nade_mean_nll(
            self._block_nll, x, self.input_weight, self.hidden_bias, self.output_weight, self.rho, self.output_bias
        )

    def _block_nll(self, out, x_block, start, stop, output_bias):
        """Summed -log p(x_d | x_<d) of dimensions start..stop-1 from their (B, n, 3K) outputs."""
        params = out.transpose(0, 1) + output_bias[start:stop]
        return -self._mixture_log_density(params, x_block).sum()

    def training_step(self, x, optimizers, train):
        if not bool(self.initialized):
            self.initialize_from_data(x)
        return super().training_step(x, optimizers, train)

    @torch.no_grad()
    def initialize_from_data(self, x: torch.Tensor) -> None:
        """Component means at per-dimension quantiles of x, widths from its spread."""
        x = x.reshape(len(x), self.dim)
        k = self.config.num_components
        levels = (torch.arange(k, device=x.device, dtype=x.dtype) + 0.5) / k
        self.output_bias[:, k : 2 * k] = torch.quantile(x, levels, dim=0).T
        spread = x.std(0, unbiased=False) if len(x) > 1 else torch.ones(self.dim, device=x.device)
        self.output_bias[:, 2 * k :] = torch.log(spread.clamp_min(1e-3) / math.sqrt(k))[:, None]
        self.initialized.fill_(True)

    # --- sampling ------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling with the O(H)-per-dimension recurrence, all n at once."""
        x = torch.zeros(n, self.dim, device=self.device)
        preactivation = self.hidden_bias.expand(n, -1)
        for d in range(self.dim):
            hidden = torch.sigmoid(self.rho[d] * preactivation)
            params = hidden @ self.output_weight[d] + self.output_bias[d]
            log_alpha, mean, std = self._mixture(params)
            component = torch.distributions.Categorical(logits=log_alpha).sample()[:, None]
            chosen_mean = mean.gather(1, component).squeeze(1)
            chosen_std = std.gather(1, component).squeeze(1)
            x[:, d] = chosen_mean + chosen_std * torch.randn(n, device=self.device)
            preactivation = preactivation + x[:, d : d + 1] * self.input_weight[:, d]
        return x.reshape(n, *self.info.shape)

    # --- quick suite ---------------------------------------------------------------
    @classmethod
    def quick_config(cls, info):
        return {"hidden_size": 64, "num_components": 5}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 10, "lr": 3e-3}

    @classmethod
    def quick_variant(cls) -> str:
        return "dequantized"
