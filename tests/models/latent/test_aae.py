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


def test_grey_level_data_give_decoded_means_and_unscaled_data_are_refused():
    """On dequantized images (values in [0, 1]) a sample is the decoder's mean sigmoid(g(z)),
    not a Bernoulli draw (the Parzen protocol of the paper scores grey levels), and training
    runs on grey levels; unscaled continuous data, which a sigmoid decoder cannot reach, are
    refused with an error saying what it accepts."""
    from dgmbench.data.base import DataInfo

    grey = DataInfo(name="tiny", variant="dequantized", shape=(D,), value_type="continuous", dequantization_levels=256)
    model = build_model("aae", grey, latent=2, hidden=8, discriminator_hidden=8)
    torch.manual_seed(0)
    samples = model.sample(200)
    torch.manual_seed(0)
    expected = torch.sigmoid(model.decoder(torch.randn(200, 2))).detach()
    torch.testing.assert_close(samples, expected)
    assert bool(((samples > 0) & (samples < 1)).all()) and samples.unique().numel() > 2
    x = torch.rand(30, D)
    opts = model.configure_optimizers(TrainConfig(lr=1e-3))
    assert set(model.training_step(x, opts, TrainConfig(lr=1e-3))) == {"loss", "discriminator", "generator"}
    raw = DataInfo(name="toy", variant="raw", shape=(2,), value_type="continuous")
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        build_model("aae", raw)
