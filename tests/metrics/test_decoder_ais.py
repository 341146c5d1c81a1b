"""Decoder-based AIS and BDMC against exact log p(x): closed form for a linear-Gaussian
decoder (2-D latent), quadrature over 1-D and 2-D latents for Bernoulli VAE decoders."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import vector_info
from dgmbench.metrics.base import EvalContext
from dgmbench.metrics.decoder_ais import (
    DecoderModel, GaussianObservation, ais_log_likelihood, bdmc, reverse_ais_log_likelihood, sigmoid_schedule,
    simulate,
)
from dgmbench.models import build_model


def test_sigmoid_schedule_runs_from_zero_to_one_monotonically():
    betas = sigmoid_schedule(50)
    assert betas[0] == 0 and betas[-1] == 1 and len(betas) == 51
    assert torch.all(betas[1:] > betas[:-1])


def linear_gaussian():
    """p(z) = N(0, I_2), p(x|z) = N(Wz + b, 0.25 I_3): log p(x) and p(z|x) in closed form."""
    torch.manual_seed(0)
    weight = torch.randn(3, 2, dtype=torch.float64)
    bias = torch.randn(3, dtype=torch.float64)
    model = GaussianObservation(lambda z: z @ weight.T + bias, latent_dim=2, sigma=0.5)
    model.prior_sample = lambda n: torch.randn(n, 2, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(bias, weight @ weight.T + 0.25 * torch.eye(3, dtype=torch.float64)).log_prob
    posterior_cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + weight.T @ weight / 0.25)

    def posterior(x):
        return torch.distributions.MultivariateNormal((x - bias) @ weight @ posterior_cov.T / 0.25, posterior_cov)

    return model, exact, posterior


def test_linear_gaussian_bdmc_brackets_the_closed_form_and_the_gap_shrinks():
    model, exact_log_prob, _ = linear_gaussian()
    assert isinstance(model, DecoderModel)
    torch.manual_seed(1)
    x, z = simulate(model, 10, model.sample_given_latent)
    exact = exact_log_prob(x)
    gaps = {}
    for steps in (5, 100):
        torch.manual_seed(2)
        lower, upper = bdmc(model, x, z, steps=steps, chains=8)
        assert lower.mean() < exact.mean() + 0.02 and upper.mean() > exact.mean() - 0.02
        gaps[steps] = (upper - lower).mean().item()
    assert gaps[5] > 0.5  # short annealing: a wide bracket
    assert gaps[100] < 0.15 * gaps[5]


def test_forward_and_reverse_weights_are_unbiased():
    """E[w] = p(x) forward and E[w_rev] = 1/p(x) reverse for any schedule length: with many
    chains both log-mean-weights reach the closed form with short schedules (the reverse
    weights are heavy-tailed, like the harmonic mean they become with 1 step, so it gets 30)."""
    model, exact_log_prob, posterior = linear_gaussian()
    torch.manual_seed(1)
    x, _ = simulate(model, 4, model.sample_given_latent)
    exact = exact_log_prob(x)
    torch.manual_seed(2)
    forward = ais_log_likelihood(model, x, steps=3, chains=20000)
    reverse = reverse_ais_log_likelihood(model, x, posterior(x).sample((4000,)), steps=30)
    assert torch.allclose(forward, exact, atol=0.03)
    assert torch.allclose(reverse, exact, atol=0.15)
    short = ais_log_likelihood(model, x, steps=3, chains=1)  # one chain: a biased-low estimate
    assert (short - exact).mean() < -0.05


def sharp_vae(latent):
    torch.manual_seed(0)
    model = build_model("vae", vector_info(20), latent=latent, hidden=16, layers=1).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3)
    return model


def quadrature(model, x, latent):
    """log ∫ p(x|z) N(z; 0, I) dz on a trapezoid grid (1-D or 2-D)."""
    g = torch.linspace(-8, 8, 4001 if latent == 1 else 401, dtype=torch.float64)
    dz = (g[1] - g[0]).item()
    w = torch.full_like(g, dz)
    w[0] = w[-1] = dz / 2
    if latent == 1:
        z, log_w = g[:, None], w.log()
    else:
        a, b = torch.meshgrid(g, g, indexing="ij")
        z, log_w = torch.stack([a.reshape(-1), b.reshape(-1)], 1), (w[:, None] * w[None, :]).log().reshape(-1)
    log_joint = model.log_likelihood(x, z[:, None, :].expand(-1, len(x), -1)) + model.log_prior(z)[:, None]
    return torch.logsumexp(log_joint + log_w[:, None], 0)


@pytest.mark.parametrize("latent", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_bernoulli_decoder_bdmc_brackets_quadrature_and_the_gap_shrinks(latent):
    model = sharp_vae(latent)
    assert isinstance(model, DecoderModel)
    torch.manual_seed(1)
    with torch.no_grad():
        x, z = simulate(model, 8, lambda z: model.sample_given_latent(z.double()).flatten(1))
        z = z.double()
        exact = quadrature(model, x, latent)
    gaps = {}
    for steps in (5, 100):
        torch.manual_seed(2)
        lower, upper = bdmc(model, x, z, steps=steps, chains=8)
        # stochastic bounds: in expectation, so with a slack for 8 chains on 8 examples
        assert lower.mean() < exact.mean() + 0.1 and upper.mean() > exact.mean() - 0.1
        gaps[steps] = (upper - lower).mean().item()
    assert gaps[5] > 0.4  # a sharp posterior: a short schedule leaves a wide bracket
    assert gaps[100] < 0.3 * gaps[5], gaps


def test_metric_reports_ais_nll_and_bdmc_gap_on_a_vae():
    from dgmbench.data.base import load_dataset
    from dgmbench.metrics.decoder_ais import DecoderAIS

    dataset = load_dataset("digits/binary")
    torch.manual_seed(0)
    model = build_model("vae", dataset.info, latent=2, hidden=16, layers=1)
    ctx = EvalContext(quick=True, settings={"decoder_ais_steps": 10, "decoder_ais_chains": 4,
                                            "decoder_ais_examples": 10, "decoder_ais_bdmc_examples": 5})
    metric = DecoderAIS()
    assert metric.applies(model, dataset)
    values = {v.name: v for v in metric(model, dataset, ctx)}
    assert values["ais_nll"].n == 10 and values["ais_nll"].protocol["steps"] == 10
    assert math.isfinite(values["ais_nll"].value) and values["bdmc_gap"].n == 5
    p = values["bdmc_gap"].protocol
    assert values["bdmc_gap"].value == pytest.approx(p["reverse_log_likelihood"] - p["forward_log_likelihood"], rel=1e-4)
    assert not metric.applies(build_model("sbn", dataset.info), dataset)  # discrete latents: no HMC
