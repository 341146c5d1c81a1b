"""Deep Boltzmann machine with two hidden layers (Salakhutdinov & Hinton 2009).

Binary v (D), h1 (H1), h2 (H2), no connections within a layer (biases included):

    E(v, h1, h2) = - v.W1.h1 - h1.W2.h2 - b.v - c1.h1 - c2.h2,   p(v) = sum_h exp(-E) / Z.

Learning (S&H 2009): the gradient of log p(v) is E_{p(h|v)}[-dE] - E_p[-dE].
* Data term: a fully factorised mean-field posterior q(h1, h2 | v) = prod Bernoulli(mu),
  found by the mean-field fixed-point equations, updated layer by layer so the bound below
  never decreases:   mu1 <- sigmoid(v.W1 + W2.mu2 + c1),   mu2 <- sigmoid(mu1.W2 + c2),
  started from the bottom-up pass of the pretrained model, mu1 = sigmoid(2 v.W1 + c1).
* Model term: persistent Gibbs chains (PCD / stochastic approximation, Tieleman 2008),
  alternating h1 | (v, h2) and (v, h2) | h1; the chains are buffers, so resuming works.
Both terms enter one surrogate loss whose gradient is exactly that estimate:
  loss = -mean_data E_q[-E(v, h)] + mean_chains[-E(v~, h~)]   (mu and chains held fixed).

Greedy layer-wise pretraining (S&H 2009), run by the same training_step for the first
2 * pretrain_updates minibatch updates:
1. the bottom RBM (v, h1) with the visible layer doubled: two tied copies of v, so
   p(h1 | v) = sigmoid(2 v.W1 + c1) and p(v | h1) = sigmoid(W1.h1 + b), trained by CD-k;
2. the top RBM (h1, h2) with the hidden layer doubled: p(h2 | h1) = sigmoid(h1.W2 + c2),
   p(h1 | h2) = sigmoid(2 W2.h2 + a), trained by CD-k on sigmoid(2 v.W1 + c1); its own
   bias a on h1 is used only here (the DBM keeps c1 from step 1).

Evaluation. For any q, log p(v) >= E_q[log p~(v, h)] + H(q) - log Z, with

    E_q[log p~(v, h)] = v.W1.mu1 + mu1.W2.mu2 + b.v + c1.mu1 + c2.mu2   (q factorises).

log Z comes from AIS (Salakhutdinov & Murray 2008) on the states (v, h2) with h1 summed
out analytically (as S&H 2009 do), starting from a base-rate model over v and uniform
h2 (and h1):

    log f_beta(v, h2) = (1 - beta) a.v + beta (b.v + c2.h2) + sum_j softplus(beta (v.W1 + W2.h2 + c1)_j),

with Gibbs sampling h1 | (v, h2), then (v, h2) | h1 at inverse temperature beta.
The metric ``dbm_vlb`` (dgmbench/metrics/dbm_bound.py) reports the negated bound with AIS log Z ("vlb_nll", a stochastic
estimate of a bound) and, for small models, the exact NLL by enumeration; ``dbm_raise``
reports RAISE (Burda, Grosse & Salakhutdinov 2015) through the same path run backwards from
the data, its reverse chain started from the mean-field q(h2 | v) and weighted for it
(DBMAnnealingPath): a stochastic lower bound on log p(v) of the annealing model.

The joint phase's gradient is computed from the statistics and written into .grad (the
surrogate above defines it; tests check it against autograd of the surrogate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.data.base import DataInfo
from dgmbench.enumeration import logsumexp_over_binary_states
from dgmbench.models.base import GenerativeModel, TrainConfig, register_model
from dgmbench.models.energy.draws import as_draws, bernoulli
from dgmbench.models.energy.rbm import SummedOutLayerPath


def _bernoulli(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return bernoulli(torch.sigmoid(logits), as_draws(generator))


def _bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(Bernoulli(sigmoid(l))) = softplus(l) - l sigmoid(l), stable for large |l|."""
    return F.softplus(logits) - logits * torch.sigmoid(logits)


