"""Fully connected Boltzmann machine (Ackley, Hinton & Sejnowski 1985): binary units
s = (v, h), every pair coupled (visible-visible, visible-hidden and hidden-hidden):

    E(s) = -a.s - 1/2 s^T J s,   J symmetric with zero diagonal,   p(s) = exp(-E(s)) / Z,
    p(s_i = 1 | s_-i) = sigmoid(a_i + (J s)_i),
    log p~(v) = log sum_h exp(-E(v, h))   (exact: 2^H terms; H is small).

The family's reference point: for tiny machines (visible + hidden <= ``exact_max_units``,
default 20) log Z is an exact sum over all 2^(D+H) states and training descends the exact
negative log-likelihood by autograd (both phases exact). Larger machines (the quick suite's
64 visible units) keep the exact positive phase and estimate the negative phase with
persistent chains of sequential Gibbs sweeps (Tieleman 2008); their log Z comes from AIS on
the joint state (dgmbench.metrics.ais):

    log f_beta(v, h) = (1 - beta) b_A.v - beta E(v, h),   Z_0 = 2^H prod_i (1 + exp(b_A,i)),

with the same single-site Gibbs sweeps at every beta. Units cannot be updated in blocks
(every pair is coupled), so a sweep is an inherent loop over the D + H units, vectorized
over chains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dgmbench.enumeration import bernoulli_log_partition, binary_states, logsumexp_over_binary_states
from dgmbench.models.base import EnergyBased, GenerativeModel, TrainConfig, register_model
from dgmbench.models.energy.rbm import _bernoulli

ENUMERATION_LIMIT = 25  # exact_max_units above this is refused
POSTERIOR_MAX_HIDDEN = 16  # log p~(v) and RAISE's h ~ p(h | v) enumerate the hiddens


@dataclass
class FCBMConfig:
    hidden: int = 4
    exact_max_units: int = 20  # exact log Z and exact gradients up to this many units in all
    pcd_chains: int = 100  # persistent chains when the negative phase cannot be enumerated
    sweeps: int = 1  # Gibbs sweeps per update for those chains
    init_std: float = 0.01
    sample_sweeps: int = 200


@register_model("fcbm")
class FullyConnectedBM(GenerativeModel, EnergyBased):
    Config = FCBMConfig
    family = "energy"
    value_types = ("binary",)
    citation = (
        "Ackley, Hinton & Sejnowski (1985), A learning algorithm for Boltzmann machines, "
        "Cognitive Science 9"
    )
    train_defaults = {"lr": 0.01}

    def __init__(self, config: FCBMConfig, info):
        super().__init__(config, info)
        if config.exact_max_units > ENUMERATION_LIMIT:
            raise ValueError(f"exact_max_units must be <= {ENUMERATION_LIMIT}")
        if config.hidden > POSTERIOR_MAX_HIDDEN:
            raise ValueError(f"hidden must be <= {POSTERIOR_MAX_HIDDEN}: log p~(v) enumerates the hiddens")
        units = info.dim + config.hidden
        self.units = units
        self.coupling_upper = nn.Parameter(torch.randn(units, units) * config.init_std)
        self.bias = nn.Parameter(torch.zeros(units))
        self.register_buffer("upper_mask", torch.triu(torch.ones(units, units), diagonal=1))
        chains = 0 if self.exact else config.pcd_chains
        self.register_buffer("persistent_chains", torch.bernoulli(torch.full((chains, units), 0.5)))

    @property
    def exact(self) -> bool:
        return self.units <= self.config.exact_max_units

    @property
    def coupling(self) -> torch.Tensor:
        """J: symmetric, zero diagonal."""
        upper = self.coupling_upper * self.upper_mask
        return upper + upper.T

    def negative_energy(self, s: torch.Tensor, dtype=None) -> torch.Tensor:
        coupling, bias = self.coupling, self.bias
        if dtype is not None:
            coupling, bias, s = coupling.to(dtype), bias.to(dtype), s.to(dtype)
        return s @ bias + 0.5 * ((s @ coupling) * s).sum(-1)

    # --- energy-based interface ----------------------------------------------------
    def _joint_with_all_hiddens(self, v: torch.Tensor, dtype) -> torch.Tensor:
        """-E(v, h) for every v (rows) and every hidden state (columns), shape (n, 2^H):
        the visible, hidden and visible-hidden parts of the quadratic form separately."""
        d = self.info.dim
        coupling, bias = self.coupling.to(dtype), self.bias.to(dtype)
        v = v.to(dtype)
        hidden = binary_states(0, 1 << self.config.hidden, self.config.hidden, v.device, dtype)
        visible_part = v @ bias[:d] + 0.5 * ((v @ coupling[:d, :d]) * v).sum(1)
        hidden_part = hidden @ bias[d:] + 0.5 * ((hidden @ coupling[d:, d:]) * hidden).sum(1)
        return visible_part[:, None] + hidden_part[None, :] + (v @ coupling[:d, d:]) @ hidden.T

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._joint_with_all_hiddens(x.flatten(1), torch.float64), dim=1)

    def exact_log_partition_feasible(self) -> bool:
        return self.exact

    def log_partition_by_enumeration(self, dtype=torch.float64) -> torch.Tensor:
        """Differentiable log Z over all 2^(D+H) states (tiny machines only)."""
        if not self.exact:
            raise ValueError(f"{self.units} units are too many to enumerate (exact_max_units={self.config.exact_max_units})")
        return logsumexp_over_binary_states(lambda s: self.negative_energy(s, dtype), self.units, self.bias.device, dtype=dtype)

    @torch.no_grad()
    def exact_log_partition(self) -> float:
        return float(self.log_partition_by_enumeration())

    def annealing_path(self, base: torch.Tensor) -> "FCBMAnnealingPath":
        return FCBMAnnealingPath(self, base)

    # --- Gibbs sampling -----------------------------------------------------------------
    @torch.no_grad()
    def gibbs_sweep(self, s: torch.Tensor, beta: float = 1.0, base_bias: torch.Tensor | None = None, generator=None):
        """One sequential sweep over all units of p_beta (beta = 1, no base: the model)."""
        coupling, bias = self.coupling.to(s.dtype), self.bias.to(s.dtype)
        field_bias = beta * bias
        if base_bias is not None:
            field_bias = field_bias.clone()
            field_bias[: self.info.dim] += (1 - beta) * base_bias
        s = s.clone()
        # s_i = 1 with probability sigmoid(field_i)  <=>  field_i > L_i, L_i ~ Logistic(0, 1):
        # drawing all of a sweep's noise up front leaves three small ops per unit.
        uniform = torch.rand(s.shape, generator=generator, device=s.device, dtype=s.dtype)
        thresholds = torch.log(uniform) - torch.log1p(-uniform) - field_bias
        scaled_coupling = beta * coupling
        for i in range(self.units):
            s[:, i] = s @ scaled_coupling[:, i] > thresholds[:, i]
        return s

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        s = torch.bernoulli(torch.full((n, self.units), 0.5, device=self.device))
        for _ in range(self.config.sample_sweeps):
            s = self.gibbs_sweep(s)
        return s[:, : self.info.dim].reshape(n, *self.info.shape)

    # --- training -----------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Exact mean NLL for tiny machines; otherwise the PCD surrogate
        -mean log p~(v) - mean E(s_chains), whose gradient estimates the NLL's."""
        positive = -self.unnormalized_log_prob(x).mean()
        if self.exact:
            return positive + self.log_partition_by_enumeration()
        with torch.no_grad():
            chains = self.persistent_chains
            for _ in range(self.config.sweeps):
                chains = self.gibbs_sweep(chains)
            self.persistent_chains.copy_(chains)
        return positive + self.negative_energy(self.persistent_chains).mean()

    def training_step(self, x, optimizers, train: TrainConfig) -> dict[str, float]:
        scalars = super().training_step(x, optimizers, train)
        return {("nll" if self.exact else "pcd_surrogate"): scalars["loss"]}

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        """Exact validation NLL for tiny machines; None (no early stopping) otherwise."""
        if not self.exact:
            return None
        return float(self.exact_log_partition() - self.unnormalized_log_prob(x).mean())

    DIGITS_CONFIG = {"hidden": 4, "pcd_chains": 100, "sample_sweeps": 50}

    @classmethod
    def quick_config(cls, info):
        """None: left out of the quick suite. On digits (64 visibles) exact log Z is out of
        reach (2^68 states), so evaluation needs AIS and sampling with single-unit Gibbs
        sweeps: ~1e5 sequential small kernels per evaluation (~10-30 s on 2 shared cores),
        over the quick suite's budget. The unit tests cover both branches (DIGITS_CONFIG for
        the PCD + AIS one); full runs use e.g. ``-o hidden=4``."""
        return None


