"""Gaussian-Bernoulli RBM for real-valued data, in the parameterization of Cho, Ilin & Raiko
(2011), "Improved learning of Gaussian-Bernoulli restricted Boltzmann machines":

    E(y, h) = sum_i (y_i - b_i)^2 / (2 s_i^2) - c.h - sum_ij (y_i / s_i^2) W_ij h_j,
    p(y_i | h) = N(b_i + (W h)_i, s_i^2),   p(h_j = 1 | y) = sigmoid(c_j + sum_i W_ij y_i / s_i^2),
    F(y) = sum_i (y_i - b_i)^2 / (2 s_i^2) - sum_j softplus(c_j + (W^T (y / s^2))_j),

with learned log-variances log s_i^2 (``learn_variance``) or s_i = 1 (Hinton 2010, practical guide).

The model sees y = (x - m) / d, a fixed affine standardization of the data (m, d: mean and
standard deviation of the first training batch, then frozen in buffers). The density on the
original scale carries the log-Jacobian: log p(x) = log p_y((x - m) / d) - sum_i log d_i, so
``unnormalized_log_prob`` includes -sum log d and all reported numbers are in nats on x.

Exact log Z sums the Gaussian visibles out analytically and enumerates the hiddens
(up to ~25): with mu = b + W h,

    log Z = logsumexp_h [ c.h + sum_i (mu_i^2 - b_i^2) / (2 s_i^2) ] + sum_i log sqrt(2 pi s_i^2).

AIS (dgmbench.metrics.ais) anneals geometrically from p_A(y, h) = N(y; mu_A, s^2) x
Uniform(h), mu_A the standardized training mean: with the shared variances every p_beta
stays Gaussian in y given h, N((1-beta) mu_A + beta (b + W h), s^2), and
p(h_j = 1 | y) = sigmoid(beta (c_j + (W^T (y / s^2))_j)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.enumeration import logsumexp_over_binary_states
from dgmbench.models.base import EnergyBased, GenerativeModel, TrainConfig, register_model
from dgmbench.models.energy.draws import as_draws, bernoulli
from dgmbench.models.energy.rbm import SummedOutLayerPath, _bernoulli, _softplus_sum

EXACT_MAX_HIDDEN = 25
VALIDATION_EXACT_MAX_HIDDEN = 16


@dataclass
class GBRBMConfig:
    """lr and weight_decay (W only) come from TrainConfig."""

    hidden: int = 500
    k: int = 1
    persistent: bool = False
    pcd_chains: int = 100
    momentum: float = 0.9
    learn_variance: bool = True  # learn log s^2 (Cho et al. 2011) or keep s = 1 on standardized data
    init_std: float = 0.01
    min_data_std: float = 0.01  # floor for the standardization's d_i (near-constant pixels)
    sample_steps: int = 1000


@register_model("gbrbm")
class GaussianBernoulliRBM(GenerativeModel, EnergyBased):
    Config = GBRBMConfig
    family = "energy"
    value_types = ("continuous",)
    citation = (
        "Cho, Ilin & Raiko (2011), Improved learning of Gaussian-Bernoulli restricted Boltzmann "
        "machines, ICANN; Hinton (2010), A practical guide to training RBMs"
    )
    train_defaults = {"lr": 0.01, "batch_size": 100}

    def __init__(self, config: GBRBMConfig, info):
        super().__init__(config, info)
        d = info.dim
        self.weight = nn.Parameter(torch.randn(d, config.hidden) * config.init_std)
        self.visible_bias = nn.Parameter(torch.zeros(d))
        self.hidden_bias = nn.Parameter(torch.zeros(config.hidden))
        self.log_variance = nn.Parameter(torch.zeros(d), requires_grad=config.learn_variance)
        self.register_buffer("data_mean", torch.zeros(d))
        self.register_buffer("data_std", torch.ones(d))
        self.register_buffer("standardization_fixed", torch.zeros((), dtype=torch.bool))
        chains = config.pcd_chains if config.persistent else 0
        self.register_buffer("persistent_chains", torch.randn(chains, d))

    # --- standardization -----------------------------------------------------------
    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.data_mean) / self.data_std

    def log_jacobian(self) -> torch.Tensor:
        """log |dy/dx| = -sum log d_i: added to every density on y to get one on x."""
        return -torch.log(self.data_std.double()).sum()

    # --- conditionals and free energy (on y) ------------------------------------------
    def _params(self, dtype=None):
        params = (self.weight, self.visible_bias, self.hidden_bias, self.log_variance)
        return params if dtype is None else tuple(p.to(dtype) for p in params)

    def hidden_logits(self, y: torch.Tensor) -> torch.Tensor:
        return (y * torch.exp(-self.log_variance)) @ self.weight + self.hidden_bias

    def sample_visible(self, h: torch.Tensor) -> torch.Tensor:
        mean = h @ self.weight.T + self.visible_bias
        return mean + torch.exp(0.5 * self.log_variance) * torch.randn_like(mean)

    def gibbs_step(self, y: torch.Tensor) -> torch.Tensor:
        return self.sample_visible(_bernoulli(torch.sigmoid(self.hidden_logits(y))))

    def free_energy(self, y: torch.Tensor, dtype=None) -> torch.Tensor:
        weight, visible_bias, hidden_bias, log_variance = self._params(dtype)
        y = y.to(weight.dtype)
        inverse_variance = torch.exp(-log_variance)
        quadratic = 0.5 * ((y - visible_bias) ** 2 * inverse_variance).sum(1)
        return quadratic - F.softplus((y * inverse_variance) @ weight + hidden_bias).sum(1)

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -self.free_energy(self.standardize(x), torch.float64) + self.log_jacobian()

    # --- partition function -----------------------------------------------------------
    def exact_log_partition_feasible(self) -> bool:
        return self.config.hidden <= EXACT_MAX_HIDDEN

    @torch.no_grad()
    def exact_log_partition(self) -> float:
        if not self.exact_log_partition_feasible():
            raise ValueError(f"{self.config.hidden} hidden units are too many to enumerate")
        weight, visible_bias, hidden_bias, log_variance = self._params(torch.float64)
        inverse_variance = torch.exp(-log_variance)

        def log_f(h):  # the visibles integrated out analytically
            mean = h @ weight.T + visible_bias
            return h @ hidden_bias + 0.5 * ((mean**2 - visible_bias**2) * inverse_variance).sum(1)

        gaussian = 0.5 * (math.log(2 * math.pi) + log_variance).sum()
        return float(logsumexp_over_binary_states(log_f, self.config.hidden, weight.device) + gaussian)

    def annealing_path(self, base: torch.Tensor, matmul_dtype=torch.float32) -> "GBRBMAnnealingPath":
        """`base` is the training mean on the original scale (dgmbench.metrics.ais.base_rate)."""
        base = base.to(self.data_mean.device, torch.float64).flatten()
        return GBRBMAnnealingPath(self, (base - self.data_mean.double()) / self.data_std.double(), matmul_dtype)

    # --- training -----------------------------------------------------------------------
    @torch.no_grad()
    def negative_phase(self, y_data: torch.Tensor) -> torch.Tensor:
        y = self.persistent_chains if self.config.persistent else y_data
        for _ in range(self.config.k):
            y = self.gibbs_step(y)
        if self.config.persistent:
            self.persistent_chains.copy_(y)
        return y

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        y = self.standardize(x)
        return self.free_energy(y).mean() - self.free_energy(self.negative_phase(y)).mean()

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        biases = [self.visible_bias, self.hidden_bias] + ([self.log_variance] if self.config.learn_variance else [])
        return {
            "model": torch.optim.SGD(
                [
                    {"params": [self.weight], "weight_decay": train.weight_decay},
                    {"params": biases, "weight_decay": 0.0},
                ],
                lr=train.lr,
                momentum=self.config.momentum,
            )
        }

    def training_step(self, x, optimizers, train: TrainConfig) -> dict[str, float]:
        if not bool(self.standardization_fixed):
            with torch.no_grad():
                flat = x.flatten(1)
                self.data_mean.copy_(flat.mean(0))
                self.data_std.copy_(flat.std(0).clamp(min=self.config.min_data_std))
                if self.config.persistent:
                    self.persistent_chains.normal_()
            self.standardization_fixed.fill_(True)
        (optimizer,) = optimizers.values()
        gap = self.contrastive_divergence_gradients(self.standardize(x))
        optimizer.step()
        return {"free_energy_gap": gap}

    @torch.no_grad()
    def contrastive_divergence_gradients(self, y_data: torch.Tensor) -> float:
        """The CD-k / PCD-k gradient of  mean F(y_data) - mean F(y_negative)  written into
        .grad from the statistics (no autograd; tests compare with autograd of ``loss``).
        With u = y / s^2, p = sigmoid(c + u W) and <.> means over the data (d) or the
        negatives (m):

            dL/dW = <u^T p>_m - <u^T p>_d,   dL/db = (<y>_m - <y>_d) / s^2,
            dL/dc = <p>_m - <p>_d,
            dL/d log s^2 = -(<(y - b)^2>_d - <(y - b)^2>_m) / (2 s^2) - sum_j W_ij (dL/dW)_ij,

        the last because d(u_i W_ij)/d log s_i^2 = -u_i W_ij. The random draws are those of
        ``negative_phase``, in the same order. Returns the free-energy difference."""
        weight, visible_bias, hidden_bias, log_variance = self._params()
        inverse_variance = torch.exp(-log_variance)

        def hidden_input_and_probs(y):
            hidden_input = torch.addmm(hidden_bias, y * inverse_variance, weight)
            return hidden_input, torch.sigmoid(hidden_input)

        data_input, data_probs = hidden_input_and_probs(y_data)
        y = self.persistent_chains if self.config.persistent else y_data
        hidden_input, probs = (data_input, data_probs) if not self.config.persistent else hidden_input_and_probs(y)
        for _ in range(self.config.k):
            mean = torch.addmm(visible_bias, _bernoulli(probs), weight.T)
            y = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
            hidden_input, probs = hidden_input_and_probs(y)
        if self.config.persistent:
            self.persistent_chains.copy_(y)
        n, m = y_data.shape[0], y.shape[0]
        grad_weight = torch.addmm(
            torch.mm((y * inverse_variance).T, probs), (y_data * inverse_variance).T, data_probs, beta=1.0 / m, alpha=-1.0 / n
        )
        square_data, square_negative = (y_data - visible_bias).square().mean(0), (y - visible_bias).square().mean(0)
        gradients = [
            (weight, grad_weight),
            (visible_bias, (y.mean(0) - y_data.mean(0)) * inverse_variance),
            (hidden_bias, probs.mean(0) - data_probs.mean(0)),
        ]
        if log_variance.requires_grad:
            grad_log_variance = -0.5 * (square_data - square_negative) * inverse_variance - (weight * grad_weight).sum(1)
            gradients.append((log_variance, grad_log_variance))
        for parameter, grad in gradients:
            parameter.grad = grad
        gap = 0.5 * ((square_data - square_negative) * inverse_variance).sum() - (
            _softplus_sum(data_input, data_probs) / n - _softplus_sum(hidden_input, probs) / m
        )
        return float(gap)

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        """Exact validation NLL (nats, original scale) for <= 16 hidden units; else None."""
        if self.config.hidden > VALIDATION_EXACT_MAX_HIDDEN:
            return None
        return float(self.exact_log_partition() - self.unnormalized_log_prob(x).mean())

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        y = torch.randn(n, self.info.dim, device=self.device)
        for _ in range(self.config.sample_steps):
            y = self.gibbs_step(y)
        return (y * self.data_std + self.data_mean).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 16, "k": 1, "persistent": True, "sample_steps": 300}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15, "lr": 0.01, "batch_size": 50}

    @classmethod
    def quick_variant(cls) -> str:
        return "dequantized"


class GBRBMAnnealingPath(SummedOutLayerPath):
    """Geometric path from N(mu_A, s^2) x Uniform(h) to the GB-RBM, on standardized y. In the
    form of SummedOutLayerPath (dgmbench.models.energy.rbm):

        log f_beta(y) = q_A(y) + beta (q(y) - q_A(y)) + sum_j softplus(beta a_j(y)),

    q_A(y) = -sum_i (y_i - mu_A,i)^2 / (2 s_i^2), q(y) the same about b, a(y) = c + (y / s^2) W;
    p_beta(y | h) = N(mu_A + beta (W h + b - mu_A), s^2). A state is
    (y, a(y), q(y) - q_A(y)); products, samples and increments in
    ``matmul_dtype`` (float32 unless asked), log-weights accumulated and ``log_f`` in float64."""

    def __init__(self, model: GaussianBernoulliRBM, base_mean: torch.Tensor, matmul_dtype=torch.float32):
        self.matmul_dtype = matmul_dtype
        weight, visible_bias, hidden_bias, log_variance = (p.detach() for p in model._params(torch.float64))
        self.weight_64, self.visible_bias_64, self.hidden_bias_64 = weight, visible_bias, hidden_bias
        self.inverse_variance_64 = torch.exp(-log_variance)
        self.base_mean_64 = base_mean
        self.weight, self.visible_bias, self.hidden_bias, self.inverse_variance, self.std, self.base_mean = (
            t.to(matmul_dtype) for t in (weight, visible_bias, hidden_bias, self.inverse_variance_64,
                                         torch.exp(0.5 * log_variance), base_mean)
        )
        self.mean_difference = self.visible_bias - self.base_mean  # b - mu_A
        self.data_mean, self.data_std = model.data_mean.double(), model.data_std.double()
        hidden = weight.shape[1]
        self.log_z_base = float(0.5 * (math.log(2 * math.pi) + log_variance).sum()) + hidden * math.log(2.0)

    def _state(self, y):
        y = y.to(self.matmul_dtype)
        hidden_input = torch.addmm(self.hidden_bias, y * self.inverse_variance, self.weight)
        quadratic = ((y - self.base_mean).square() - (y - self.visible_bias).square()) @ (0.5 * self.inverse_variance)
        return y, hidden_input, quadratic

    def sample_base(self, n: int, generator):
        noise = torch.randn(n, self.base_mean.numel(), generator=generator, device=self.base_mean.device,
                            dtype=self.matmul_dtype)
        return self._state(self.base_mean + self.std * noise)

    def log_f(self, state, beta: float) -> torch.Tensor:
        y, hidden_input = state[0].double(), state[1].double()
        quadratic = (1 - beta) * (y - self.base_mean_64) ** 2 + beta * (y - self.visible_bias_64) ** 2
        return -0.5 * (quadratic * self.inverse_variance_64).sum(1) + F.softplus(beta * hidden_input).sum(1)

    def _transition(self, state, probs: torch.Tensor, beta: float, draws):
        h = bernoulli(probs, draws)
        mean = torch.addmm(self.mean_difference, h, self.weight.T).mul_(beta).add_(self.base_mean)
        return self._state(mean.addcmul_(self.std, draws.normal(mean.shape, mean.device, mean.dtype)))

    def transition(self, state, beta: float, generator):
        return self._transition(state, torch.sigmoid(beta * state[1]), beta, as_draws(generator))

    def data_state(self, x: torch.Tensor, generator):
        """RAISE starts at the (standardized) data; the state is the visible vector itself."""
        return self._state((x.flatten(1).double() - self.data_mean) / self.data_std)
