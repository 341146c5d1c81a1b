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


@pytest.mark.parametrize("value_type,levels,decoder", [
    ("continuous", None, "gaussian"), ("discrete", 5, "logistic"),
])
def test_other_decoders_bounds_against_quadrature(value_type, levels, decoder):
    """Gaussian and discretized-logistic decoders: ELBO < log p(x) and IWAE approaches it."""
    torch.manual_seed(0)
    model = build_model("vae", vector_info(3, value_type, levels), latent=1, hidden=16, layers=1).double()
    assert model.likelihood == decoder
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3)
        x = torch.randn(5, 3, dtype=torch.float64) if levels is None else torch.randint(0, levels, (5, 3)).double()
        exact = log_marginal_by_quadrature(model, x)
        elbo = model.elbo(x.repeat(4000, 1)).elbo.view(4000, -1).mean(0)
        iwae = model.iwae_bound(x.repeat(4, 1), 5000).view(4, -1).mean(0)
    assert torch.all(elbo < exact)
    assert (exact - iwae).abs().max() < 0.05 * (exact - elbo).mean()


def test_discretized_logistic_decoder_is_normalised_over_all_levels():
    torch.manual_seed(0)
    model = build_model("vae", vector_info(2, "discrete", 4), latent=2, hidden=8).double()
    grid = torch.cartesian_prod(torch.arange(4.0), torch.arange(4.0)).double()  # every x in {0..3}^2
    z = torch.randn(3, 1, 2, dtype=torch.float64).expand(-1, len(grid), -1)
    total = torch.logsumexp(model.log_likelihood(grid, z), dim=1)
    assert torch.allclose(total, torch.zeros(3, dtype=torch.float64), atol=1e-10)


def test_decoder_must_match_the_data():
    with pytest.raises(ValueError, match="does not model binary data"):
        build_model("vae", vector_info(D), decoder="gaussian")
    with pytest.raises(ValueError, match="needs image data"):
        build_model("vae", vector_info(D), architecture="conv")


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 6, 10)])
def test_conv_architecture_shapes_and_samples(shape):
    from dgmbench.data.base import DataInfo

    info = DataInfo(name="tiny", variant="test", shape=shape, value_type="binary", num_levels=2)
    model = build_model("vae", info, latent=4, architecture="conv")
    x = torch.bernoulli(torch.full((3, *shape), 0.5))
    bound = model.elbo(x)
    assert bound.elbo.shape == (3,) and model.iwae_bound(x, 7).shape == (3,)
    assert model.sample(2).shape == (2, *shape)
    model.loss(x).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_kl_annealing_and_free_bits_change_only_the_training_loss():
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((16, D), 0.5))
    plain = build_model("vae", vector_info(D), latent=3, hidden=8)
    annealed = build_model("vae", vector_info(D), latent=3, hidden=8, kl_warmup=4)
    annealed.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    recon, kl, _ = annealed._bound_parts(x)
    torch.manual_seed(1)
    assert annealed.loss(x).item() == pytest.approx(-(recon - 0.25 * kl).mean().item(), rel=1e-6)  # beta = 1/4 at step 1
    assert annealed.kl_weight() == 0.5
    for _ in range(5):
        annealed.loss(x)
    assert annealed.kl_weight() == 1.0
    annealed.eval()
    torch.manual_seed(2)
    evaluated = annealed.loss(x)
    torch.manual_seed(2)
    assert evaluated.item() == pytest.approx(-plain.elbo(x).elbo.mean().item())  # reports the true bound

    free = build_model("vae", vector_info(D), latent=3, hidden=8, free_bits=5.0)
    free.load_state_dict(plain.state_dict())
    free.loss(x).backward()  # every unit's batch KL is below 5 nats: no KL gradient reaches the encoder
    (kl_units,) = [free.kl_per_unit(x).mean(0)]
    assert torch.all(kl_units < 5.0)
    torch.manual_seed(3)
    reconstruction_only = build_model("vae", vector_info(D), latent=3, hidden=8)
    reconstruction_only.load_state_dict(plain.state_dict())
    torch.manual_seed(4)
    g_free = torch.autograd.grad(free.loss(x), list(free.posterior_module.parameters()))
    torch.manual_seed(4)
    g_recon = torch.autograd.grad(-reconstruction_only._bound_parts(x)[0].mean(), list(reconstruction_only.posterior_module.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_free, g_recon))


def test_active_units_count_only_the_units_the_posterior_uses():
    from dgmbench.metrics.likelihood import active_units

    torch.manual_seed(0)
    model = build_model("vae", vector_info(D), latent=4, hidden=8, layers=1)
    with torch.no_grad():  # units 2 and 3: posterior mean independent of x (collapsed)
        last = model.posterior_module.net[-1]
        last.weight[2:4].zero_()
        model.posterior_module.net[0].weight.mul_(5)
    x = torch.bernoulli(torch.full((500, D), 0.5))
    means = model.posterior_mean(x)
    assert means[:, 2:4].var(0).max() == 0
    assert active_units(means) == 2


def test_relu_layers_and_a_separate_encoder_depth():
    model = build_model("vae", vector_info(D), latent=2, hidden=8, layers=2, encoder_layers=1, activation="relu")
    encoder_linears = [m for m in model.posterior_module.modules() if isinstance(m, torch.nn.Linear)]
    decoder_linears = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert len(encoder_linears) == 2 and len(decoder_linears) == 3  # 1 and 2 hidden layers
    assert any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert not any(isinstance(m, torch.nn.Tanh) for m in model.modules())
    with pytest.raises(ValueError, match="activation must be one of tanh, relu"):
        build_model("vae", vector_info(D), activation="gelu")


def test_sgd_schedule_follows_the_pylearn2_rules_update_by_update():
    """lr_t = max(min_lr, lr / decay^t); momentum linear from `momentum` to `final_momentum`
    between the update counts of the ramp; both from the updates done so far."""
    from dgmbench.models.base import TrainConfig

    model = build_model("vae", vector_info(D), latent=2, hidden=8, optimizer="sgd", momentum=0.1,
                        final_momentum=0.9, momentum_ramp_updates=(2, 4), lr_decay=2.0, min_lr=0.1)
    train = TrainConfig(lr=1.0)
    optimizers = model.configure_optimizers(train)
    assert isinstance(optimizers["model"], torch.optim.SGD)
    x = torch.bernoulli(torch.full((4, D), 0.5))
    seen = []
    for _ in range(6):
        before = [p.detach().clone() for p in model.parameters()]
        model.training_step(x, optimizers, train)
        group = optimizers["model"].param_groups[0]
        seen.append((group["lr"], group["momentum"]))
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert [lr for lr, _ in seen] == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.1, 0.1])
    assert [m for _, m in seen] == pytest.approx([0.1, 0.1, 0.1, 0.5, 0.9, 0.9])
    with pytest.raises(ValueError, match="use optimizer=sgd"):
        build_model("vae", vector_info(D), final_momentum=0.9, momentum_ramp_updates=(0, 1))
