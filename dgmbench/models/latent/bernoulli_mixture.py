"""Mixture of multivariate Bernoullis, fitted by EM (Bishop 2006, Sec. 9.3.3).

    p(x) = sum_k pi_k prod_d mu_kd^x_d (1 - mu_kd)^(1 - x_d)

E-step: responsibilities r_nk = pi_k p(x_n | mu_k) / p(x_n).
M-step (MAP with a symmetric Beta(1+a, 1+a) prior on each mu_kd and Dirichlet(1+a) on pi,
so that no probability collapses to exactly 0 or 1 on unseen pixels):

    mu_k = (sum_n r_nk x_n + a) / (N_k + 2a),      pi_k = (N_k + a) / (N + K a)

Training is full-batch EM: one E and one M step per epoch (``train_defaults`` sets
batch_size=None), so the trainer's epochs are EM iterations.

Initialisation (``init``): ``uniform`` draws every mu_kd from U(0.25, 0.75). The first E-step
then gives each training image almost entirely to whichever random component happens to fit
it best, and many components receive no image at all and stay dead: on binarized MNIST with
500 components only 220 keep a weight above 1e-4. ``data`` starts component k halfway
between one training image (drawn with ``init_seed``) and the mean image, so every component
starts next to some data (498 of 500 stay alive there; test NLL 126.4 after 15 iterations
against 131.6 after 60 with ``uniform``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model


INITS = ("uniform", "data")


@dataclass
class BernoulliMixtureConfig:
    components: int = 50
    smoothing: float = 0.01  # a in the M-step above
    init_seed: int = 0
    init: str = "uniform"  # or "data" (module docstring)
    # added after records existed: at its default it leaves every committed run key unchanged
    identity_neutral: ClassVar[tuple[str, ...]] = ("init",)


@register_model("bernoulli_mixture")
class BernoulliMixture(GenerativeModel, ExactLikelihood):
    Config = BernoulliMixtureConfig
    family = "mixture"
    value_types = ("binary",)
    citation = "Bishop (2006), Pattern Recognition and Machine Learning, Sec. 9.3.3"
    train_defaults = {"batch_size": None, "epochs": 50, "patience": 5}

    def __init__(self, config: BernoulliMixtureConfig, info):
        super().__init__(config, info)
        g = torch.Generator().manual_seed(config.init_seed)
        k, d = config.components, info.dim
        # Parameters are EM-updated, not gradient-trained: buffers keep them in checkpoints.
        self.register_buffer("log_weights", torch.full((k,), -torch.log(torch.tensor(float(k)))))
        self.register_buffer("probs", 0.25 + 0.5 * torch.rand(k, d, generator=g))
        self._dummy = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a device
        if config.init not in INITS:
            raise ValueError(f"unknown init {config.init!r}; choose one of {', '.join(INITS)}")
        if config.init == "data":
            # set from the first training batch; a buffer (only for this init, so that other
            # checkpoints keep their format) so that a resumed run does not initialise again
            self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def initialise_from_data(self, x: torch.Tensor) -> None:
        """mu_k = (x_(k) + mean x) / 2 for K training images x_(k) drawn with init_seed (with
        replacement when there are fewer than K), kept inside [0.01, 0.99]."""
        x = x.flatten(1)
        g = torch.Generator().manual_seed(self.config.init_seed)
        k = self.config.components
        rows = torch.randperm(len(x), generator=g)[:k] if len(x) >= k else torch.randint(len(x), (k,), generator=g)
        self.probs.copy_((0.5 * x[rows.to(x.device)] + 0.5 * x.mean(0)).clamp(0.01, 0.99))
        self.initialised.fill_(True)

    def component_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_n | mu_k), shape (n, K)."""
        x = x.flatten(1)
        return x @ self.probs.log().T + (1 - x) @ torch.log1p(-self.probs).T

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_likelihood(x) + self.log_weights, dim=1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    def configure_optimizers(self, train):
        return {}

    @torch.no_grad()
    def training_step(self, x, optimizers, train):
        if self.config.init == "data" and not bool(self.initialised):
            self.initialise_from_data(x)
        joint = self.component_log_likelihood(x) + self.log_weights
        log_px = torch.logsumexp(joint, dim=1, keepdim=True)
        resp = (joint - log_px).exp()  # E-step
        a, n_k = self.config.smoothing, resp.sum(0)
        self.probs.copy_((resp.T @ x.flatten(1) + a) / (n_k[:, None] + 2 * a))  # M-step
        self.log_weights.copy_(torch.log((n_k + a) / (len(x) + a * len(n_k))))
        return {"nll": -log_px.mean().item()}

    def num_parameters(self) -> int:
        return self.probs.numel() + self.log_weights.numel() - 1  # weights sum to one

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        component = torch.multinomial(self.log_weights.exp(), n, replacement=True)
        return torch.bernoulli(self.probs[component]).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"components": 20}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30}
