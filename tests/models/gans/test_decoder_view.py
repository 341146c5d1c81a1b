"""A GAN generator as a Gaussian decoder (observation_std): off by default (not a
decoder-based model), and when on, AIS's log p(x) for a linear generator G(z) = Wz + b
matches the exact Gaussian marginal N(b, W W^T + s^2 I)."""
from __future__ import annotations

import pytest
import torch

from dgmbench.metrics.decoder_ais import DecoderModel, ais_log_likelihood
from dgmbench.models import build_model
from gan_helpers import vector_info


def test_off_by_default_and_validated():
    assert not isinstance(build_model("wgan_gp", vector_info(2)), DecoderModel)
    assert isinstance(build_model("wgan_gp", vector_info(2), observation_std=0.5), DecoderModel)
    with pytest.raises(ValueError, match="prior"):
        build_model("gan", vector_info(2), observation_std=0.5)  # the GAN's reference prior is uniform


def test_ais_matches_the_exact_marginal_of_a_linear_generator():
    torch.manual_seed(0)
    model = build_model("wgan_gp", vector_info(3), latent=2, g_hidden=(), observation_std=0.5).double().eval()
    linear = model.generator.body[0]
    covariance = linear.weight @ linear.weight.T + 0.25 * torch.eye(3, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(linear.bias.detach(), covariance.detach())
    x = exact.sample((6,))
    # the observation model itself: log mean_z p(x | z) over many prior draws (naive Monte Carlo)
    z = torch.randn(200_000, 1, 2, dtype=torch.float64).expand(-1, 6, -1)
    with torch.no_grad():
        naive = torch.logsumexp(model.log_likelihood(x, z), 0) - torch.log(torch.tensor(200_000.0))
    assert torch.allclose(naive, exact.log_prob(x), atol=0.02)
    # and the decoder_ais estimator runs on it and lands near the truth (its per-example
    # noise at 64 chains, 300 steps was up to ~0.06 nats in trials; the test of the estimator
    # itself is the metric's)
    error = ais_log_likelihood(model, x, steps=300, chains=64, leapfrog=5) - exact.log_prob(x)
    assert error.abs().max() < 0.15 and error.mean().abs() < 0.05
    z = torch.randn(4, 2, dtype=torch.float64)
    assert model.sample_given_latent(z).shape == (4, 3)
