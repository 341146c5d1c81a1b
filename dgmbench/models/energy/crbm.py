"""Convolutional RBM with probabilistic max-pooling (Lee, Grosse, Ranganath & Ng 2009).

Binary image v (1 x H x W); K groups of binary hidden maps h^k of size
(H - F + 1) x (W - F + 1) that share one F x F filter W^k and one bias b_k per group.
The hidden maps are cut into non-overlapping C x C blocks B_a, and at most one unit of a
block may be on (the pooling unit p_a^k = OR of its block). With the filter response

    I^k_ij(v) = b_k + (W^k * v)_ij                      (* = "valid" cross-correlation)

the energy with probabilistic max-pooling is (Lee et al. 2009, Sec. 3; written with
cross-correlation instead of the paper's flipped-filter convolution, which only relabels
the filter)

    E(v, h) = - sum_k sum_ij h^k_ij I^k_ij(v) - sum_ij c_ij v_ij,
              subject to  sum_{(i,j) in B_a} h^k_ij <= 1  for every block.

Given v every block is an independent categorical over "all off" and its C^2 units,

    P(h^k_ij = 1 | v) = exp(I^k_ij) / (1 + sum_{(i',j') in B_a} exp(I^k_i'j')),

so the hidden units sum out analytically:

    log p~(v) = -F(v) = sum_ij c_ij v_ij + sum_{k, a} log(1 + sum_{(i,j) in B_a} exp(I^k_ij)).

Given h the pixels are independent: P(v_ij = 1 | h) = sigmoid(c_ij + sum_k (W^k (*) h^k)_ij)
with (*) the "full" convolution (the transpose of the valid cross-correlation).
pool_size = 1 is the plain convolutional RBM without pooling (each block is one unit and
log(1 + exp(I)) = softplus(I)).

Differences from the paper, all documented choices: the visible bias is per pixel
(``shared_visible_bias=True`` gives the paper's single shared c); no sparsity
regulariser; training by CD-k or PCD (Tieleman 2008) with Adam on the free-energy
difference, whose gradient is exactly the CD/PCD estimate of the log-likelihood gradient:
d/dtheta [F(v_data) - F(v_model)] = -(E_{h|v_data}[-dE/dtheta] - E_{h|v_model}[-dE/dtheta]).

Log Z is estimated by AIS (Salakhutdinov & Murray 2008) from a base-rate model over v:
p_beta(v, h) ~ exp((1 - beta) a.v) exp(-beta E(v, h)), with h summed out analytically
in the AIS weights and Gibbs sampling (h | v, then v | h) as the transition.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.data.base import DataInfo
from dgmbench.enumeration import logsumexp_over_binary_states
from dgmbench.models.base import (
    EnergyBased,
    GenerativeModel,
    TrainConfig,
    register_model,
)
from dgmbench.models.energy.draws import as_draws, bernoulli

EXACT_MAX_PIXELS = 20  # exact log Z enumerates all 2^D binary images


def _bernoulli(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return bernoulli(torch.sigmoid(logits), as_draws(generator))


@register_model("crbm")
class ConvolutionalRBM(GenerativeModel, EnergyBased):
    """Convolutional RBM with probabilistic max-pooling over binary images."""

    @dataclass
    class Config:
        filters: int = 24  # K hidden groups
        filter_size: int = 5  # F
        pool_size: int = 2  # C; 1 = no pooling
        shared_visible_bias: bool = False  # True: one visible bias, as in Lee et al. 2009
        persistent: bool = True  # PCD (True) or CD-k (False)
        gibbs_steps: int = 1  # k Gibbs steps per update
        num_chains: int = 100  # persistent chains (PCD only)
        sample_steps: int = 1000  # Gibbs steps from noise in sample()
        init_std: float = 0.01

    family = "energy"
    value_types = ("binary",)
    citation = (
        "Lee, H., Grosse, R., Ranganath, R. & Ng, A. Y. (2009). Convolutional Deep Belief "
        "Networks for Scalable Unsupervised Learning of Hierarchical Representations. ICML."
    )

    def __init__(self, config: Config, info: DataInfo):
        super().__init__(config, info)
        if not info.is_image:
            raise ValueError(f"crbm needs images (C, H, W); {info.board} has shape {info.shape}")
        channels, height, width = info.shape
        hidden_h, hidden_w = height - config.filter_size + 1, width - config.filter_size + 1
        if hidden_h < 1 or hidden_w < 1:
            raise ValueError(f"filter_size {config.filter_size} exceeds the image size {height}x{width}")
        if hidden_h % config.pool_size or hidden_w % config.pool_size:
            raise ValueError(
                f"pool_size {config.pool_size} must divide the hidden map size {hidden_h}x{hidden_w} "
                f"(= image - filter_size + 1)"
            )
        self.hidden_shape = (config.filters, hidden_h, hidden_w)
        self.filters = nn.Parameter(
            config.init_std * torch.randn(config.filters, channels, config.filter_size, config.filter_size)
        )
        self.hidden_bias = nn.Parameter(torch.zeros(config.filters))
        visible_bias_shape = (1, 1, 1) if config.shared_visible_bias else info.shape
        self.visible_bias = nn.Parameter(torch.zeros(visible_bias_shape))
        # PCD fantasy particles live in a buffer so that checkpoints resume the chains.
        self.register_buffer("chains", torch.bernoulli(torch.full((config.num_chains, *info.shape), 0.5)))
        self.register_buffer("initialised", torch.tensor(False))

    # --- the pieces of the energy -------------------------------------------------
    def filter_response(self, v: torch.Tensor) -> torch.Tensor:
        """I^k_ij(v) = b_k + (W^k * v)_ij, shape (n, K, H', W'), in v's dtype."""
        weight = self.filters.to(v.dtype)
        return F.conv2d(v, weight, self.hidden_bias.to(v.dtype))

    def _blocks(self, maps: torch.Tensor) -> torch.Tensor:
        """(n, K, H', W') -> (n, K, H'/C, W'/C, C*C): each pooling block on the last axis."""
        n, k, h, w = maps.shape
        c = self.config.pool_size
        blocks = maps.reshape(n, k, h // c, c, w // c, c).permute(0, 1, 2, 4, 3, 5)
        return blocks.reshape(n, k, h // c, w // c, c * c)

    def _unblocks(self, blocks: torch.Tensor) -> torch.Tensor:
        n, k, ph, pw, _ = blocks.shape
        c = self.config.pool_size
        maps = blocks.reshape(n, k, ph, pw, c, c).permute(0, 1, 2, 4, 3, 5)
        return maps.reshape(n, k, ph * c, pw * c)

    def block_response(self, v: torch.Tensor) -> torch.Tensor:
        """The filter responses I(v) grouped by pooling block, (n, K, H'/C, W'/C, C*C)."""
        return self._blocks(self.filter_response(v))

    @staticmethod
    def _log_normalizer(blocks: torch.Tensor) -> torch.Tensor:
        """sum_{k,a} log(1 + sum_{(i,j) in B_a} exp(I^k_ij)) = sum softplus(logsumexp_{B_a} I), (n,)."""
        return F.softplus(torch.logsumexp(blocks, dim=-1)).flatten(1).sum(1)

    def _visible_term(self, v: torch.Tensor) -> torch.Tensor:
        return (v * self.visible_bias.to(v.dtype)).flatten(1).sum(1)

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p~(v) = -F(v): the hidden units summed out analytically (module docstring)."""
        return self._visible_term(x) + self._log_normalizer(self.block_response(x))

    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        return -self.unnormalized_log_prob(x)

    # --- block Gibbs sampling -----------------------------------------------------
    @staticmethod
    def sample_hidden_blocks(blocks: torch.Tensor, generator=None) -> torch.Tensor:
        """h ~ P(h | v) in block layout from the (possibly tempered) responses: one categorical
        per block over {off, unit 1, ..., unit C^2} (logits 0, I_1, ..., I_C^2), drawn with
        the Gumbel-max trick."""
        uniform = as_draws(generator).uniform((*blocks.shape[:-1], blocks.shape[-1] + 1), blocks.device)
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-30))).to(blocks.dtype)
        best, choice = (blocks + gumbel[..., 1:]).max(dim=-1)
        unit_on = (best > gumbel[..., 0]).to(blocks.dtype)  # else the "off" state wins
        return F.one_hot(choice, blocks.shape[-1]).to(blocks.dtype) * unit_on[..., None]

    def sample_hidden(self, response: torch.Tensor, generator=None) -> torch.Tensor:
        """h ~ P(h | v) as maps (n, K, H', W') from the filter responses I(v)."""
        return self._unblocks(self.sample_hidden_blocks(self._blocks(response), generator))

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        """c + sum_k W^k (*) h^k: the transpose of the valid cross-correlation."""
        return F.conv_transpose2d(h, self.filters.to(h.dtype)) + self.visible_bias.to(h.dtype)

    def gibbs_step(self, v: torch.Tensor, generator=None) -> torch.Tensor:
        h = self.sample_hidden(self.filter_response(v), generator)
        return _bernoulli(self.visible_logits(h), generator)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        v = torch.bernoulli(torch.full((n, *self.info.shape), 0.5, device=self.device))
        for _ in range(self.config.sample_steps):
            v = self.gibbs_step(v)
        return v

    # --- training: CD-k / PCD -----------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean free energy of x: the data term of the NLL (NLL = F(x) + log Z). The model
        is trained by CD/PCD in training_step, not by minimising this alone."""
        return self.free_energy(x).mean()

    @torch.no_grad()
    def _negative_particles(self, x: torch.Tensor) -> torch.Tensor:
        v = self.chains if self.config.persistent else x
        for _ in range(self.config.gibbs_steps):
            v = self.gibbs_step(v)
        if self.config.persistent:
            self.chains.copy_(v)
        return v

    def training_step(self, x, optimizers, train: TrainConfig) -> dict[str, float]:
        if not bool(self.initialised):
            # Visible biases start at the log-odds of the data (Hinton 2010, practical guide).
            with torch.no_grad():
                dims = (0, 1, 2, 3) if self.config.shared_visible_bias else (0,)
                p = x.mean(dims, keepdim=True).reshape(self.visible_bias.shape).clamp(0.01, 0.99)
                self.visible_bias.copy_(torch.logit(p))
            self.initialised.fill_(True)
        (opt,) = optimizers.values()
        negatives = self._negative_particles(x)
        data_free_energy, surrogate = self.contrastive_divergence_gradients(x, negatives)
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        with torch.no_grad():
            hidden = self.sample_hidden(self.filter_response(x))
            reconstruction = torch.sigmoid(self.visible_logits(hidden))
            reconstruction_error = (reconstruction - x).square().flatten(1).sum(1).mean()
        return {
            "free_energy_gap": surrogate,
            "data_free_energy": data_free_energy,
            "reconstruction_error": reconstruction_error.item(),
        }

    @torch.no_grad()
    def contrastive_divergence_gradients(self, x: torch.Tensor, negatives: torch.Tensor) -> tuple[float, float]:
        """The gradient of  mean F(x) - mean F(negatives)  written into .grad directly (no
        autograd; tests compare with autograd of the surrogate). With P^k_ij = P(h^k_ij = 1 | v)
        (module docstring), dF/dI^k_ij = -P^k_ij, so

            dL/dW^k = <P^k (*) v>_negatives - <P^k (*) v>_data   ((*): valid cross-correlation
                      of the image with the probability map, i.e. conv2d's weight gradient),
            dL/db_k = <sum_ij P^k_ij>_negatives - <...>_data,   dL/dc = <v>_negatives - <v>_data,

        one weight-gradient correlation over the data and the negatives stacked. Returns
        (mean F(x), the free-energy difference)."""
        n, m = x.shape[0], negatives.shape[0]
        both = torch.cat([x, negatives.to(x.dtype)])
        blocks = self.block_response(both)
        # log(1 + sum_{B_a} exp(I)) per block, and P = exp(I - that) for every unit of the block
        log_normalizer = F.softplus(torch.logsumexp(blocks, dim=-1))
        probs = self._unblocks(torch.exp(blocks - log_normalizer[..., None]))
        scale = torch.cat([probs.new_full((n,), -1.0 / n), probs.new_full((m,), 1.0 / m)])
        weighted = probs * scale[:, None, None, None]
        visible_weight = scale.view(-1, *([1] * (both.dim() - 1)))
        visible_grad = (both * visible_weight).sum(0)
        if self.config.shared_visible_bias:
            visible_grad = visible_grad.sum().reshape(self.visible_bias.shape)
        for parameter, grad in (
            (self.filters, torch.nn.grad.conv2d_weight(both, self.filters.shape, weighted)),
            (self.hidden_bias, weighted.sum((0, 2, 3))),
            (self.visible_bias, visible_grad),
        ):
            parameter.grad = grad
        free_energy = -(self._visible_term(both) + log_normalizer.flatten(1).sum(1))
        data_free_energy = free_energy[:n].mean()
        return float(data_free_energy), float(data_free_energy - free_energy[n:].mean())

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        """Stochastic pseudo-likelihood, D * -log p(v_i | v_-i) for one seeded random pixel i
        per example (as scikit-learn's BernoulliRBM.score_samples): log Z cancels in the
        conditional, so it is comparable across epochs at the cost of two free energies."""
        n, dim = x.shape[0], self.info.dim
        flip = torch.randint(dim, (n,), generator=torch.Generator().manual_seed(0)).to(x.device)
        flipped = x.flatten(1).clone()
        rows = torch.arange(n, device=x.device)
        flipped[rows, flip] = 1 - flipped[rows, flip]
        flipped = flipped.view_as(x)
        log_conditional = -F.softplus(self.free_energy(x) - self.free_energy(flipped))
        return float(-dim * log_conditional.mean())

    # --- log Z --------------------------------------------------------------------
    def annealing_path(self, base: torch.Tensor) -> CRBMAnnealingPath:
        return CRBMAnnealingPath(self, base)

    def exact_log_partition_feasible(self) -> bool:
        return self.info.dim <= EXACT_MAX_PIXELS

    @torch.no_grad()
    def exact_log_partition(self, chunk_size: int = 1 << 14) -> float:
        """log Z = log sum_v exp(log p~(v)) over all 2^D images, in float64 (the hidden
        layer is larger and already summed out analytically in log p~(v))."""
        if not self.exact_log_partition_feasible():
            raise ValueError(f"exact log Z enumerates 2^{self.info.dim} images (> 2^{EXACT_MAX_PIXELS})")

        def log_p_tilde(states: torch.Tensor) -> torch.Tensor:
            return self.unnormalized_log_prob(states.view(-1, *self.info.shape))

        return float(logsumexp_over_binary_states(log_p_tilde, self.info.dim, self.device, chunk_size))

    @classmethod
    def quick_config(cls, info: DataInfo) -> dict | None:
        # 200 Gibbs steps per sample: the sample metrics draw ~1000 samples several times.
        return {"filters": 16, "filter_size": 5, "pool_size": 2, "sample_steps": 200}

    @classmethod
    def quick_train(cls, info: DataInfo) -> dict:
        return {"epochs": 8, "batch_size": 50, "lr": 1e-2}


class CRBMAnnealingPath:
    """AIS path from the base-rate model p_A(v) = prod sigmoid(a)^v (1-sigmoid(a))^(1-v) to
    the CRBM (the RBM path of Salakhutdinov & Murray 2008, with a pooled hidden layer):

        log f_beta(v) = (1 - beta) a.v + beta c.v + sum_{k,a} log(1 + sum_{B_a} exp(beta I^k_ij(v)))

    is log sum_h exp((1 - beta) a.v - beta E(v, h)). At beta = 0 the hidden blocks are
    uniform over their C^2 + 1 states, so Z_0 = prod_i (1 + e^{a_i}) * (1 + C^2)^(#blocks).
    A state is (v, I(v) in block layout) in float64, so each temperature costs one
    convolution per Gibbs half-step. The Gibbs kernel on v is reversible (it is
    sum_h p(h|v) p(v'|h)), so RAISE can run the path backwards.
    """

    def __init__(self, model: ConvolutionalRBM, base: torch.Tensor, eps: float = 1e-6):
        self.model = model
        self.shape = model.info.shape
        probabilities = base.to(device=model.device, dtype=torch.float64).reshape(self.shape)
        self.base_logits = torch.logit(probabilities.clamp(eps, 1 - eps))
        self.visible_bias = model.visible_bias.detach().double()
        c = model.config.pool_size
        num_blocks = math.prod(model.hidden_shape) // (c * c)
        self.log_z_base = F.softplus(self.base_logits).sum().item() + num_blocks * math.log(1 + c * c)

    def _state(self, v: torch.Tensor):
        v = v.double()
        return v, self.model.block_response(v)

    @torch.no_grad()
    def sample_base(self, n: int, generator: torch.Generator):
        return self._state(_bernoulli(self.base_logits.expand(n, *self.shape), generator))

    @torch.no_grad()
    def log_f(self, state, beta: float) -> torch.Tensor:
        v, blocks = state
        linear = (v * ((1 - beta) * self.base_logits + beta * self.visible_bias)).flatten(1).sum(1)
        return linear + self.model._log_normalizer(beta * blocks)

    @torch.no_grad()
    def transition(self, state, beta: float, generator):
        model = self.model
        hidden = model._unblocks(model.sample_hidden_blocks(beta * state[1], generator))
        logits = (1 - beta) * self.base_logits + beta * model.visible_logits(hidden)
        return self._state(_bernoulli(logits, generator))

    @torch.no_grad()
    def data_state(self, x: torch.Tensor, generator):
        return self._state(x.reshape(-1, *self.shape))
