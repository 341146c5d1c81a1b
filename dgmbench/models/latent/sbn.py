"""Sigmoid belief network (Neal 1992) with L stochastic binary layers, trained through an
inference network q by score-function gradients: NVIL (Mnih & Gregor 2014), plain
REINFORCE, or VIMCO (Mnih & Rezende 2016).

Generative model, h_0 = x, layers bottom (next to x) to top:

    p(h_L)            = prod_j Bernoulli(h_Lj; sigmoid(b_L))
    p(h_l | h_{l+1})  = prod_j Bernoulli(h_lj; sigmoid(W_l h_{l+1} + b_l)),  l = L-1..0

Inference network (linear sigmoid layers, as for the SBNs of Mnih & Gregor Sec. 6.1):

    q(h_l | h_{l-1})  = prod_j Bernoulli(h_lj; sigmoid(A_l h_{l-1} + a_l)),   l = 1..L

Objectives and gradient estimators (h ~ q(h|x); f(x, h) = log p(x, h) - log q(h|x)):

* ELBO L(x) = E_q[f(x, h)].  grad_theta L = E_q[grad_theta log p(x, h)], and the score-
  function (REINFORCE) gradient grad_phi L = E_q[f(x, h) grad_phi log q(h|x)] (NVIL eq. 5;
  the zero-mean term E_q[grad_phi log q] is left out, as there).
* NVIL (Mnih & Gregor Sec. 3, Alg. 1) keeps that expectation but lowers its variance, per
  inference layer i, with the *local* learning signal (Sec. 3.3)
      l_i = sum_{j >= i-1} log p(h_j | h_{j+1}) - sum_{j >= i} log q(h_j | h_{j-1}),
  i.e. f without the terms that do not depend on h_i; centred by an input-dependent
  baseline C_i(h_{i-1}) (an MLP trained to minimise E[(l_i - C_i - c_i)^2], Sec. 3.1) and a
  moving average c_i of l_i - C_i; and divided by max(1, sqrt(v_i)), v_i a moving average of
  the variance of l_i - C_i (Sec. 3.2; a per-layer adaptive step size, so the normalised
  estimate is the unbiased gradient times 1 / max(1, sqrt(v_i))).
* VIMCO optimises the k-sample bound L_k(x) = E[log (1/k) sum_j w_j], w_j = p(x,h^j)/q(h^j|x)
  (Mnih & Rezende eq. 2), with the estimator (their eq. 10)
      sum_j (L_k - L_k^{-j}) grad log q(h^j|x) + sum_j w~_j grad log w_j,
  where L_k^{-j} replaces log w_j by the mean of the other log-weights (their eq. 9) and
  w~_j = w_j / sum_i w_i.

The model reports the ELBO (one sample; its "KL" part is the single-sample estimate of
log q(h|x) - log p(h)) and the IWAE bound L_k. For tiny networks ``log_prob_by_enumeration``
sums p(x, h) over every latent state: the exact log p(x) the tests compare the bounds with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.enumeration import logsumexp_over_binary_states
from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model

ESTIMATORS = ("nvil", "reinforce", "vimco")


def bernoulli_log_prob(logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """sum_j log Bernoulli(value_j; sigmoid(logits_j)) over the last dimension."""
    logits, value = torch.broadcast_tensors(logits, value)
    return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


@dataclass
class SBNConfig:
    hidden: tuple[int, ...] = (200,)  # stochastic layer sizes, bottom (next to x) to top
    estimator: str = "nvil"  # "nvil" | "reinforce" | "vimco"
    samples: int = 1  # posterior samples per example and step (VIMCO's k; needs >= 2)
    baseline_hidden: int = 100  # NVIL: input-dependent baseline, one tanh layer (Sec. 6.1)
    baseline_decay: float = 0.8  # NVIL: alpha of the moving averages c and v (Alg. 1)
    variance_normalisation: bool = True  # NVIL: divide the signal by max(1, sqrt(v))
    iwae_chunk: int = 1000  # importance samples evaluated per pass (memory bound)


class SigmoidBeliefNetwork(GenerativeModel, LowerBound):
    """The layered generative network p and inference network q above, their densities,
    bounds, sampling and exact enumeration; the training rule is the subclass's (NVIL /
    REINFORCE / VIMCO here, wake-sleep in helmholtz.py). Needs ``config.hidden``."""

    family = "latent"
    value_types = ("binary",)

    def __init__(self, config, info):
        super().__init__(config, info)
        hidden = tuple(int(h) for h in config.hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list 1 or more positive layer sizes, got {config.hidden!r}")
        self.sizes = (info.dim,) + hidden  # sizes[l] = size of h_l, h_0 = x
        depth = len(hidden)
        self.top_logits = nn.Parameter(torch.zeros(hidden[-1]))
        # generative[l] maps h_{l+1} to the logits of h_l, l = 0..L-1
        self.generative = nn.ModuleList(nn.Linear(self.sizes[l + 1], self.sizes[l]) for l in range(depth))
        # inference[l] maps h_l to the logits of h_{l+1}
        self.inference = nn.ModuleList(nn.Linear(self.sizes[l], self.sizes[l + 1]) for l in range(depth))

    # --- densities --------------------------------------------------------------
    def model_parameters(self) -> list[nn.Parameter]:
        return [self.top_logits, *self.generative.parameters()]

    def inference_parameters(self) -> list[nn.Parameter]:
        return list(self.inference.parameters())

    def generative_log_probs(self, x: torch.Tensor, hs: list[torch.Tensor]) -> list[torch.Tensor]:
        """[log p(x|h_1), log p(h_1|h_2), ..., log p(h_L)] for latents hs[l-1] = h_l of shape
        (..., n, size_l) and x of shape (n, D); each of shape (..., n)."""
        below = [x.flatten(1)] + hs[:-1]
        terms = [bernoulli_log_prob(layer(h), target) for layer, h, target in zip(self.generative, hs, below)]
        return terms + [bernoulli_log_prob(self.top_logits, hs[-1])]

    def inference_log_probs(self, x: torch.Tensor, hs: list[torch.Tensor]) -> list[torch.Tensor]:
        """[log q(h_1|x), log q(h_2|h_1), ..., log q(h_L|h_{L-1})], each of shape (..., n)."""
        inputs = [x.flatten(1)] + hs[:-1]
        return [bernoulli_log_prob(layer(h), target) for layer, h, target in zip(self.inference, inputs, hs)]

    def posterior_sample(self, x: torch.Tensor, k: int) -> list[torch.Tensor]:
        """k ancestral samples h_1..h_L ~ q(h|x), each of shape (k, n, size_l)."""
        below = x.flatten(1)  # q(h_1|x) is computed once and broadcast over the k samples
        hs = []
        for layer in self.inference:
            probs = torch.sigmoid(layer(below))
            below = torch.bernoulli(probs.expand(k, *probs.shape[-2:]))
            hs.append(below)
        return hs

    def log_weights(self, x: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor:
        """log p(x, h) - log q(h|x), shape (..., n)."""
        return sum(self.generative_log_probs(x, hs)) - sum(self.inference_log_probs(x, hs))

    def split_states(self, states: torch.Tensor) -> list[torch.Tensor]:
        """Enumerated joint latent states (m, sum(hidden)) as per-layer tensors (m, 1, size_l)."""
        return [part.unsqueeze(1) for part in states.split(list(self.sizes[1:]), dim=1)]

    def log_prob_by_enumeration(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log sum_h p(x, h) over all 2^(sum hidden) latent states."""
        dtype = self.top_logits.dtype
        return logsumexp_over_binary_states(
            lambda s: sum(self.generative_log_probs(x, self.split_states(s))),
            sum(self.sizes[1:]), device=x.device, dtype=dtype, chunk_size=1 << 12,
        )

    # --- bounds -----------------------------------------------------------------
    def elbo(self, x: torch.Tensor) -> Bound:
        hs = [h[0] for h in self.posterior_sample(x, 1)]
        log_p = self.generative_log_probs(x, hs)
        reconstruction = log_p[0]
        kl = sum(self.inference_log_probs(x, hs)) - sum(log_p[1:])
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        chunks = []
        for start in range(0, k, self.config.iwae_chunk):
            m = min(self.config.iwae_chunk, k - start)
            chunks.append(self.log_weights(x, self.posterior_sample(x, m)))
        return torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k)


    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO (the quantity NVIL is compared on); the training step does not
        differentiate it (its gradient through discrete samples would be wrong)."""
        return -self.elbo(x).elbo.mean()

    @torch.no_grad()
    def sample_joint(self, n: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Ancestral samples (x, [h_1, ..., h_L]) ~ p(x, h); x flat (n, D)."""
        hs = [torch.bernoulli(torch.sigmoid(self.top_logits).expand(n, -1))]
        for layer in reversed(self.generative):
            hs.insert(0, torch.bernoulli(torch.sigmoid(layer(hs[0]))))
        return hs[0], hs[1:]

    def sample(self, n: int) -> torch.Tensor:
        return self.sample_joint(n)[0].view(n, *self.info.shape)

