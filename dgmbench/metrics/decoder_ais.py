"""Log-likelihood of decoder-based models by annealed importance sampling over the latent
space with HMC transitions (Wu, Burda, Salakhutdinov & Grosse 2017, "On the Quantitative
Analysis of Decoder-Based Generative Models", ICLR), and bidirectional Monte Carlo (BDMC;
Grosse, Ghahramani & Adams 2015) on data simulated from the model.

For one observation x, the intermediate distributions are (Wu et al. eq. 3)

    f_t(z) = p(z) p(x | z)^beta_t,   0 = beta_0 < beta_1 < ... < beta_T = 1,

from the prior (normalised, Z_0 = 1) to the unnormalised posterior (Z_T = p(x)). With
z_0 ~ p(z) and z_t drawn by an HMC transition that leaves f_t invariant,

    log w = sum_{t=1}^T (beta_t - beta_{t-1}) log p(x | z_{t-1}),   E[w] = p(x),

so log mean_c w_c over C chains is a stochastic *lower* bound on log p(x) (Jensen).
Reverse AIS runs the same path backwards from an exact posterior sample z_T ~ p(z | x):
E[w_rev] = 1 / p(x), so -log mean w_rev is a stochastic *upper* bound. Exact posterior
samples exist for data simulated from the model, (z, x) ~ p(z) p(x|z): there the two runs
bracket log p(x) and the gap bounds the error of the forward estimate on such data
(BDMC; Wu et al. Sec. 4). The schedule is sigmoidal (Grosse et al. 2015; Wu et al.
Appendix): beta_t proportional to sigmoid(delta (2t/T - 1)), delta = 4, rescaled to [0, 1].

HMC: `leapfrog` steps per transition; the step size of every (example, chain) pair starts
at 0.05 and is multiplied by 1.02 after an accepted move and by 0.98 after a rejected one
in the spirit of Wu et al.'s adaptation towards a fixed acceptance rate.

Any model that implements :class:`DecoderModel` can be evaluated: ``latent_dim``,
``prior_sample(n)``, ``log_prior(z)``, ``log_likelihood(x, z)`` (the observation model:
Bernoulli for binary data, Gaussian with its variance for continuous data) and
``sample_given_latent(z)`` (x ~ p(x|z), for BDMC's simulated data). A generator
without an observation model (a GAN) is wrapped by :class:`GaussianObservation` with a
stated standard deviation (Wu et al. Sec. 2.2).

Metric ``decoder_ais`` (settings below): ``ais_nll`` on the test split (kind "estimate", a
stochastic upper bound on the NLL in expectation), and with BDMC on simulated data
``bdmc_gap`` (reverse minus forward log-likelihood, nats) with both bounds in its protocol.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch

from dgmbench.metrics.base import EvalContext, MetricValue, Setting, register_metric

SIGMOID_DELTA = 4.0
INITIAL_STEP_SIZE = 0.05
ACCEPT_FACTOR, REJECT_FACTOR = 1.02, 0.98


@runtime_checkable
class DecoderModel(Protocol):
    """What decoder-based AIS needs from a model."""

    latent_dim: int

    def prior_sample(self, n: int) -> torch.Tensor:
        """z ~ p(z), shape (n, latent_dim)."""

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z (..., latent_dim): shape (...)."""

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for z (..., n, latent_dim) and x (n, ...): shape (..., n)."""

    def sample_given_latent(self, z: torch.Tensor) -> torch.Tensor:
        """x ~ p(x | z) for z (n, latent_dim): shape (n, ...) (simulated data for BDMC)."""


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)


@dataclass
class GaussianObservation:
    """A decoder-based model from a deterministic generator g: p(z) = N(0, I) and
    p(x | z) = N(x; g(z), sigma^2 I) (Wu et al. Sec. 2.2: a GAN evaluated this way)."""

    generator: Callable[[torch.Tensor], torch.Tensor]
    latent_dim: int
    sigma: float

    def prior_sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = self.generator(z.reshape(-1, self.latent_dim)).reshape(*z.shape[:-1], -1)
        var = self.sigma**2
        return (-0.5 * (x.flatten(1) - mean).pow(2) / var - 0.5 * math.log(2 * math.pi * var)).sum(-1)

    def sample_given_latent(self, z: torch.Tensor) -> torch.Tensor:
        mean = self.generator(z)
        return mean + self.sigma * torch.randn_like(mean)


def sigmoid_schedule(steps: int, delta: float = SIGMOID_DELTA, dtype=torch.float64) -> torch.Tensor:
    """steps + 1 inverse temperatures from exactly 0 to exactly 1, sigmoidally spaced."""
    if steps < 1:
        raise ValueError(f"AIS needs at least 1 intermediate step, got {steps}")
    s = torch.sigmoid(delta * (2 * torch.arange(steps + 1, dtype=dtype) / steps - 1))
    return (s - s[0]) / (s[-1] - s[0])


def _log_target(model, x, z, beta):
    """log f_beta(z) = log p(z) + beta log p(x|z) and log p(x|z), with the gradient in z of
    the former."""
    z = z.detach().requires_grad_()
    with torch.enable_grad():
        log_lik = model.log_likelihood(x, z)
        log_f = model.log_prior(z) + beta * log_lik
        (grad,) = torch.autograd.grad(log_f.sum(), z)
    return log_f.detach(), log_lik.detach(), grad


def anneal(model: DecoderModel, x: torch.Tensor, z: torch.Tensor, betas: torch.Tensor, leapfrog: int = 10,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """AIS along `betas` (increasing: forward; decreasing: reverse) from z (C, n, d), which
    must be an exact sample of f_{betas[0]}. Returns log w (C, n) and HMC statistics."""
    step = torch.full(z.shape[:-1] + (1,), INITIAL_STEP_SIZE, dtype=z.dtype, device=z.device)
    log_w = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
    accepted = 0.0
    _, log_lik, _ = _log_target(model, x, z, float(betas[0]))
    for t in range(1, len(betas)):
        beta, previous = float(betas[t]), float(betas[t - 1])
        log_w = log_w + (beta - previous) * log_lik  # f_t(z_{t-1}) / f_{t-1}(z_{t-1})
        # one HMC transition leaving f_t invariant
        log_f, _, grad = _log_target(model, x, z, beta)
        momentum = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        q, p = z, momentum + 0.5 * step * grad
        for i in range(leapfrog):
            q = q + step * p
            new_log_f, new_log_lik, new_grad = _log_target(model, x, q, beta)
            if i < leapfrog - 1:
                p = p + step * new_grad
        p = p + 0.5 * step * new_grad
        log_accept = (new_log_f - 0.5 * p.pow(2).sum(-1)) - (log_f - 0.5 * momentum.pow(2).sum(-1))
        u = torch.rand(log_accept.shape, generator=generator, dtype=z.dtype).to(z.device)
        accept = torch.nan_to_num(log_accept, nan=-math.inf) > torch.log(u)
        z = torch.where(accept[..., None], q, z)
        log_lik = torch.where(accept, new_log_lik, log_lik)
        step = step * torch.where(accept[..., None], ACCEPT_FACTOR, REJECT_FACTOR)
        accepted += accept.double().mean().item()
    return log_w, {"acceptance": accepted / max(1, len(betas) - 1)}


def ais_log_likelihood(model: DecoderModel, x: torch.Tensor, steps: int, chains: int, leapfrog: int = 10,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Forward AIS: per-example stochastic lower bound on log p(x), shape (n,)."""
    z = torch.stack([model.prior_sample(len(x)) for _ in range(chains)]).to(x)
    log_w, _ = anneal(model, x, z, sigmoid_schedule(steps), leapfrog, generator)
    return torch.logsumexp(log_w, 0) - math.log(chains)


