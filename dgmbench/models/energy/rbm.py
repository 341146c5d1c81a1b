"""Restricted Boltzmann machine with binary visible and hidden units (Smolensky 1986;
Hinton 2002), trained by contrastive divergence (CD-k) or persistent CD (Tieleman 2008).

    E(v, h) = -b.v - c.h - v^T W h,          p(v, h) = exp(-E(v, h)) / Z
    F(v)    = -b.v - sum_j softplus(c_j + (v^T W)_j)       (free energy, p(v) = exp(-F(v)) / Z)
    p(h_j = 1 | v) = sigmoid(c_j + (v^T W)_j),   p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)

The log-likelihood gradient is  -dF(v_data)/dtheta + E_model[dF(v)/dtheta]; CD-k replaces
the model expectation by visibles after k block-Gibbs steps started at the data, PCD by
persistent chains that are never reset. Both are the gradient of the surrogate loss
mean F(v_data) - mean F(v_negative)  with v_negative held fixed, which training computes
directly from the sufficient statistics (Hinton's "use probabilities for the hidden
statistics"), with p = p(h = 1 | v) = sigmoid(c + v^T W):

    dL/dW = <v p^T>_negative - <v p^T>_data,   dL/db = <v>_negative - <v>_data,
    dL/dc = <p>_negative - <p>_data,

two matrix products for the statistics plus the 2k + 1 of the Gibbs chain and the data's
p(h|v), written into the parameters' .grad (no autograd graph; tests check them against
autograd of the surrogate). Updates are SGD with momentum; weight decay (L2) applies to W
only (Hinton 2010, "A practical guide to training RBMs"). Optional schedules, counted in
updates, follow the training code released with Salakhutdinov & Murray 2008: momentum 0.5
then 0.9 (``final_momentum``), and k growing from 1 with the learning rate divided by the
current k (``k_increase_updates``).

log Z is exact by enumerating the smaller layer (up to ~25 units) and otherwise estimated by
AIS from a base-rate model (dgmbench.metrics.ais; Salakhutdinov & Murray 2008):

    log f_beta(v) = (1-beta) b_A.v + beta b.v + sum_j softplus(beta (c_j + (v^T W)_j)),

whose Gibbs conditionals are p(h|v) = sigmoid(beta(c + v^T W)), p(v|h) = sigmoid((1-beta) b_A
+ beta (b + W h)), and Z_0 = 2^H prod_i (1 + exp(b_A,i)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.enumeration import bernoulli_log_partition, logsumexp_over_binary_states
from dgmbench.models.base import EnergyBased, GenerativeModel, TrainConfig, register_model
from dgmbench.models.energy.draws import as_draws, bernoulli, fast_draws

EXACT_MAX_UNITS = 25  # enumerate 2^25 states at most (chunked; minutes at 784 visibles)
VALIDATION_EXACT_MAX_UNITS = 16  # exact NLL as the early-stopping score below this size


def _bernoulli(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return bernoulli(probs, as_draws(generator))


def _softplus_sum(x: torch.Tensor, sigmoid_x: torch.Tensor) -> torch.Tensor:
    """sum softplus(x) given s = sigmoid(x), for a logged scalar: softplus(x) = max(x, 0) -
    log max(s, 1 - s), accurate for either sign (the larger of s, 1 - s is >= 1/2, so its
    log loses nothing). The logs are taken of products of up to 100 such factors (each >= 1/2,
    so a product stays above 2^-100, inside float32's range): ~15x cheaper than F.softplus on
    CPU, where that sum would cost 5% of a CD-1 step."""
    larger = (sigmoid_x - 0.5).abs_().add_(0.5)  # max(s, 1 - s)
    log_larger = sum(chunk.prod(1).log().sum() for chunk in larger.split(100, dim=1))
    return torch.relu(x).sum() - log_larger


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

    @torch.no_grad()
    def contrastive_divergence_gradients(
        self, v_data: torch.Tensor, v_start: torch.Tensor | None, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, float]:
        """One CD-k (``v_start`` None: chains start at the data) or PCD-k update's gradient.

        Runs k block-Gibbs steps from the start, then writes into ``.grad`` of W, b, c the
        gradient of  mean F(v_data) - mean F(v_negative)  (module docstring) computed from
        the statistics directly. The random draws are those of k ``gibbs_step`` calls, in the
        same order. Returns (v_negative, that free-energy difference)."""
        weight, visible_bias, hidden_bias = self.weight, self.visible_bias, self.hidden_bias
        data_input = torch.addmm(hidden_bias, v_data, weight)
        data_probs = torch.sigmoid(data_input)
        v = v_data if v_start is None else v_start
        hidden_input, probs = (data_input, data_probs) if v_start is None else self._hidden_input_and_probs(v)
        for _ in range(k):
            h = _bernoulli(probs, generator)
            v = _bernoulli(torch.sigmoid(torch.addmm(visible_bias, h, weight.T)), generator)
            hidden_input, probs = self._hidden_input_and_probs(v)
        n, m = v_data.shape[0], v.shape[0]
        # <v p^T>_negative - <v p^T>_data as one accumulation of two products
        grad_weight = torch.addmm(torch.mm(v.T, probs), v_data.T, data_probs, beta=1.0 / m, alpha=-1.0 / n)
        mean_v_data, mean_v = v_data.mean(0), v.mean(0)
        for parameter, grad in (
            (weight, grad_weight),
            (visible_bias, mean_v - mean_v_data),
            (hidden_bias, probs.mean(0) - data_probs.mean(0)),
        ):
            parameter.grad = grad
        # mean F(data) - mean F(negative), from quantities already at hand (for the log)
        gap = -(mean_v_data - mean_v) @ visible_bias - (
            _softplus_sum(data_input, data_probs) / n - _softplus_sum(hidden_input, probs) / m
        )
        return v, float(gap)

    def _hidden_input_and_probs(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_input = torch.addmm(self.hidden_bias, v, self.weight)
        return hidden_input, torch.sigmoid(hidden_input)

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


class SummedOutLayerPath:
    """The fast annealing loop shared by the paths whose intermediate densities have one
    binary layer summed out analytically (the RBM's h; the DBM's h1; the GB-RBM's h):

        log f_beta(x) = l_0(x) + beta l(x) + sum_j softplus(beta a_j(x)),

    with a(x) that layer's input. A state carries (..., a(x), l(x)) in the path's matmul
    dtype. Between two temperatures f -> t at one state,

        log f_t(x) - log f_f(x) = (t - f) l(x) - sum_j log1p(sigmoid(t a_j) expm1((f - t) a_j)),

    (softplus(y + e) - softplus(y) = log1p(sigmoid(y) expm1(e))), where sigmoid(t a) is also
    the summed-out layer's Gibbs probability at t, shared with the transition. Each term is
    computed from the increment itself, not as a difference of softplus values (~1e3 nats):
    differences of float32 softplus or log-sigmoid values carry rounding errors that do not
    cancel and, summed over 500 units x 14,500 temperatures, bias log Z by ~0.01 nats; this
    form does not. It is evaluated in float64 as 1 + p (e^x - 1), x = (f - t) a, with exp
    (vectorised on CPU, where torch's expm1/log1p are not), and the sum of logs over the
    layer is taken as the log of the product (one log per chain instead of one per unit;
    each factor lies in [e^-|x|, e^|x|], so the product cannot overflow while H max|x| < 700,
    and its rounding, H float64 ulps, is ~1e-13 nats per temperature): given the state's a
    and p, each term's absolute error is ~1e-16 nats (e^x - 1 loses ~|log10 x| digits of 16,
    and the term is ~p x), ~1e-9 nats over a whole standard run. This is 2.5x faster than the
    float32 form with Kahan's and Goldberg's expm1/log1p corrections it replaces (measured on
    50 x 500, 1 thread), whose error was a few float32 ulps of each term. Log-weights are
    accumulated in float64; a temperature step with |(t - f) a| > 15 somewhere (coarse
    schedules only) uses the softplus difference in float64 instead. Whether a step can be
    that large is decided from a bound on |a| over all states where the path has one
    (``_hidden_input_bound``; the standard schedule stays far below it), so most
    temperatures skip a pass over a.

    Random draws come from ``draws.fast_draws`` (numpy's SFC64 on CPU, seeded from the
    caller's generator). Subclasses provide ``_transition(state, probs, beta, draws)``: one
    Gibbs sweep at beta given probs = sigmoid(beta a) of the current state."""

    LARGE_STEP = 15.0  # |(t - f) a| beyond which p's rounding near 0 or 1 could matter: softplus form
    MAX_PRODUCT_EXPONENT = 700.0  # H max|x| below which the product of the factors stays in float64's range

    @staticmethod
    def _hidden_input(state) -> torch.Tensor:
        return state[-2]

    def _hidden_input_bound(self) -> float:
        """An upper bound on |a_j(x)| over every state x (math.inf when none is known)."""
        return math.inf

    def _increment(self, state, beta_from: float, beta_to: float, probs_to: torch.Tensor,
                   bound: float = math.inf, buffer: torch.Tensor | None = None) -> torch.Tensor:
        hidden_input, linear = state[-2], state[-1]
        step = beta_from - beta_to
        reach = abs(step) * bound
        if reach > self.LARGE_STEP:
            reach = abs(step) * float(hidden_input.abs().max())
        if reach > self.LARGE_STEP:
            hidden_input = hidden_input.double()
            softplus_difference = F.softplus(beta_to * hidden_input) - F.softplus(beta_from * hidden_input)
            return (beta_to - beta_from) * linear.double() + softplus_difference.sum(1)
        if buffer is None:
            buffer = torch.empty(hidden_input.shape, dtype=torch.float64, device=hidden_input.device)
        factors = buffer.copy_(hidden_input).mul_(step).exp_().sub_(1).mul_(probs_to).add_(1)
        if reach * hidden_input.shape[1] < self.MAX_PRODUCT_EXPONENT:
            log_ratio = factors.prod(1).log_()
        else:
            log_ratio = factors.log_().sum(1)
        return (beta_to - beta_from) * linear.double() - log_ratio

    @torch.no_grad()
    def anneal(self, state, betas: list[float], generator=None, transition_first: bool = False):
        """Sum over consecutive temperatures of log f_{beta_j}(x) - log f_{beta_{j-1}}(x), with
        x moved by the transition at beta_j after each interior increment (AIS's weight when
        the betas ascend; with ``transition_first``, a transition at betas[0] first: RAISE's
        reverse chain when they descend). Returns (final state, float64 log-weights)."""
        hidden_input = self._hidden_input(state)
        draws = fast_draws(generator, hidden_input.device)
        bound = self._hidden_input_bound()
        # reused at every temperature: the increments' float64 factors and the probabilities
        buffer = torch.empty(hidden_input.shape, dtype=torch.float64, device=hidden_input.device)
        probs = torch.empty_like(hidden_input)
        log_w = torch.zeros(hidden_input.shape[0], dtype=torch.float64, device=hidden_input.device)
        if transition_first:
            state = self._transition(state, torch.sigmoid(hidden_input * betas[0]), betas[0], draws)
        last = len(betas) - 1
        for j in range(1, last + 1):
            beta_from, beta_to = betas[j - 1], betas[j]
            torch.mul(self._hidden_input(state), beta_to, out=probs).sigmoid_()
            log_w += self._increment(state, beta_from, beta_to, probs, bound, buffer)
            if j < last:
                state = self._transition(state, probs, beta_to, draws)
        return state, log_w


class RBMAnnealingPath(SummedOutLayerPath):
    """The geometric path from the base-rate model to the RBM (module docstring). A state is
    (v, a = c + v^T W, v.(b - b_A)), so each temperature costs two matrix
    products, one per Gibbs half-step; by linearity the visible logits of p_beta(v | h) are
    b_A + beta (W h + b - b_A), with no per-temperature mixing of the biases.

    The matrix products and the per-temperature increments (SummedOutLayerPath) run in
    ``matmul_dtype``; ``log_f`` is evaluated in float64 and log-weights are accumulated in
    float64. With float32 the cached pre-activations carry relative errors ~1e-7, which
    enter the log-weights only through differences f_k / f_{k-1} at one state, so the
    total error is far under AIS's own noise; tests compare both precisions on the same
    random numbers."""

    def __init__(self, layer: BernoulliRBMLayer, base_probs: torch.Tensor, matmul_dtype=torch.float32):
        self.matmul_dtype = matmul_dtype
        self.weight = layer.weight.detach().to(matmul_dtype)
        self.visible_bias = layer.visible_bias.detach().double()
        self.hidden_bias = layer.hidden_bias.detach().to(matmul_dtype)
        base_probs = base_probs.double().to(self.weight.device).flatten()
        self.base_bias = torch.log(base_probs) - torch.log1p(-base_probs)
        self.log_z_base = float(bernoulli_log_partition(self.base_bias)) + layer.hidden * math.log(2.0)
        self.base_bias_matmul = self.base_bias.to(matmul_dtype)
        self.bias_difference = (self.visible_bias - self.base_bias).to(matmul_dtype)  # b - b_A

    def _state(self, v: torch.Tensor):
        v = v.to(self.matmul_dtype)
        hidden_input = torch.addmm(self.hidden_bias, v, self.weight)
        return v, hidden_input, v @ self.bias_difference

    def sample_base(self, n: int, generator):
        probs = torch.sigmoid(self.base_bias).expand(n, -1)
        return self._state(_bernoulli(probs.contiguous(), generator))

    def log_f(self, state, beta: float) -> torch.Tensor:
        v, hidden_input = state[0].double(), state[1]
        visible_term = v @ self.base_bias + beta * (v @ (self.visible_bias - self.base_bias))
        return visible_term + F.softplus(beta * hidden_input.double()).sum(1)

    def _hidden_input_bound(self) -> float:
        # a_j = c_j + sum_i v_i W_ij over v in {0,1}^D lies between c_j + (the sum of W_j's
        # negative entries) and c_j + (the sum of its positive ones)
        weight, hidden_bias = self.weight.double(), self.hidden_bias.double()
        highest = hidden_bias + weight.clamp(min=0).sum(0)
        lowest = hidden_bias + weight.clamp(max=0).sum(0)
        return float(torch.maximum(highest.abs(), lowest.abs()).max())

    def _transition(self, state, probs: torch.Tensor, beta: float, draws):
        h = bernoulli(probs, draws)
        # visible logits b_A + beta (b - b_A) + beta W h: the bias part is a (D,) vector and
        # beta scales the product inside the matrix kernel (no extra passes over (n, D))
        bias = torch.add(self.base_bias_matmul, self.bias_difference, alpha=beta)
        visible_probs = torch.addmm(bias, h, self.weight.T, alpha=beta).sigmoid_()
        return self._state(bernoulli(visible_probs, draws))

    def transition(self, state, beta: float, generator):
        return self._transition(state, torch.sigmoid(beta * state[1]), beta, as_draws(generator))

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
    # SGD momentum. Hinton's guide uses 0.5, then 0.9 (final_momentum below). On digits (16 hidden,
    # lr 0.05, 30 epochs) PCD with 0.9 oscillates (exact valid NLL 23.3 best, 26.7 last)
    # while 0.5 reaches 19.9; CD-1 is insensitive (19.3 vs 19.5).
    momentum: float = 0.5
    init_std: float = 0.01  # N(0, init_std^2) weights; biases 0 (visible biases set from data on first step)
    init_visible_bias_from_data: bool = True  # b_i = log(p_i / (1 - p_i)) of the first batch (Hinton 2010, sec. 8)
    sample_steps: int = 1000  # block-Gibbs steps from random noise for sample(n)
    validation_flips: int = 8  # pseudo-likelihood coordinates per validation example (large RBMs)
    # Schedules of the CD training code released with Salakhutdinov & Murray 2008 (rbm.m,
    # after Hinton & Salakhutdinov 2006), counted in parameter updates; off by default. That
    # code switches momentum from 0.5 to 0.9 after 5 epochs and, in its annealed variant, uses
    # T = ceil(epoch / 10) Gibbs steps with learning rate lr / T.
    final_momentum: float | None = None  # momentum once `momentum_switch_updates` updates are done
    momentum_switch_updates: int = 0
    k_increase_updates: int | None = None  # Gibbs steps 1, 2, ..., k: one more every this many updates, lr / steps
    # added after records existed: at their defaults they leave every committed run key unchanged
    identity_neutral: ClassVar[tuple[str, ...]] = ("final_momentum", "momentum_switch_updates", "k_increase_updates")


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
        if config.final_momentum is not None and not 0 <= config.final_momentum < 1:
            raise ValueError(f"final_momentum must be in [0, 1), got {config.final_momentum}")
        if config.momentum_switch_updates < 0:
            raise ValueError(f"momentum_switch_updates must be >= 0, got {config.momentum_switch_updates}")
        if config.k_increase_updates is not None and config.k_increase_updates < 1:
            raise ValueError(f"k_increase_updates must be a positive number of updates, "
                             f"got {config.k_increase_updates}")
        if self.scheduled:
            # updates done so far: the schedules' clock, saved with every checkpoint (only
            # when a schedule is on, so checkpoints of unscheduled runs keep their format)
            self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def scheduled(self) -> bool:
        return self.config.final_momentum is not None or self.config.k_increase_updates is not None

    def schedule(self) -> tuple[int, float, float]:
        """(Gibbs steps, momentum, learning-rate factor) of the next update."""
        config = self.config
        done = int(self.updates) if self.scheduled else 0
        momentum = config.momentum
        if config.final_momentum is not None and done >= config.momentum_switch_updates:
            momentum = config.final_momentum
        if config.k_increase_updates is None:
            return config.k, momentum, 1.0
        k = min(config.k, 1 + done // config.k_increase_updates)
        return k, momentum, 1.0 / k

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
        for _ in range(self.schedule()[0]):
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
        k, momentum, lr_factor = self.schedule()
        if self.scheduled:
            # torch's SGD scales the whole momentum buffer by the current lr, rbm.m only the new
            # gradient: the two differ for ~1 / (1 - momentum) updates after each lr change
            for group in optimizer.param_groups:
                group["momentum"], group["lr"] = momentum, train.lr * lr_factor
        persistent = self.config.persistent
        negative, gap = self.layer.contrastive_divergence_gradients(
            v, self.persistent_chains if persistent else None, k
        )
        if persistent:
            self.persistent_chains.copy_(negative)
        optimizer.step()
        if self.scheduled:
            self.updates += 1
        # mean F(data) - mean F(negatives); nothing else is logged, so that a step costs
        # exactly one CD/PCD update (what the benchmarks time)
        return {"free_energy_gap": gap}

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
