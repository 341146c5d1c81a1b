"""WGAN-GP (Gulrajani et al. 2017): the penalty term against a direct computation, and after
training the critic of the model (its own training_step) between two 2-D Gaussians a
distance 3 apart, the gradient norm on interpolates is at the penalised optimum near 1 and
the critic's estimate per unit slope is W1 = 3."""
from __future__ import annotations

import pytest
import torch

from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.layers.losses import gradient_penalty
from gan_helpers import vector_info


def test_penalty_against_a_linear_critic_with_known_gradient():
    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, -1.0, 2.0]]))  # gradient norm 3 everywhere
    penalty, norms = gradient_penalty(lambda x: critic(x).squeeze(-1), torch.randn(10, 3), torch.randn(10, 3))
    assert torch.allclose(norms, torch.full((10,), 3.0)) and penalty.item() == pytest.approx(4.0)
    penalty.backward()  # differentiable in the critic's parameters (double backprop)
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_trained_critic_has_unit_gradient_norm_and_estimates_w1():
    """Data N(0, I), a fixed 'generator' N((3, 0), I) in 2-D: W1 = 3, transported by a
    translation, so the best critic is linear, f = -k x_1. Its penalised objective
    3k - lambda (k - 1)^2 peaks at k = 1 + 3 / (2 lambda) = 1.15: the gradient norm on the
    interpolates settles there (the soft penalty's closed-form optimum, near 1), and the
    critic's estimate divided by it is W1. (In 1-D the same problem has a local optimum
    f = +k x that the critic cannot leave without passing through gradient 0.)"""
    torch.manual_seed(0)
    model = build_model("wgan_gp", vector_info(2), latent=2, g_hidden=(8,), d_hidden=(64, 64), n_critic=10**9)
    shift = torch.tensor([3.0, 0.0])
    # a fixed generator N((3, 0), I), and n_critic so large that it never steps
    model.generate_with_input = lambda n, labels=None: (shift + torch.randn(n, 2), None)
    train = TrainConfig(lr=1e-3)
    optimizers = model.configure_optimizers(train)
    for _ in range(400):
        scalars = model.training_step(torch.randn(128, 2), optimizers, train)
    real, fake = torch.randn(4000, 2), shift + torch.randn(4000, 2)
    _, norms = gradient_penalty(model.discriminator, real, fake)
    k = 1 + 3 / (2 * model.config.penalty)
    assert norms.mean().item() == pytest.approx(k, abs=0.08)
    assert norms.std().item() < 0.1
    with torch.no_grad():
        estimate = (model.discriminator(real).mean() - model.discriminator(fake).mean()).item()
    assert estimate / norms.mean().item() == pytest.approx(3.0, abs=0.1)
    assert scalars["grad_norm"] == pytest.approx(k, abs=0.15)
    assert int(model.generator_updates) == 0


def test_reference_configuration_and_rejected_batch_norm():
    model = build_model("wgan_gp", vector_info(2))
    assert (model.config.penalty, model.config.n_critic, tuple(model.config.betas)) == (10.0, 5, (0.0, 0.9))
    assert model.train_defaults["lr"] == 1e-4
    with pytest.raises(ValueError, match="per example"):
        build_model("wgan_gp", vector_info(2), critic_norm="batch")
