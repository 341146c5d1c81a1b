"""GMMN: the training loss is sqrt(MMD^2_b) between data and samples (or MMD^2_u), its
gradient reaches the generator, and a short fit on a 2-D Gaussian moves the samples'
moments to the data's."""
from __future__ import annotations

import pytest
import torch

from dgmbench.models import build_model
from dgmbench.models.base import Implicit, TrainConfig
from dgmbench.models.gans.layers.mmd import mmd2
from gan_helpers import vector_info


def test_loss_is_the_square_root_of_the_biased_mmd():
    torch.manual_seed(0)
    model = build_model("gmmn", vector_info(2), hidden=(16,), bandwidths=(1.0, 2.0))
    assert isinstance(model, Implicit) and model.validation_score(torch.randn(4, 2)) is None
    x = torch.randn(32, 2)
    torch.manual_seed(5)
    loss = model.loss(x)
    torch.manual_seed(5)
    fake = model.generate(32)
    assert loss.item() == pytest.approx(mmd2(x, fake, (1.0, 2.0)).sqrt().item(), rel=1e-6)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())


def test_fit_matches_the_data_moments():
    torch.manual_seed(0)
    model = build_model("gmmn", vector_info(2), hidden=(32, 32), bandwidths=(0.5, 1.0, 2.0))
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    target = torch.tensor([2.0, -1.0])
    for _ in range(150):
        scalars = model.training_step(target + 0.5 * torch.randn(64, 2), optimizers, train)
    samples = model.sample(4000)
    assert torch.allclose(samples.mean(0), target, atol=0.1)
    assert torch.allclose(samples.std(0), torch.full((2,), 0.5), atol=0.1)
    assert "mmd" in scalars


def test_reference_configuration_and_bad_bandwidths():
    model = build_model("gmmn", vector_info(2))
    assert model.config.hidden == (64, 256, 256, 1024) and model.config.bandwidths == (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
    assert model.train_defaults["batch_size"] == 1000
    with pytest.raises(ValueError, match="bandwidths"):
        build_model("gmmn", vector_info(2), bandwidths=(0.0,))
