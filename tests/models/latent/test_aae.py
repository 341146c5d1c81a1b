"""Adversarial autoencoder: the discriminator loss against its closed form at the optimal
discriminator, and training matches the codes' distribution to the N(0, I) prior."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import vector_info
from dgmbench.models import TrainConfig, build_model
from dgmbench.models.base import ExactLikelihood, LowerBound

D = 10


def test_discriminator_loss_is_log4_when_codes_follow_the_prior_and_d_is_constant():
    model = build_model("aae", vector_info(D), latent=2, hidden=8, discriminator_hidden=8)
    with torch.no_grad():  # D(z) = 1/2 everywhere: the optimal discriminator when q(z) = p(z)
        for p in model.discriminator.parameters():
            p.zero_()
    z = torch.randn(50, 2)
    assert model.discriminator_loss(z, torch.randn(50, 2)).item() == pytest.approx(2 * math.log(2))


def far_from_prior(codes: torch.Tensor) -> float:
    """|mean| + ||Cov - I||_F of codes: zero for the first two moments of N(0, I)."""
    return codes.mean(0).norm().item() + (torch.cov(codes.T) - torch.eye(codes.shape[1])).norm().item()


@pytest.mark.parametrize("steps,threshold", [(100, None), pytest.param(600, 0.6, marks=pytest.mark.slow)])
def test_training_matches_the_aggregated_posterior_to_the_prior(steps, threshold):
    torch.manual_seed(0)
    model = build_model("aae", vector_info(D), latent=2, hidden=32, discriminator_hidden=16)
    prototypes = torch.rand(6, D)
    x = torch.bernoulli(prototypes[torch.randint(0, 6, (600,))])
    train = TrainConfig(lr=3e-3)
    opts = model.configure_optimizers(train)
    with torch.no_grad():
        start = far_from_prior(model.encoder(x))
    for step in range(steps):
        model.training_step(x[(step % 3) * 200:(step % 3 + 1) * 200], opts, train)
    with torch.no_grad():
        end = far_from_prior(model.encoder(x))
    assert end < (threshold if threshold is not None else 0.7 * start), (start, end)
    assert model.loss(x).item() < 0.8 * D * math.log(2)  # and it still reconstructs
    assert model.sample(5).shape == (5, D)
    assert not isinstance(model, (ExactLikelihood, LowerBound))
