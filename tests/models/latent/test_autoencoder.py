"""Deterministic autoencoder: the fitted code Gaussian equals the maximum-likelihood Gaussian
of the training codes (numpy's mean and covariance), training lowers the reconstruction
error, and the model claims no likelihood."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import vector_info
from dgmbench.models import TrainConfig, build_model
from dgmbench.models.base import ExactLikelihood, LowerBound

D = 12


def test_code_gaussian_is_the_maximum_likelihood_fit_of_the_epoch_codes():
    torch.manual_seed(0)
    model = build_model("autoencoder", vector_info(D), latent=3, hidden=16, jitter=0.0).double()
    x = torch.bernoulli(torch.full((90, D), 0.4, dtype=torch.float64))
    train = TrainConfig(lr=0.0)  # frozen weights: the codes are exactly f(x)
    opts = model.configure_optimizers(train)
    for batch in x.split(30):
        model.training_step(batch, opts, train)
    model.validation_score(x[:5])
    codes = model.encoder(x).detach().numpy()
    assert np.allclose(model.code_mean.numpy(), codes.mean(0))
    assert np.allclose(model.code_cov.numpy(), np.cov(codes.T, bias=True))
    assert model.code_count.item() == 0  # the next epoch starts afresh


def test_training_lowers_reconstruction_and_samples_have_the_data_shape():
    torch.manual_seed(0)
    model = build_model("autoencoder", vector_info(D), latent=4, hidden=32)
    x = torch.bernoulli(torch.tensor([[0.9] * 6 + [0.1] * 6, [0.1] * 6 + [0.9] * 6]).repeat(50, 1))
    train = TrainConfig(lr=1e-2)
    opts = model.configure_optimizers(train)
    before = model.loss(x).item()
    for _ in range(100):
        model.training_step(x, opts, train)
    assert model.loss(x).item() < 0.5 * before
    samples = model.sample(7)
    assert samples.shape == (7, D) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert not isinstance(model, (ExactLikelihood, LowerBound))


def test_bad_options():
    with pytest.raises(ValueError, match="latent"):
        build_model("autoencoder", vector_info(D), latent=0)