@register_model("dbm")
class DeepBoltzmannMachine(GenerativeModel):
    """Two-hidden-layer DBM over binary vectors (images are flattened)."""

    @dataclass
    class Config:
        hidden1: int = 500
        hidden2: int = 1000
        pretrain_updates: int = 0  # minibatch updates per pretrained layer (0: no pretraining)
        pretrain_cd_steps: int = 1
        mean_field_steps: int = 10  # fixed-point sweeps during training
        eval_mean_field_steps: int = 50  # and for the bound at evaluation
        gibbs_steps: int = 5  # Gibbs sweeps of the persistent chains per update (S&H 2009)
        num_chains: int = 100
        sample_steps: int = 1000
        init_std: float = 0.01

    family = "energy"
    value_types = ("binary",)
    citation = (
        "Salakhutdinov, R. & Hinton, G. (2009). Deep Boltzmann Machines. AISTATS."
    )

    def __init__(self, config: Config, info: DataInfo):
        super().__init__(config, info)
        d, h1, h2 = info.dim, config.hidden1, config.hidden2
        self.W1 = nn.Parameter(config.init_std * torch.randn(d, h1))
        self.W2 = nn.Parameter(config.init_std * torch.randn(h1, h2))
        self.b = nn.Parameter(torch.zeros(d))
        self.c1 = nn.Parameter(torch.zeros(h1))
        self.c2 = nn.Parameter(torch.zeros(h2))
        self.pretrain_top_visible_bias = nn.Parameter(torch.zeros(h1))  # "a" of step 2 only
        half = torch.full((config.num_chains,), 0.5)
        self.register_buffer("chain_v", torch.bernoulli(half[:, None].expand(-1, d)))
        self.register_buffer("chain_h1", torch.bernoulli(half[:, None].expand(-1, h1)))
        self.register_buffer("chain_h2", torch.bernoulli(half[:, None].expand(-1, h2)))
        self.register_buffer("updates_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))

    # --- energy, conditionals ------------------------------------------------------
    def _params(self, dtype):
        return (p.to(dtype) for p in (self.W1, self.W2, self.b, self.c1, self.c2))

    def neg_energy(self, v, h1, h2) -> torch.Tensor:
        """-E(v, h1, h2) per example; also E_q[-E] when given the mean-field means."""
        W1, W2, b, c1, c2 = self._params(v.dtype)
        return ((v @ W1) * h1).sum(1) + ((h1 @ W2) * h2).sum(1) + v @ b + h1 @ c1 + h2 @ c2

    def h1_logits(self, v, h2):
        return v @ self.W1.to(v.dtype) + h2 @ self.W2.to(v.dtype).T + self.c1.to(v.dtype)

    def v_logits(self, h1):
        return h1 @ self.W1.to(h1.dtype).T + self.b.to(h1.dtype)

    def h2_logits(self, h1):
        return h1 @ self.W2.to(h1.dtype) + self.c2.to(h1.dtype)

    def gibbs_sweep(self, v, h1, h2, generator=None):
        """h1 | (v, h2), then v and h2 (conditionally independent) | h1."""
        h1 = _bernoulli(self.h1_logits(v, h2), generator)
        return _bernoulli(self.v_logits(h1), generator), h1, _bernoulli(self.h2_logits(h1), generator)

    # --- mean-field posterior and the variational bound --------------------------
    def mean_field(self, v: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of q(h1|v) and q(h2|v) after `steps` layer-wise fixed-point sweeps."""
        W1, W2, _, c1, c2 = self._params(v.dtype)
        bottom_up = v @ W1 + c1
        logits1 = bottom_up + v @ W1  # the doubled bottom-up pass of the pretrained model
        logits2 = torch.sigmoid(logits1) @ W2 + c2
        for _ in range(steps):
            logits1 = bottom_up + torch.sigmoid(logits2) @ W2.T
            logits2 = torch.sigmoid(logits1) @ W2 + c2
        return logits1, logits2

    def unnormalized_bound(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """E_q[log p~(v, h)] + H(q), per example: the bound on log p(v) plus log Z."""
        v = x.flatten(1)
        logits1, logits2 = self.mean_field(v, self.config.eval_mean_field_steps if steps is None else steps)
        mu1, mu2 = torch.sigmoid(logits1), torch.sigmoid(logits2)
        entropy = _bernoulli_entropy(logits1).sum(1) + _bernoulli_entropy(logits2).sum(1)
        return self.neg_energy(v, mu1, mu2) + entropy

    # --- exact quantities by enumeration (small hidden layers only) ---------------
    @torch.no_grad()
    def exact_unnormalized_log_prob(self, x: torch.Tensor, max_units: int = 20) -> torch.Tensor:
        """log p~(v) = b.v + logsumexp_{h2} [c2.h2 + sum_j softplus(v.W1 + W2.h2 + c1)_j],
        enumerating the 2^H2 states of h2 (h1 summed out analytically), float64."""
        if self.config.hidden2 > max_units:
            raise ValueError(
                f"exact log p~(v) enumerates 2^{self.config.hidden2} states of h2 (> 2^{max_units})"
            )
        v = x.flatten(1).double()
        W1, W2, b, c1, c2 = self._params(torch.float64)
        bottom_up = v @ W1

        def log_f(h2: torch.Tensor) -> torch.Tensor:  # (m, H2) -> (m, n)
            return F.softplus(bottom_up[None] + (h2 @ W2.T + c1)[:, None, :]).sum(-1) + (h2 @ c2)[:, None]

        chunk = max(1, (1 << 22) // max(1, len(v) * self.config.hidden1))  # bounds memory
        return v @ b + logsumexp_over_binary_states(log_f, self.config.hidden2, v.device, chunk)

    @torch.no_grad()
    def exact_log_partition(self, max_units: int = 20) -> float:
        """log Z = logsumexp_{h1} [c1.h1 + sum_i softplus(W1.h1 + b)_i + sum_l softplus(h1.W2 + c2)_l]:
        given h1, v and h2 are independent, so only the 2^H1 states of h1 are enumerated."""
        if self.config.hidden1 > max_units:
            raise ValueError(f"exact log Z enumerates 2^{self.config.hidden1} states of h1 (> 2^{max_units})")
        W1, W2, b, c1, c2 = self._params(torch.float64)

        def log_f(h1: torch.Tensor) -> torch.Tensor:
            return h1 @ c1 + F.softplus(h1 @ W1.T + b).sum(1) + F.softplus(h1 @ W2 + c2).sum(1)

        return float(logsumexp_over_binary_states(log_f, self.config.hidden1, W1.device, 1 << 14))

    # --- sampling -----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        device = self.device
        half = lambda size: torch.bernoulli(torch.full((n, size), 0.5, device=device))
        v, h1, h2 = half(self.info.dim), half(self.config.hidden1), half(self.config.hidden2)
        for _ in range(self.config.sample_steps):
            v, h1, h2 = self.gibbs_sweep(v, h1, h2)
        return v.reshape(n, *self.info.shape)

    # --- training -----------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negated unnormalised bound -E_q[log p~(v,h)] - H(q): the bound on the NLL
        up to log Z. Training uses training_step (mean field + PCD), not this alone."""
        return -self.unnormalized_bound(x, self.config.mean_field_steps).mean()

    def _pretrain_bottom(self, v0: torch.Tensor) -> torch.Tensor:
        """CD-k surrogate for the bottom RBM with two tied copies of v (module docstring)."""
        W1, b, c1 = self.W1, self.b, self.c1

        def neg_energy(v, v_copy, h):  # -E of the doubled-input RBM
            return ((v + v_copy) @ W1 * h).sum(1) + (v + v_copy) @ b + h @ c1

        with torch.no_grad():
            h_data = torch.sigmoid(2 * v0 @ W1 + c1)
            h = _bernoulli(2 * v0 @ W1 + c1)
            for _ in range(self.config.pretrain_cd_steps):
                v, v_copy = _bernoulli(self.v_logits(h)), _bernoulli(self.v_logits(h))
                h_logits = (v + v_copy) @ W1 + c1
                h_model, h = torch.sigmoid(h_logits), _bernoulli(h_logits)
        return -neg_energy(v0, v0, h_data).mean() + neg_energy(v, v_copy, h_model).mean()

    def _pretrain_top(self, v0: torch.Tensor) -> torch.Tensor:
        """CD-k surrogate for the top RBM with two tied copies of h2 (module docstring),
        trained on the bottom RBM's posterior means sigmoid(2 v.W1 + c1)."""
        W2, a, c2 = self.W2, self.pretrain_top_visible_bias, self.c2

        def neg_energy(h1, h2, h2_copy):  # -E of the doubled-hidden RBM
            return (h1 @ W2 * (h2 + h2_copy)).sum(1) + h1 @ a + (h2 + h2_copy) @ c2

        with torch.no_grad():
            h1_data = torch.sigmoid(2 * v0 @ self.W1 + self.c1)
            top_data = torch.sigmoid(h1_data @ W2 + c2)
            h2, h2_copy = _bernoulli(h1_data @ W2 + c2), _bernoulli(h1_data @ W2 + c2)
            for _ in range(self.config.pretrain_cd_steps):
                h1 = _bernoulli((h2 + h2_copy) @ W2.T + a)
                top_model = torch.sigmoid(h1 @ W2 + c2)
                h2, h2_copy = _bernoulli(h1 @ W2 + c2), _bernoulli(h1 @ W2 + c2)
        return -neg_energy(h1_data, top_data, top_data).mean() + neg_energy(h1, top_model, top_model).mean()

    @torch.no_grad()
    def _joint(self, v: torch.Tensor) -> torch.Tensor:
        """The joint update's gradient, written into .grad directly from the statistics (no
        autograd): the surrogate's gradient is <-dE/dtheta>_chains - <-dE/dtheta>_q, e.g.
        dL/dW1 = <v h1^T>_chains - <v mu1^T>_data, dL/dW2 = <h1 h2^T>_chains - <mu1 mu2^T>_data
        (tests compare with autograd of the surrogate). Returns the surrogate's value."""
        logits1, logits2 = self.mean_field(v, self.config.mean_field_steps)
        mu1, mu2 = torch.sigmoid(logits1), torch.sigmoid(logits2)
        chains = (self.chain_v, self.chain_h1, self.chain_h2)
        for _ in range(self.config.gibbs_steps):
            chains = self.gibbs_sweep(*chains)
        for buffer, state in zip((self.chain_v, self.chain_h1, self.chain_h2), chains):
            buffer.copy_(state)
        chain_v, chain_h1, chain_h2 = chains
        n, m = v.shape[0], chain_v.shape[0]

        def difference_of_outer_products(model_left, model_right, data_left, data_right):
            return torch.addmm(torch.mm(model_left.T, model_right), data_left.T, data_right, beta=1.0 / m, alpha=-1.0 / n)

        for parameter, grad in (
            (self.W1, difference_of_outer_products(chain_v, chain_h1, v, mu1)),
            (self.W2, difference_of_outer_products(chain_h1, chain_h2, mu1, mu2)),
            (self.b, chain_v.mean(0) - v.mean(0)),
            (self.c1, chain_h1.mean(0) - mu1.mean(0)),
            (self.c2, chain_h2.mean(0) - mu2.mean(0)),
        ):
            parameter.grad = grad
        return -self.neg_energy(v, mu1, mu2).mean() + self.neg_energy(*chains).mean()

    @property
    def phase(self) -> str:
        done, per_layer = int(self.updates_done), self.config.pretrain_updates
        return "pretrain_bottom" if done < per_layer else "pretrain_top" if done < 2 * per_layer else "joint"

    def training_step(self, x, optimizers, train: TrainConfig) -> dict[str, float]:
        v = x.flatten(1)
        if not bool(self.initialised):
            # Visible biases start at the log-odds of the data (Hinton 2010, practical guide).
            with torch.no_grad():
                self.b.copy_(torch.logit(v.mean(0).clamp(0.01, 0.99)))
            self.initialised.fill_(True)
        (opt,) = optimizers.values()
        phase = self.phase
        opt.zero_grad(set_to_none=True)
        step = {
            "pretrain_bottom": self._pretrain_bottom,
            "pretrain_top": self._pretrain_top,
            "joint": self._joint,
        }[phase]
        surrogate = step(v)
        if phase != "joint":  # the joint phase writes its gradient itself (_joint)
            surrogate.backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        self.updates_done += 1
        with torch.no_grad():
            reconstruction = torch.sigmoid(self.v_logits(torch.sigmoid(self.mean_field(v, 0)[0])))
            reconstruction_error = (reconstruction - v).square().sum(1).mean()
        return {
            "surrogate": surrogate.item(),
            "reconstruction_error": reconstruction_error.item(),
            "pretraining": float(phase != "joint"),
        }

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        # The bound needs log Z, which moves with every update, and AIS per epoch is too
        # costly: train for the configured epochs.
        return None

    def annealing_path(self, base: torch.Tensor, matmul_dtype=torch.float32) -> DBMAnnealingPath:
        return DBMAnnealingPath(self, base, matmul_dtype)

    @classmethod
    def quick_config(cls, info: DataInfo) -> dict | None:
        # Small enough that the exact NLL is enumerable, so the quick suite shows the gap
        # between the exact value and the AIS-estimated variational bound.
        return {"hidden1": 16, "hidden2": 12, "pretrain_updates": 26, "sample_steps": 500}

    @classmethod
    def quick_train(cls, info: DataInfo) -> dict:
        return {"epochs": 10, "batch_size": 100, "lr": 2e-2}


class DBMAnnealingPath(SummedOutLayerPath):
    """AIS over the states (v, h2) with h1 summed out (module docstring). The base model,
    p_0(v, h2) = prod_i Bernoulli(v_i; sigmoid(a_i)) * 2^-H2, keeps the factor 2^H1 of the
    uniform h1 in f_0, so Z_0 = prod_i (1 + e^{a_i}) * 2^(H1 + H2). In the form of
    SummedOutLayerPath, log f_beta = a.v + beta (v.(b - a) + c2.h2) + sum_j softplus(beta x_j)
    with x = v.W1 + W2.h2 + c1; a state is (v, h2, x, v.(b - a) + c2.h2),
    so each temperature costs one product per layer, in ``matmul_dtype`` (float32 unless
    asked; log-weights are accumulated in float64 and ``log_f`` is evaluated in float64).

    RAISE (``raise_start``): the reverse chain must start from (v, h2) with h2 drawn given
    the data, but p(h2 | v) of a DBM is intractable. It starts instead from the mean-field
    posterior q(h2 | v) (factorial, exact log-density) and puts q into the weight:

        w = f_1(v, h2) / (q(h2 | v) Z_0) * prod_k f_{k-1}(x_{k-1}) / f_k(x_{k-1}),

    an importance weight on the extended space (h2, x_{K-1}, ..., x_0) whose proposal is
    q(h2 | v) times the reverse chain and whose target is the forward annealing chain, so
    E[w] = sum_{h2} p_fwd(v, h2) = p_fwd(v) exactly for any q with full support: log w is a
    stochastic lower bound on log p_fwd(v) ~ log p(v), as RAISE's (Burda et al. 2015) is
    for an RBM; a poorer q only lowers it further (by about KL(q || p_fwd(h2 | v)) in
    expectation). Tests check E[w] = p_fwd(v) against the exact forward-chain marginal."""

    def __init__(self, model: DeepBoltzmannMachine, base: torch.Tensor, matmul_dtype=torch.float32):
        self.model = model
        self.matmul_dtype = matmul_dtype
        self.W1_64, self.W2_64, self.b_64, self.c1_64, self.c2_64 = (p.detach() for p in model._params(torch.float64))
        self.W1, self.W2, self.c1, self.c2 = (p.to(matmul_dtype) for p in (self.W1_64, self.W2_64, self.c1_64, self.c2_64))
        probabilities = base.to(device=self.W1.device, dtype=torch.float64).reshape(-1)
        self.base_logits = torch.logit(probabilities.clamp(1e-6, 1 - 1e-6))
        hidden = model.config.hidden1 + model.config.hidden2
        self.log_z_base = F.softplus(self.base_logits).sum().item() + hidden * math.log(2)
        self.base_logits_matmul = self.base_logits.to(matmul_dtype)
        self.bias_difference = (self.b_64 - self.base_logits).to(matmul_dtype)  # b - a

    def _state(self, v, h2):
        v, h2 = v.to(self.matmul_dtype), h2.to(self.matmul_dtype)
        h1_input = torch.addmm(self.c1, v, self.W1).addmm_(h2, self.W2.T)
        return v, h2, h1_input, v @ self.bias_difference + h2 @ self.c2

    @torch.no_grad()
    def sample_base(self, n: int, generator: torch.Generator):
        v = _bernoulli(self.base_logits.expand(n, -1), generator)
        h2 = _bernoulli(torch.zeros(n, self.model.config.hidden2, device=v.device, dtype=v.dtype), generator)
        return self._state(v, h2)

    @torch.no_grad()
    def log_f(self, state, beta: float) -> torch.Tensor:
        v, h2, h1_input = state[0].double(), state[1].double(), state[2].double()
        linear = v @ ((1 - beta) * self.base_logits + beta * self.b_64) + beta * (h2 @ self.c2_64)
        return linear + F.softplus(beta * h1_input).sum(1)

    def _hidden_input_bound(self) -> float:
        # x_j = c1_j + sum_i v_i W1_ij + sum_k W2_jk h2_k over binary (v, h2) lies between
        # c1_j plus the sums of the negative and of the positive weights into unit j
        W1, W2, c1 = self.W1.double(), self.W2.double(), self.c1.double()
        highest = c1 + W1.clamp(min=0).sum(0) + W2.clamp(min=0).sum(1)
        lowest = c1 + W1.clamp(max=0).sum(0) + W2.clamp(max=0).sum(1)
        return float(torch.maximum(highest.abs(), lowest.abs()).max())

    def _transition(self, state, probs: torch.Tensor, beta: float, draws):
        h1 = bernoulli(probs, draws)
        v_bias = torch.add(self.base_logits_matmul, self.bias_difference, alpha=beta)
        v = bernoulli(torch.addmm(v_bias, h1, self.W1.T, alpha=beta).sigmoid_(), draws)
        h2 = bernoulli(torch.addmm(self.c2, h1, self.W2, beta=beta, alpha=beta).sigmoid_(), draws)
        return self._state(v, h2)

    @torch.no_grad()
    def transition(self, state, beta: float, generator):
        return self._transition(state, torch.sigmoid(beta * state[2]), beta, as_draws(generator))

    @torch.no_grad()
    def raise_start(self, x: torch.Tensor, generator) -> tuple[tuple, torch.Tensor]:
        """RAISE's first state and log-weight (class docstring): h2 ~ q(h2 | v), the
        mean-field posterior after ``eval_mean_field_steps`` sweeps, and
        log f_1(v, h2) - log q(h2 | v) - log Z_0, float64, shape (n,)."""
        v = x.flatten(1).to(self.W1_64.device, torch.float64)
        _, logits2 = self.model.mean_field(v, self.model.config.eval_mean_field_steps)
        h2 = _bernoulli(logits2, generator)
        log_q = (h2 * logits2 - F.softplus(logits2)).sum(1)
        h1_input = v @ self.W1_64 + h2 @ self.W2_64.T + self.c1_64
        log_f1 = v @ self.b_64 + h2 @ self.c2_64 + F.softplus(h1_input).sum(1)
        return self._state(v, h2), log_f1 - log_q - self.log_z_base
