"""VAE bounds against log p(x) computed by numerical integration over a 1-D latent."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import vector_info
from dgmbench.models import build_model

D = 6


@pytest.fixture(scope="module")
def tiny_vae():
    """An untrained VAE with a sharp decoder: its posterior is poor, so the ELBO gap is
    large and the IWAE bound's tightening is far above Monte Carlo noise."""
    torch.manual_seed(0)
    model = build_model("vae", vector_info(D), latent=1, hidden=16, layers=1).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(4)
    x = torch.bernoulli(torch.full((8, D), 0.5, dtype=torch.float64))
    return model, x


def log_marginal_by_quadrature(model, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log ∫ p(x|z) N(z; 0, 1) dz on a fine grid (trapezoid rule)."""
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)[:, None, None]  # (G, 1, 1)
    log_joint = model.log_likelihood(x, z.expand(-1, len(x), 1)) - 0.5 * z[:, :, 0] ** 2 - 0.5 * math.log(2 * math.pi)
    dz = (z[1] - z[0]).item()
    weights = torch.full((len(z), 1), dz, dtype=torch.float64)
    weights[0] = weights[-1] = dz / 2
    return torch.logsumexp(log_joint + weights.log(), dim=0)


def test_elbo_is_below_log_marginal_and_iwae_approaches_it(tiny_vae):
    model, x = tiny_vae
    torch.manual_seed(0)
    with torch.no_grad():
        exact = log_marginal_by_quadrature(model, x)
        n = len(x)  # Monte Carlo averages over repeated copies of x, in one batch each
        elbo = model.elbo(x.repeat(4000, 1)).elbo.view(4000, n).mean(0)
        repeats = {1: 4000, 10: 400, 100: 40, 5000: 4}
        gaps = {k: (exact - model.iwae_bound(x.repeat(r, 1), k).view(r, n).mean(0)).mean().item()
                for k, r in repeats.items()}
    assert torch.all(elbo < exact)
    assert gaps[1] > 0.5  # a poor posterior: a large gap to close
    assert gaps[1] == pytest.approx((exact - elbo).mean().item(), rel=0.05)  # L_1 is the ELBO
    assert gaps[1] > gaps[10] > gaps[100] > gaps[5000] > -1e-3  # tightens monotonically, from below
    assert gaps[5000] < 0.05 * gaps[1]


def test_elbo_parts_add_up_and_kl_is_analytic(tiny_vae):
    model, x = tiny_vae
    bound = model.elbo(x)
    assert torch.allclose(bound.elbo, bound.reconstruction - bound.kl)
    mean, log_var = model.posterior(x)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    assert torch.allclose(bound.kl, torch.distributions.kl_divergence(q, p).sum(-1))


def test_gradients_flow_to_encoder_and_decoder():
    model = build_model("vae", vector_info(D), latent=2, hidden=8)
    model.loss(torch.bernoulli(torch.full((4, D), 0.5))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
