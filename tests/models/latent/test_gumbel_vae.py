"""Gumbel-softmax VAE: its reported ELBO (discrete posterior) against the expectation
enumerated over every categorical state; the bounds against the exact log p(x)."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import vector_info
from dgmbench.models import build_model

D = 6


def tiny():
    torch.manual_seed(0)
    model = build_model("gumbel_vae", vector_info(D), groups=2, categories=3, encoder=(8,), decoder=(8,)).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(4)
    x = torch.bernoulli(torch.full((5, D), 0.5, dtype=torch.float64))
    return model, x


def test_reported_elbo_is_the_discrete_posterior_expectation():
    model, x = tiny()
    torch.manual_seed(1)
    with torch.no_grad():
        exact = model.elbo_by_enumeration(x)
        draws = model.elbo(x.repeat(5000, 1)).elbo.view(5000, -1)
    stderr = draws.std(0) / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - exact).abs() < 4.5 * stderr + 1e-12)
    assert torch.all(exact < model.log_prob_by_enumeration(x))


def test_bounds_ordered_and_iwae_converges_to_exact():
    model, x = tiny()
    torch.manual_seed(2)
    with torch.no_grad():
        exact = model.log_prob_by_enumeration(x)
        elbo = model.elbo_by_enumeration(x)
        draws = {k: model.iwae_bound(x.repeat(r, 1), k).view(r, -1) for k, r in ((1, 2000), (10, 200), (1000, 100))}
        iwae = {k: d.mean(0) for k, d in draws.items()}
    assert torch.allclose(iwae[1], elbo, atol=0.15)  # L_1 = ELBO (Monte Carlo over 2000 draws)
    assert (elbo < iwae[10] - 0.05).all() and (iwae[10] < iwae[1000]).all()
    stderr = draws[1000].std(0) / 10
    assert torch.all((iwae[1000] - exact).abs() < 4.5 * stderr + 1e-3)
    assert (exact - iwae[1000]).mean() < 0.02 * (exact - elbo).mean()


def test_enumerated_marginal_is_normalised():
    from conftest import all_binary_vectors

    model, _ = tiny()
    log_p = model.log_prob_by_enumeration(all_binary_vectors(D).double())
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("hard", [False, True])
def test_relaxed_training_reaches_every_parameter_and_anneals(hard):
    model = build_model("gumbel_vae", vector_info(D), groups=2, categories=3, encoder=(8,), decoder=(8,),
                        hard=hard, anneal_rate=0.5, min_temperature=0.5)
    model.train()
    x = torch.bernoulli(torch.full((4, D), 0.5))
    assert model.temperature() == 1.0
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.loss(x)
    assert model.temperature() == pytest.approx(max(0.5, math.exp(-1.0)))
