"""BEGAN: the L1 energy, the proportional control of k (eq. 4, clipped to [0, 1]) and the
convergence measure M_global, checked against the logged losses of each step."""
from __future__ import annotations

import pytest
import torch

from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from gan_helpers import vector_info


def test_l1_energy_and_objectives():
    model = build_model("began", vector_info(3), latent=2, g_hidden=(8,), d_hidden=(8,), code=4)
    x = torch.randn(5, 3)
    assert torch.allclose(model.discriminator(x), (model.discriminator.reconstruct(x) - x).abs().mean(1))
    model.k.fill_(0.25)
    real, fake = torch.tensor([0.4, 0.6]), torch.tensor([0.2, 0.2])
    assert model.discriminator_objective(real, fake).item() == pytest.approx(0.5 - 0.25 * 0.2)


def test_k_follows_the_equilibrium_controller():
    torch.manual_seed(0)
    model = build_model("began", vector_info(2), latent=2, g_hidden=(16,), d_hidden=(16,), code=4, lambda_k=0.05)
    assert float(model.k) == 0.0
    train = TrainConfig(lr=1e-3)
    optimizers = model.configure_optimizers(train)
    k = 0.0
    for _ in range(20):
        scalars = model.training_step(torch.randn(32, 2), optimizers, train)
        real, fake = scalars["d_real"], scalars["d_fake"]
        assert scalars["k"] == pytest.approx(k, abs=1e-6)  # logged before this step's update
        assert scalars["convergence"] == pytest.approx(real + abs(0.5 * real - fake), rel=1e-5)
        k = min(max(k + 0.05 * (0.5 * real - fake), 0.0), 1.0)
        assert float(model.k) == pytest.approx(k, abs=1e-6)
    assert "k" in model.state_dict()  # resumed runs keep the controller's state
    with pytest.raises(ValueError, match="gamma"):
        build_model("began", vector_info(2), gamma=1.5)
