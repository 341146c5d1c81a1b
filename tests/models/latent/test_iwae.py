"""IWAE: its bounds against log p(x) by quadrature over 1-D (one stochastic layer) and 2-D
(two stochastic layers of one unit) latents, and its two training objectives."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import vector_info
from dgmbench.models import build_model

D = 6


def sharp(latent, hidden):
    """Untrained, with a sharp decoder: a poor posterior and a large ELBO gap."""
    torch.manual_seed(0)
    model = build_model("iwae", vector_info(D), latent=latent, hidden=hidden, depth=1).double()
    with torch.no_grad():
        for p in model.decoders[0].parameters():
            p.mul_(4)
    x = torch.bernoulli(torch.full((6, D), 0.5, dtype=torch.float64))
    return model, x


def trapezoid_log_weights(grid: torch.Tensor) -> torch.Tensor:
    dz = (grid[1] - grid[0]).item()
    w = torch.full_like(grid, dz)
    w[0] = w[-1] = dz / 2
    return w.log()


def log_marginal_by_quadrature(model, x):
    if len(model.latent_sizes) == 1:
        z = torch.linspace(-12, 12, 24001, dtype=torch.float64)
        hs = [z[:, None, None].expand(-1, len(x), 1)]
        log_w = trapezoid_log_weights(z)
    else:  # two stochastic layers of one unit: a 2-D grid over (h_1, h_2)
        g = torch.linspace(-8, 8, 201, dtype=torch.float64)  # agrees with a 801^2 grid to 1e-8
        h1, h2 = torch.meshgrid(g, g, indexing="ij")
        hs = [h1.reshape(-1, 1, 1).expand(-1, len(x), 1), h2.reshape(-1, 1, 1).expand(-1, len(x), 1)]
        w1 = trapezoid_log_weights(g)
        log_w = (w1[:, None] + w1[None, :]).reshape(-1)
    log_joint = model.log_likelihood(x, hs[0]) + model.log_prior(hs)
    return torch.logsumexp(log_joint + log_w[:, None], dim=0)


@pytest.mark.parametrize("latent,hidden", [((1,), (16,)), ((1, 1), (16, 8))])
def test_elbo_below_log_marginal_and_iwae_approaches_it(latent, hidden):
    model, x = sharp(latent, hidden)
    torch.manual_seed(0)
    with torch.no_grad():
        exact = log_marginal_by_quadrature(model, x)
        n = len(x)
        elbo = model.elbo(x.repeat(4000, 1)).elbo.view(4000, n).mean(0)
        repeats = {1: 4000, 10: 400, 100: 40, 5000: 4}
        gaps = {k: (exact - model.iwae_bound(x.repeat(r, 1), k).view(r, n).mean(0)).mean().item()
                for k, r in repeats.items()}
    assert torch.all(elbo < exact)
    assert gaps[1] > 0.5
    assert gaps[1] == pytest.approx((exact - elbo).mean().item(), rel=0.05)  # L_1 is the ELBO
    assert gaps[1] > gaps[10] > gaps[100] > gaps[5000] > -1e-3
    assert gaps[5000] < 0.05 * gaps[1]


@pytest.mark.parametrize("objective", ["iwae", "vae"])
def test_training_objectives(objective):
    model, x = sharp((2, 2), (8, 8))
    model.config.objective, model.config.k = objective, 5
    torch.manual_seed(1)
    loss = model.loss(x)
    torch.manual_seed(1)
    log_w = model.log_weights(x, 5)
    expected = -(torch.logsumexp(log_w, 0) - math.log(5)).mean() if objective == "iwae" else -log_w.mean()
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_both_objectives_raise_the_k_sample_bound():
    """Training on L_k or on the k-sample ELBO raises L_100 well above its initial value."""
    torch.manual_seed(0)
    x = torch.bernoulli(torch.tensor([[0.9] * 3 + [0.1] * 3, [0.1] * 3 + [0.9] * 3]).repeat(30, 1)).double()
    for objective in ("iwae", "vae"):
        model = build_model("iwae", vector_info(D), latent=(2,), hidden=(16,), k=10, objective=objective).double()
        opt = torch.optim.Adam(model.parameters(), lr=2e-2)
        before = model.iwae_bound(x, 100).mean().item()
        for _ in range(60):
            opt.zero_grad()
            model.loss(x).backward()
            opt.step()
        assert model.iwae_bound(x, 100).mean().item() > before + 0.5


def test_posterior_mean_and_active_units():
    from dgmbench.metrics.likelihood import active_units

    model, x = sharp((3, 2), (8, 8))
    x = torch.bernoulli(torch.full((300, D), 0.5, dtype=torch.float64))
    with torch.no_grad():
        model.encoders[0][-1].weight[1].zero_()  # unit 1 of h_1: mean independent of x
    means = model.posterior_mean(x)
    assert means.shape == (300, 5)
    assert torch.allclose(means[:, :3], model.encoders[0](x).chunk(2, -1)[0])  # exact for h_1
    assert means[:, 1].var() == 0
    assert active_units(means[:, :3]) == 2


def test_paper_architectures_and_bad_options():
    from dgmbench.data.base import DataInfo

    info = DataInfo(name="mnist", variant="test", shape=(1, 28, 28), value_type="binary", num_levels=2)
    one = build_model("iwae", info)
    two = build_model("iwae", info, latent=(100, 50), hidden=(200, 100))
    assert [m.out_features for m in one.encoders[0] if isinstance(m, torch.nn.Linear)] == [200, 200, 100]
    assert [m.out_features for m in two.encoders[1] if isinstance(m, torch.nn.Linear)] == [100, 100, 100]
    assert [m.out_features for m in two.decoders[0] if isinstance(m, torch.nn.Linear)] == [200, 200, 784]
    assert two.sample(3).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="one positive size per stochastic layer"):
        build_model("iwae", info, latent=(100, 50))
    with pytest.raises(ValueError, match="objective"):
        build_model("iwae", info, objective="elbo")
