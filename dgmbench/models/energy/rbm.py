"""Restricted Boltzmann machine with binary visible and hidden units (Smolensky 1986;
Hinton 2002), trained by contrastive divergence (CD-k) or persistent CD (Tieleman 2008).

    E(v, h) = -b.v - c.h - v^T W h,          p(v, h) = exp(-E(v, h)) / Z
    F(v)    = -b.v - sum_j softplus(c_j + (v^T W)_j)       (free energy, p(v) = exp(-F(v)) / Z)
    p(h_j = 1 | v) = sigmoid(c_j + (v^T W)_j),   p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)

The log-likelihood gradient is  -dF(v_data)/dtheta + E_model[dF(v)/dtheta]; CD-k replaces
the model expectation by visibles after k block-Gibbs steps started at the data, PCD by
persistent chains that are never reset. Both are the autograd gradient of the surrogate
loss  mean F(v_data) - mean F(v_negative)  with v_negative held fixed (dF/dW = -v p(h|v)^T,
i.e. Hinton's "use probabilities for the hidden statistics"). Updates are SGD with momentum;
weight decay (L2) applies to W only (Hinton 2010, "A practical guide to training RBMs").

log Z is exact by enumerating the smaller layer (up to ~25 units) and otherwise estimated by
AIS from a base-rate model (dgmbench.metrics.ais; Salakhutdinov & Murray 2008):

    log f_beta(v) = (1-beta) b_A.v + beta b.v + sum_j softplus(beta (c_j + (v^T W)_j)),

whose Gibbs conditionals are p(h|v) = sigmoid(beta(c + v^T W)), p(v|h) = sigmoid((1-beta) b_A
+ beta (b + W h)), and Z_0 = 2^H prod_i (1 + exp(b_A,i)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.enumeration import bernoulli_log_partition, logsumexp_over_binary_states
from dgmbench.models.base import EnergyBased, GenerativeModel, TrainConfig, register_model

EXACT_MAX_UNITS = 25  # enumerate 2^25 states at most (chunked; minutes at 784 visibles)
VALIDATION_EXACT_MAX_UNITS = 16  # exact NLL as the early-stopping score below this size


def _bernoulli(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    # Comparing with float32 uniforms is ~2-3x faster than torch.bernoulli on CPU.
    uniform = torch.rand(probs.shape, generator=generator, device=probs.device)
    return (uniform < probs).to(probs.dtype)


class BernoulliRBMLayer(nn.Module):
    """The binary-binary RBM's parameters and its conditionals; also the building block of the
    DBN (dgmbench.models.energy.dbn). Works on flat (n, visible) tensors."""

    def __init__(self, visible: int, hidden: int, init_std: float = 0.01):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(visible, hidden) * init_std)
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))

    @property
    def visible(self) -> int:
        return self.weight.shape[0]

    @property
    def hidden(self) -> int:
        return self.weight.shape[1]

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(v @ self.weight + self.hidden_bias)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h @ self.weight.T + self.visible_bias)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), shape (n,)."""
        return -(v @ self.visible_bias) - F.softplus(v @ self.weight + self.hidden_bias).sum(1)

    def free_energy_float64(self, v: torch.Tensor) -> torch.Tensor:
        """The free energy evaluated in float64 (for likelihoods; training uses the float32 one)."""
        v = v.double()
        return -(v @ self.visible_bias.double()) - F.softplus(
            v @ self.weight.double() + self.hidden_bias.double()
        ).sum(1)

    def hidden_free_energy_float64(self, h: torch.Tensor) -> torch.Tensor:
        """F(h) = -log sum_v exp(-E(v, h)): the other layer summed out, float64, shape (n,)."""
        h = h.double()
        return -(h @ self.hidden_bias.double()) - F.softplus(
            h @ self.weight.double().T + self.visible_bias.double()
        ).sum(1)

    def gibbs_step(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """v -> h ~ p(h|v) -> v' ~ p(v|h)."""
        h = _bernoulli(self.hidden_probs(v), generator)
        return _bernoulli(self.visible_probs(h), generator)

    def contrastive_divergence_loss(self, v_data: torch.Tensor, v_negative: torch.Tensor) -> torch.Tensor:
        """Surrogate whose gradient is the CD/PCD estimate of -d log p(v_data)/dtheta."""
        return self.free_energy(v_data).mean() - self.free_energy(v_negative.detach()).mean()

    def exact_log_partition_feasible(self) -> bool:
        return min(self.visible, self.hidden) <= EXACT_MAX_UNITS

    @torch.no_grad()
    def exact_log_partition(self, chunk_size: int = 1 << 14) -> float:
        """log Z, summing the larger layer out analytically and enumerating the smaller one."""
        if not self.exact_log_partition_feasible():
            raise ValueError(f"an RBM with layers {self.visible} x {self.hidden} is too large to enumerate")
        if self.hidden <= self.visible:
            log_f, bits = (lambda h: -self.hidden_free_energy_float64(h)), self.hidden
        else:
            log_f, bits = (lambda v: -self.free_energy_float64(v)), self.visible
        return float(logsumexp_over_binary_states(log_f, bits, self.weight.device, chunk_size))

    def annealing_path(self, base_probs: torch.Tensor, matmul_dtype=torch.float32) -> "RBMAnnealingPath":
        return RBMAnnealingPath(self, base_probs, matmul_dtype)


class RBMAnnealingPath:
    """The geometric path from the base-rate model to the RBM (module docstring). A state is
    (v, c + v^T W) so each temperature costs two matrix products: one per Gibbs half-step.

    The matrix products (the cost) run in ``matmul_dtype``; every log f is evaluated and
    accumulated in float64. With float32 products the cached pre-activations carry relative
    errors ~1e-7, which enter the log-weights only through differences f_k / f_{k-1} at one
    state, so the total error is below sum_j |error_j| ~ H x 1e-6 nats (5e-4 at H = 500):
    far under AIS's own noise; tests compare both precisions on the same random numbers."""

    def __init__(self, layer: BernoulliRBMLayer, base_probs: torch.Tensor, matmul_dtype=torch.float32):
        self.matmul_dtype = matmul_dtype
        self.weight = layer.weight.detach().to(matmul_dtype)
        self.visible_bias = layer.visible_bias.detach().double()
        self.hidden_bias = layer.hidden_bias.detach().to(matmul_dtype)
        base_probs = base_probs.double().to(self.weight.device).flatten()
        self.base_bias = torch.log(base_probs) - torch.log1p(-base_probs)
        self.log_z_base = float(bernoulli_log_partition(self.base_bias)) + layer.hidden * math.log(2.0)

    def _state(self, v: torch.Tensor):
        v = v.to(self.matmul_dtype)
        return v, v @ self.weight + self.hidden_bias

    def sample_base(self, n: int, generator):
        probs = torch.sigmoid(self.base_bias).expand(n, -1)
        return self._state(_bernoulli(probs.contiguous(), generator))

    def log_f(self, state, beta: float) -> torch.Tensor:
        v, hidden_input = state
        visible_term = v.double() @ ((1 - beta) * self.base_bias + beta * self.visible_bias)
        return visible_term + F.softplus(beta * hidden_input.double()).sum(1)

    def transition(self, state, beta: float, generator):
        _, hidden_input = state
        h = _bernoulli(torch.sigmoid(beta * hidden_input), generator)
        visible_logits = (1 - beta) * self.base_bias + beta * ((h @ self.weight.T).double() + self.visible_bias)
        return self._state(_bernoulli(torch.sigmoid(visible_logits), generator))

    def data_state(self, x: torch.Tensor, generator):
        return self._state(x.flatten(1))


@dataclass
class RBMConfig:
    """Learning rate and weight decay come from TrainConfig (lr, weight_decay; weight decay
    acts on W only); the defaults below follow Salakhutdinov & Murray 2008 / Hinton 2010."""

    hidden: int = 500
    k: int = 1  # Gibbs steps per negative phase (CD-k, or per update for PCD)
    persistent: bool = False  # PCD (Tieleman 2008) instead of CD
    pcd_chains: int = 100  # number of persistent fantasy particles
    # SGD momentum. Hinton's guide uses 0.5, then 0.9; one value here. On digits (16 hidden,
    # lr 0.05, 30 epochs) PCD with 0.9 oscillates (exact valid NLL 23.3 best, 26.7 last)
    # while 0.5 reaches 19.9; CD-1 is insensitive (19.3 vs 19.5).
    momentum: float = 0.5
    init_std: float = 0.01  # N(0, init_std^2) weights; biases 0 (visible biases set from data on first step)
    init_visible_bias_from_data: bool = True  # b_i = log(p_i / (1 - p_i)) of the first batch (Hinton 2010, sec. 8)
    sample_steps: int = 1000  # block-Gibbs steps from random noise for sample(n)
    validation_flips: int = 8  # pseudo-likelihood coordinates per validation example (large RBMs)


@register_model("rbm")
class RBM(GenerativeModel, EnergyBased):
    Config = RBMConfig
    family = "energy"
    value_types = ("binary",)
    citation = (
        "Hinton (2002), Training products of experts by minimizing contrastive divergence, Neural "
        "Computation; Tieleman (2008), Training RBMs using approximations to the likelihood gradient, "
        "ICML; Salakhutdinov & Murray (2008), On the quantitative analysis of DBNs, ICML"
    )
    train_defaults = {"lr": 0.05, "batch_size": 100}

    def __init__(self, config: RBMConfig, info):
        super().__init__(config, info)
        self.layer = BernoulliRBMLayer(info.dim, config.hidden, config.init_std)
        chains = config.pcd_chains if config.persistent else 0
        # Persistent chains are state to resume: a buffer, saved with every checkpoint.
        self.register_buffer("persistent_chains", torch.bernoulli(torch.full((chains, info.dim), 0.5)))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    # --- energy-based interface ----------------------------------------------------
    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -self.layer.free_energy_float64(x.flatten(1))

    def exact_log_partition_feasible(self) -> bool:
        return self.layer.exact_log_partition_feasible()

    def exact_log_partition(self) -> float:
        return self.layer.exact_log_partition()

    def annealing_path(self, base: torch.Tensor) -> RBMAnnealingPath:
        return self.layer.annealing_path(base)

    # --- training -----------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The CD-k surrogate (its value is a free-energy difference, not a likelihood)."""
        v = x.flatten(1)
        return self.layer.contrastive_divergence_loss(v, self.negative_phase(v))

    @torch.no_grad()
    def negative_phase(self, v_data: torch.Tensor) -> torch.Tensor:
        v = self.persistent_chains if self.config.persistent else v_data
        for _ in range(self.config.k):
            v = self.layer.gibbs_step(v)
        if self.config.persistent:
            self.persistent_chains.copy_(v)
        return v

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        layer = self.layer
        return {
            "model": torch.optim.SGD(
                [
                    {"params": [layer.weight], "weight_decay": train.weight_decay},
                    {"params": [layer.visible_bias, layer.hidden_bias], "weight_decay": 0.0},
                ],
                lr=train.lr,
                momentum=self.config.momentum,
            )
        }

    def training_step(self, x, optimizers, train: TrainConfig) -> dict[str, float]:
        v = x.flatten(1)
        if self.config.init_visible_bias_from_data and not bool(self.initialised):
            with torch.no_grad():
                p = v.mean(0).clamp(0.01, 0.99)
                self.layer.visible_bias.copy_(torch.log(p) - torch.log1p(-p))
            self.initialised.fill_(True)
        (optimizer,) = optimizers.values()
        optimizer.zero_grad(set_to_none=True)
        negative = self.negative_phase(v)
        loss = self.layer.contrastive_divergence_loss(v, negative)
        loss.backward()
        optimizer.step()
        # mean F(data) - mean F(negatives); nothing else is logged, so that a step costs
        # exactly one CD/PCD update (what the benchmarks time)
        return {"free_energy_gap": loss.item()}

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        """Exact validation NLL when the smaller layer has <= 16 units (cheap enumeration).
        Otherwise a stochastic pseudo-likelihood, -D mean_i log p(v_i | v_-i) over
        ``validation_flips`` random coordinates i per example (scikit-learn's BernoulliRBM
        score uses one): a consistent, cheap proxy for the NLL's trend; the coordinates are
        seeded, so every epoch is scored on the same ones."""
        v = x.flatten(1)
        if min(self.layer.visible, self.layer.hidden) <= VALIDATION_EXACT_MAX_UNITS:
            return float(self.layer.exact_log_partition() - self.unnormalized_log_prob(v).mean())
        n, d = v.shape
        flips = self.config.validation_flips
        generator = torch.Generator().manual_seed(0)
        coordinate = torch.randint(d, (n * flips,), generator=generator).to(v.device)
        original = v.repeat_interleave(flips, dim=0)
        flipped = original.clone()
        rows = torch.arange(n * flips, device=v.device)
        flipped[rows, coordinate] = 1 - flipped[rows, coordinate]
        log_conditional = -F.softplus(self.layer.free_energy(original) - self.layer.free_energy(flipped))
        return float(-d * log_conditional.mean())

    # --- sampling -----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        v = torch.bernoulli(torch.full((n, self.info.dim), 0.5, device=self.device))
        for _ in range(self.config.sample_steps):
            v = self.layer.gibbs_step(v)
        return v.view(n, *self.info.shape)

    # --- quick suite --------------------------------------------------------------
    @classmethod
    def quick_config(cls, info):
        return {"hidden": 16, "k": 1, "persistent": True, "pcd_chains": 100, "sample_steps": 500}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "lr": 0.05, "batch_size": 50}
