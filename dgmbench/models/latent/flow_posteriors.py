"""Flow posteriors for the VAE: planar and radial flows (Rezende & Mohamed 2015, Sec. 4 and 6)
and inverse autoregressive flows (Kingma et al. 2016, Sec. 3-4).

The encoder gives a diagonal Gaussian q0 and, per example, what the flow needs; K
invertible steps then carry its sample to z_K:

    z_0 = mu(x) + sigma(x) * eps,   eps ~ N(0, I)
    z_K = f_K o ... o f_1 (z_0)
    log q_K(z_K|x) = log q0(z_0|x) - sum_k log|det df_k/dz_{k-1}|    (R&M Sec. 3.1; eq. 13 for planar)

and the VAE's bound is E[log p(x|z_K) + log p(z_K) - log q_K(z_K|x)] (R&M eq. 15), with the
KL part estimated from the same sample (no closed form). ``transform(x, eps)`` is the whole
eps -> (z_K, log q_K) map, so tests can check log q_K against the autograd Jacobian.

* :class:`PlanarPosterior`: f_k(z) = z + u_hat_k tanh(w_k^T z + b_k) (R&M eq. 10-12), with
  u_hat = u + [m(w^T u) - w^T u] w / ||w||^2, m(a) = -1 + softplus(a), so w^T u_hat > -1 and
  each step is invertible (R&M Appendix A.1). ``amortised=True`` (the paper's experiments):
  the encoder outputs u, w, b of every step for each example; ``amortised=False``: one
  global set per step (the flows family's :class:`~dgmbench.models.flows.transforms.Planar`).
* :class:`RadialPosterior`: f_k(z) = z + beta_k h(alpha_k, r) (z - z0_k), r = ||z - z0_k||,
  h = 1 / (alpha + r), with
      log|det df_k/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(alpha, r) r)
  (R&M eq. 14), alpha = softplus(a) > 0 and beta = -alpha + softplus(b) >= -alpha so that
  each step is invertible (R&M Appendix A.2). Amortised or global as the planar one (global:
  the flows family's :class:`~dgmbench.models.flows.transforms.Radial`).
* :class:`IAFPosterior`: the encoder also outputs a context h(x), which enters every step's
  MADE beside z (Kingma et al. 2016, Sec. 4 and Fig. 2); step t computes
  (m_t, s_t) = MADE_t(z_{t-1}, h), sigma_t = sigmoid(s_t) and
      z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,   log|det| = sum_i log sigma_t,i
  (their eq. 14 and Algorithm 1, the numerically stable LSTM-type update), with the ordering
  reversed from one step to the next. Sampling z and its log q is one pass per step: IAF's cheap
  direction, which is why it serves as a posterior (MAF, its mirror, as a density).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.flows.transforms import MaskedAutoregressiveAffine, Planar, Radial, reversed_ordering

LOG_2PI = math.log(2 * math.pi)
POSTERIORS = ("gaussian", "planar", "radial", "iaf")


def planar_u_hat(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """R&M Appendix A.1 reparameterisation on the last axis: w^T u_hat = -1 + softplus(w^T u)."""
    wu = (w * u).sum(-1, keepdim=True)
    return u + (F.softplus(wu) - 1 - wu) * w / (w * w).sum(-1, keepdim=True)


class FlowPosterior(nn.Module):
    """q_K(z|x): encoder x -> (mu, log sigma^2, flow inputs), then ``flow`` on z_0.

    Subclasses implement ``flow(z0, extra) -> (z_K, sum_k log|det J_k|)`` for z0 of shape
    (k, n, latent) and the encoder's extra outputs (n, extra_outputs)."""

    def __init__(self, encoder: nn.Module, latent: int):
        super().__init__()
        self.encoder, self.latent = encoder, latent

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.encoder(x)
        return out[..., : self.latent], out[..., self.latent : 2 * self.latent], out[..., 2 * self.latent :]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the base Gaussian q0(z_0|x)."""
        mean, log_var, _ = self.encode(x)
        return mean, log_var

    def flow(self, z0: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def global_steps(self, steps: nn.ModuleList, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z0 (k, n, latent) through the flows family's transforms, which work on (examples,
        latent): (z_K, sum of log|det|) with z0's leading shape."""
        z, log_det = z0.reshape(-1, self.latent), z0.new_zeros(z0.shape[:-1]).reshape(-1)
        for step in steps:
            z, step_log_det = step(z)
            log_det = log_det + step_log_det
        return z.view_as(z0), log_det.view(z0.shape[:-1])

    def transform(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """eps (k, n, latent) -> z_K (k, n, latent) and log q_K(z_K|x) (k, n)."""
        mean, log_var, extra = self.encode(x)
        z0 = mean + eps * (0.5 * log_var).exp()
        log_q0 = (-0.5 * eps.pow(2) - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)
        z, log_det = self.flow(z0, extra)
        return z, log_q0 - log_det

    def rsample(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k reparameterised samples (k, n, latent) and their log q_K (k, n)."""
        eps = torch.randn(k, len(x), self.latent, dtype=x.dtype, device=x.device)
        return self.transform(x, eps)

    @torch.no_grad()
    def mean(self, x: torch.Tensor, samples: int = 500) -> torch.Tensor:
        """E_q[z_K|x] (n, latent) by Monte Carlo with common random numbers: every example
        gets the same eps draws, so a latent unit whose q(z|x) does not depend on x gets
        exactly the same estimate for every x (zero variance across x), and the active-units
        count (variance of E_q[z|x] over x above 0.01) is not inflated by sampling noise."""
        eps = torch.randn(samples, 1, self.latent, dtype=x.dtype, device=x.device).expand(-1, len(x), -1)
        return self.transform(x, eps)[0].mean(0)


class PlanarPosterior(FlowPosterior):
    """K planar steps; amortised (per-example u, w, b from the encoder) or global."""

    def __init__(self, make_encoder: Callable[[int], nn.Module], latent: int, steps: int, amortised: bool = True):
        extra = steps * (2 * latent + 1) if amortised else 0
        super().__init__(make_encoder(2 * latent + extra), latent)
        self.steps, self.amortised = steps, amortised
        self.planar = None if amortised else nn.ModuleList(Planar(latent) for _ in range(steps))

    def step_parameters(self, extra: torch.Tensor):
        """Amortised (u, w, b) per step: (n, steps, latent), (n, steps, latent), (n, steps)."""
        per_step = extra.unflatten(-1, (self.steps, 2 * self.latent + 1))
        return per_step[..., : self.latent], per_step[..., self.latent : 2 * self.latent], per_step[..., -1]

    def flow(self, z0, extra):
        if not self.amortised:
            return self.global_steps(self.planar, z0)
        u, w, b = self.step_parameters(extra)
        u_hat = planar_u_hat(u, w)
        wu_hat = (w * u_hat).sum(-1)  # (n, steps), > -1
        z, log_det = z0, z0.new_zeros(z0.shape[:-1])
        for step in range(self.steps):  # broadcast over the samples of each example
            activation = torch.tanh((z * w[:, step]).sum(-1) + b[:, step])
            z = z + u_hat[:, step] * activation[..., None]
            log_det = log_det + torch.log(torch.abs(1 + (1 - activation.pow(2)) * wu_hat[:, step]))
        return z, log_det


class RadialPosterior(FlowPosterior):
    """K radial steps; amortised (per-example z0, alpha, beta from the encoder) or global."""

    def __init__(self, make_encoder: Callable[[int], nn.Module], latent: int, steps: int, amortised: bool = True):
        extra = steps * (latent + 2) if amortised else 0
        super().__init__(make_encoder(2 * latent + extra), latent)
        self.steps, self.amortised = steps, amortised
        self.radial = None if amortised else nn.ModuleList(Radial(latent) for _ in range(steps))

    def step_parameters(self, extra: torch.Tensor):
        """Amortised (z0, alpha, beta) per step: (n, steps, latent), (n, steps), (n, steps),
        with alpha > 0 and beta >= -alpha (R&M Appendix A.2)."""
        per_step = extra.unflatten(-1, (self.steps, self.latent + 2))
        alpha = F.softplus(per_step[..., -2])
        return per_step[..., : self.latent], alpha, -alpha + F.softplus(per_step[..., -1])

    def flow(self, z0, extra):
        if not self.amortised:
            return self.global_steps(self.radial, z0)
        centre, alpha, beta = self.step_parameters(extra)
        z, log_det = z0, z0.new_zeros(z0.shape[:-1])
        for step in range(self.steps):  # broadcast over the samples of each example
            diff = z - centre[:, step]
            r = diff.norm(dim=-1)
            h = 1 / (alpha[:, step] + r)
            beta_h = beta[:, step] * h
            z = z + beta_h[..., None] * diff
            # 1 + beta h + beta h' r with h' = -h^2
            log_det = log_det + (self.latent - 1) * torch.log1p(beta_h) + torch.log1p(beta_h - beta_h * h * r)
        return z, log_det


class ContextIAFStep(MaskedAutoregressiveAffine):
    """An IAF step whose MADE also sees a context vector h (Kingma et al. 2016, Fig. 2): h
    enters the first hidden layer through an unmasked linear map, so every output still
    depends on z only through earlier dimensions of the ordering, and on h freely. The
    Jacobian dz_t/dz_{t-1} stays triangular with diagonal sigma_t."""

    def __init__(self, dim: int, hidden_sizes: tuple[int, ...], context: int, ordering=None, mask_seed: int = 0):
        super().__init__(dim, hidden_sizes, ordering, "iaf", mask_seed)
        self.context_layer = nn.Linear(context, hidden_sizes[0], bias=False)

    def params(self, v, context=None):
        h = v
        for index, layer in enumerate(self.layers):
            h = F.linear(h, layer.weight * getattr(self, f"mask_{index}"), layer.bias)
            if index == 0 and context is not None:
                h = h + self.context_layer(context)
            if index < len(self.layers) - 1:
                h = torch.relu(h)
        return h[:, : self.dim], h[:, self.dim :]

    def forward(self, v, context=None):
        m, s = self.params(v, context)
        log_sigma = F.logsigmoid(s)
        sigma = log_sigma.exp()
        return sigma * v + (1 - sigma) * m, log_sigma.sum(1)

    def inverse(self, y, context=None):
        """D passes, as the context-free layer's inverse (each fixes one more dimension)."""
        v = torch.zeros_like(y)
        for _ in range(self.dim):
            m, s = self.params(v, context)
            sigma = torch.sigmoid(s)
            v = (y - (1 - sigma) * m) / sigma
        return v, -F.logsigmoid(self.params(v, context)[1]).sum(1)


class IAFPosterior(FlowPosterior):
    """K context-conditioned IAF steps with alternating (natural, reversed) orderings."""

    def __init__(self, make_encoder: Callable[[int], nn.Module], latent: int, steps: int, hidden: int, context: int):
        if latent < 2:
            raise ValueError("posterior='iaf' needs latent >= 2 (an autoregressive step on 1 dimension is affine)")
        super().__init__(make_encoder(2 * latent + context), latent)
        self.iaf = nn.ModuleList(
            ContextIAFStep(latent, (hidden, hidden), context, reversed_ordering(latent) if k % 2 else None, k)
            for k in range(steps)
        )

    def flow(self, z0, extra):
        z = z0.reshape(-1, self.latent)
        context = extra.expand(*z0.shape[:-1], extra.shape[-1]).reshape(len(z), -1)
        log_det = z.new_zeros(len(z))
        for step in self.iaf:
            z, step_log_det = step(z, context)
            log_det = log_det + step_log_det
        return z.view_as(z0), log_det.view(z0.shape[:-1])


def flow_posterior(kind: str, make_encoder: Callable[[int], nn.Module], latent: int, steps: int,
                   amortised: bool = True, hidden: int = 320, context: int = 50) -> FlowPosterior:
    """The VAE's ``posterior`` option: "planar", "radial" or "iaf" (``make_encoder(outputs)`` builds the
    inference network with that many outputs)."""
    if steps < 1:
        raise ValueError(f"flow_steps must be >= 1, got {steps}")
    if kind == "planar":
        return PlanarPosterior(make_encoder, latent, steps, amortised)
    if kind == "radial":
        return RadialPosterior(make_encoder, latent, steps, amortised)
    if kind == "iaf":
        return IAFPosterior(make_encoder, latent, steps, hidden, context)
    raise ValueError(f"posterior must be one of {', '.join(POSTERIORS)}, got {kind!r}")