class FCBMAnnealingPath:
    """Geometric path on the joint state s = (v, h) from the base-rate model (uniform h)."""

    def __init__(self, model: FullyConnectedBM, base_probs: torch.Tensor):
        self.model = model
        base_probs = base_probs.double().to(model.bias.device).flatten()
        self.base_bias = torch.log(base_probs) - torch.log1p(-base_probs)
        self.dim = model.info.dim
        self.log_z_base = float(bernoulli_log_partition(self.base_bias)) + model.config.hidden * math.log(2.0)

    def sample_base(self, n: int, generator):
        visible = _bernoulli(torch.sigmoid(self.base_bias).expand(n, -1).contiguous(), generator)
        hidden = _bernoulli(torch.full((n, self.model.config.hidden), 0.5, dtype=torch.float64, device=visible.device), generator)
        return torch.cat([visible, hidden], dim=1)

    def log_f(self, state, beta: float) -> torch.Tensor:
        return (1 - beta) * (state[:, : self.dim] @ self.base_bias) + beta * self.model.negative_energy(state, torch.float64)

    def transition(self, state, beta: float, generator):
        return self.model.gibbs_sweep(state, beta, self.base_bias, generator)

    @torch.no_grad()
    def data_state(self, x: torch.Tensor, generator):
        """(v, h) with h ~ p(h | v), drawn exactly from the enumerated posterior."""
        v = x.flatten(1).double()
        log_joint = self.model._joint_with_all_hiddens(v, torch.float64)
        index = torch.multinomial(torch.softmax(log_joint, dim=1), 1, generator=generator).squeeze(1)
        hidden = binary_states(0, 1 << self.model.config.hidden, self.model.config.hidden, v.device)[index]
        return torch.cat([v, hidden], dim=1)