def reverse_ais_log_likelihood(model: DecoderModel, x: torch.Tensor, z_posterior: torch.Tensor, steps: int,
                               leapfrog: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reverse AIS from exact posterior samples z_posterior (C, n, d) (e.g. the latents that
    simulated x): per-example stochastic upper bound on log p(x), shape (n,)."""
    log_w, _ = anneal(model, x, z_posterior, sigmoid_schedule(steps).flip(0), leapfrog, generator)
    chains = z_posterior.shape[0]
    return -(torch.logsumexp(log_w, 0) - math.log(chains))


def simulate(model: DecoderModel, n: int, sample_x: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, z) ~ p(z) p(x | z): z is then an exact posterior sample for x."""
    z = model.prior_sample(n)
    return sample_x(z), z


def bdmc(model: DecoderModel, x: torch.Tensor, z: torch.Tensor, steps: int, chains: int, leapfrog: int = 10,
         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) per-example stochastic bounds on log p(x) for simulated (x, z): forward
    AIS from the prior, reverse AIS from the simulating latents (every reverse chain starts
    at the one exact posterior sample available)."""
    lower = ais_log_likelihood(model, x, steps, chains, leapfrog, generator)
    upper = reverse_ais_log_likelihood(model, x, z.unsqueeze(0).expand(chains, -1, -1).to(x), steps, leapfrog, generator)
    return lower, upper


class DecoderAIS:
    """``ais_nll`` for decoder-based models, with a BDMC check on simulated data."""

    name = "decoder_ais"
    settings = {
        "decoder_ais_steps": Setting(int, "intermediate distributions (1000; quick 20)", minimum=1),
        "decoder_ais_chains": Setting(int, "AIS chains per example (16; quick 8)", minimum=1),
        "decoder_ais_leapfrog": Setting(int, "leapfrog steps per HMC transition (10)", minimum=1),
        "decoder_ais_examples": Setting(int, "test examples evaluated (1000; quick 50): a seeded subset", minimum=1),
        "decoder_ais_bdmc_examples": Setting(int, "simulated examples for BDMC (100; quick 10); 0 skips it", minimum=0),
    }

    def applies(self, model, dataset) -> bool:
        return isinstance(model, DecoderModel)

    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        steps = int(ctx.setting("decoder_ais_steps", 20 if ctx.quick else 1000))
        chains = int(ctx.setting("decoder_ais_chains", 8 if ctx.quick else 16))
        leapfrog = int(ctx.setting("decoder_ais_leapfrog", 10))
        examples = int(ctx.setting("decoder_ais_examples", 50 if ctx.quick else 1000))
        bdmc_examples = int(ctx.setting("decoder_ais_bdmc_examples", 10 if ctx.quick else 100))
        x_all = dataset.split(ctx.split)
        generator = ctx.generator(17)
        if examples < len(x_all):
            x_all = x_all[torch.randperm(len(x_all), generator=generator)[:examples]]
        dtype = next(model.parameters()).dtype
        protocol = {"split": ctx.split, "steps": steps, "chains": chains, "leapfrog": leapfrog,
                    "schedule": f"sigmoid, delta={SIGMOID_DELTA}", "examples": len(x_all)}
        torch.manual_seed(ctx.seed)
        log_p = torch.cat([
            ais_log_likelihood(model, batch.to(ctx.device, dtype), steps, chains, leapfrog).double().cpu()
            for batch in x_all.split(max(1, ctx.batch_size // chains))
        ])
        mean, stderr = log_p.mean().item(), log_p.std().item() / math.sqrt(len(log_p)) if len(log_p) > 1 else None
        values = [MetricValue("ais_nll", -mean, "nats", len(log_p), stderr, "estimate", protocol=protocol)]
        if bdmc_examples > 0:
            with torch.no_grad():
                x_sim, z_sim = simulate(model, bdmc_examples, model.sample_given_latent)
            lower, upper = bdmc(model, x_sim.to(ctx.device, dtype), z_sim.to(ctx.device, dtype), steps, chains, leapfrog)
            gap = (upper - lower).double()
            values.append(MetricValue(
                "bdmc_gap", gap.mean().item(), "nats", len(gap), gap.std().item() / math.sqrt(len(gap)), "estimate",
                protocol=dict(protocol, examples=bdmc_examples, data="simulated from the model",
                              forward_log_likelihood=lower.mean().item(), reverse_log_likelihood=upper.mean().item()),
            ))
        return values


register_metric(DecoderAIS())