@register_model("sbn")
class SBN(SigmoidBeliefNetwork):
    Config = SBNConfig
    citation = (
        "Neal (1992), Connectionist learning of belief networks; Mnih & Gregor (2014), Neural "
        "Variational Inference and Learning in Belief Networks, ICML; Mnih & Rezende (2016), "
        "Variational inference for Monte Carlo objectives, ICML"
    )
    # Mnih & Gregor train with learning rate 3e-4 on minibatches of 20.
    train_defaults = {"lr": 3e-4, "batch_size": 20}

    def __init__(self, config: SBNConfig, info):
        if config.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {config.estimator!r}")
        if config.samples < 1 or (config.estimator == "vimco" and config.samples < 2):
            raise ValueError(f"samples must be >= 1 (>= 2 for vimco), got {config.samples}")
        super().__init__(config, info)
        depth = len(self.sizes) - 1
        # NVIL baselines C_i(h_{i-1}) and the moving averages c_i, v_i, one per inference layer
        self.baselines = nn.ModuleList(
            nn.Sequential(nn.Linear(self.sizes[l], config.baseline_hidden), nn.Tanh(), nn.Linear(config.baseline_hidden, 1))
            for l in range(depth)
        )
        self.register_buffer("signal_mean", torch.zeros(depth))
        self.register_buffer("signal_var", torch.ones(depth))

    # --- gradient estimators ----------------------------------------------------
    def surrogate(self, x: torch.Tensor, estimator: str | None = None, update_baselines: bool = False,
                  normalise: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(surrogate, baseline_loss, objective): the gradient of ``surrogate`` with respect to
        the model and inference parameters is the chosen estimator of the gradient of the
        batch-mean objective (the ELBO for nvil/reinforce, L_k for vimco); ``baseline_loss``
        trains NVIL's baselines (zero otherwise); ``objective`` is the detached Monte Carlo
        estimate of the objective. ``update_baselines`` advances NVIL's moving averages
        (training does; gradient checks do not)."""
        estimator = estimator or self.config.estimator
        k = self.config.samples
        if estimator == "vimco":
            k = max(k, 2)
        hs = self.posterior_sample(x, k)  # no gradient flows through the Bernoulli draws
        log_p = self.generative_log_probs(x, hs)
        log_q = self.inference_log_probs(x, hs)
        log_w = (sum(log_p) - sum(log_q)).detach()  # (k, n)
        zero = x.new_zeros(())
        if estimator == "reinforce":
            surrogate = (log_w * sum(log_q) + sum(log_p)).mean()
            return surrogate, zero, log_w.mean()
        if estimator == "vimco":
            bound = torch.logsumexp(log_w, 0) - math.log(k)  # (n,)
            # L_k^{-j}: log-weight j replaced by the mean of the others (geometric mean of w)
            others = (log_w.sum(0) - log_w) / (k - 1)  # (k, n)
            eye = torch.eye(k, dtype=torch.bool, device=x.device)[:, :, None]
            leave_one_out = torch.where(eye, others[:, None, :], log_w[None, :, :])  # (j, i, n)
            bound_without = torch.logsumexp(leave_one_out, dim=1) - math.log(k)  # (k, n)
            signal = bound - bound_without
            live_log_w = sum(log_p) - sum(log_q)  # explicit dependence of log w on theta, phi
            surrogate = ((signal * sum(log_q)).sum(0) + torch.logsumexp(live_log_w, 0)).mean()
            return surrogate, zero, bound.mean()
        if estimator != "nvil":
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        normalise = self.config.variance_normalisation if normalise is None else normalise
        inputs = [x.flatten(1).expand(k, -1, -1)] + hs[:-1]
        surrogate = sum(log_p).mean()
        baseline_loss = zero
        decay = self.config.baseline_decay
        for i in range(len(hs)):  # inference layer i+1 in the paper's numbering
            signal = (sum(log_p[i:]) - sum(log_q[i:])).detach()  # local learning signal
            baseline = self.baselines[i](inputs[i]).squeeze(-1)  # C_i(h_{i-1})
            residual = signal - baseline.detach()
            if update_baselines:
                with torch.no_grad():
                    self.signal_mean[i] = decay * self.signal_mean[i] + (1 - decay) * residual.mean()
                    self.signal_var[i] = decay * self.signal_var[i] + (1 - decay) * residual.var(unbiased=False)
            centred = residual - self.signal_mean[i]
            if normalise:
                centred = centred / self.signal_var[i].sqrt().clamp(min=1.0)
            surrogate = surrogate + (centred * log_q[i]).mean()
            baseline_loss = baseline_loss + (signal - self.signal_mean[i] - baseline).pow(2).mean()
        return surrogate, baseline_loss, log_w.mean()

    def configure_optimizers(self, train):
        params = self.model_parameters() + self.inference_parameters()
        optimizers = {"model": torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)}
        if self.config.estimator == "nvil":
            optimizers["baseline"] = torch.optim.Adam(self.baselines.parameters(), lr=train.lr)
        return optimizers

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        surrogate, baseline_loss, objective = self.surrogate(x, update_baselines=True)
        (baseline_loss - surrogate).backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        for opt in optimizers.values():
            opt.step()
        out = {"loss": -objective.item()}
        if self.config.estimator == "nvil":
            out["baseline_mse"] = baseline_loss.item()
        return out

    @classmethod
    def quick_config(cls, info):
        return {"hidden": (16,), "baseline_hidden": 16}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "lr": 3e-3, "batch_size": 50}


def estimator_gradient_variance(model: SBN, x: torch.Tensor, estimators=ESTIMATORS, draws: int = 200,
                                baseline_steps: int = 500, baseline_lr: float = 1e-2) -> dict[str, dict]:
    """Measured variance of each estimator's gradient for the *inference-network*
    parameters, on the same model and batch x: for every estimator, ``draws`` independent
    estimates of the batch-mean gradient; reports their total variance (the trace of the
    covariance, summed over parameters), the squared norm of their mean, and the number of
    posterior samples per example each draw used. NVIL's baselines are first fitted to x for
    ``baseline_steps`` Adam steps with the model held fixed (untrained baselines make NVIL
    plain REINFORCE); its estimates are not variance-normalised, so all are estimates of the
    unscaled gradient. The model's parameters are left unchanged."""
    params = model.inference_parameters()
    report = {}
    if "nvil" in estimators and baseline_steps > 0:
        opt = torch.optim.Adam(model.baselines.parameters(), lr=baseline_lr)
        for _ in range(baseline_steps):
            opt.zero_grad(set_to_none=True)
            _, baseline_loss, _ = model.surrogate(x, "nvil", update_baselines=True)
            baseline_loss.backward()
            opt.step()
    for estimator in estimators:
        grads = []
        for _ in range(draws):  # one independent estimate per draw
            surrogate, _, _ = model.surrogate(x, estimator, normalise=False)
            grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(surrogate, params)]))
        grads = torch.stack(grads)
        samples = max(model.config.samples, 2) if estimator == "vimco" else model.config.samples
        report[estimator] = {
            "variance": grads.var(0).sum().item(),
            "mean_sq_norm": grads.mean(0).pow(2).sum().item(),
            "samples": samples,
        }
    return report
