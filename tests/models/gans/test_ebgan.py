"""EBGAN: the energy is the autoencoder's per-pixel squared reconstruction error (computed
directly), the hinge objective by hand, the pulling-away term against its definition
(1 for a collapsed batch, 0 for orthogonal codes, a double loop otherwise)."""
from __future__ import annotations

import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.ebgan import pulling_away
from gan_helpers import vector_info


def test_energy_is_the_reconstruction_error():
    info = DataInfo(name="img", variant="t", shape=(1, 8, 8), value_type="continuous")
    model = build_model("ebgan", info, latent=4, base_channels=8, code=6)
    x = torch.rand(3, 1, 8, 8)
    expected = (model.discriminator.reconstruct(x) - (2 * x - 1)).pow(2).flatten(1).mean(1)
    assert torch.allclose(model.discriminator(x), expected)
    assert model.critic_features(x).shape == (3, 6)


def test_hinge_objective_by_hand():
    model = build_model("ebgan", vector_info(2), margin=0.5)
    real, fake = torch.tensor([0.2, 0.4]), torch.tensor([0.1, 0.7])
    assert model.discriminator_objective(real, fake).item() == pytest.approx(0.3 + (0.4 + 0.0) / 2)
    assert model.generator_objective(fake).item() == pytest.approx(0.4)


def test_pulling_away_term():
    assert pulling_away(torch.ones(5, 3)).item() == pytest.approx(1.0)  # collapsed: all codes parallel
    assert pulling_away(torch.eye(4)).item() == pytest.approx(0.0)
    s = torch.randn(6, 4, dtype=torch.float64)
    brute = sum((s[i] @ s[j] / (s[i].norm() * s[j].norm())) ** 2 for i in range(6) for j in range(6) if i != j) / 30
    assert pulling_away(s).item() == pytest.approx(brute.item(), rel=1e-10)


def test_pulling_away_reaches_the_generator_loss():
    torch.manual_seed(0)
    model = build_model("ebgan", vector_info(2), latent=3, g_hidden=(8,), d_hidden=(8,), code=4, pt_weight=0.1)
    x, fake = torch.randn(16, 2), model.sample(16)
    expected = model.generator_objective(model.critic(fake)) + 0.1 * pulling_away(model.critic_features(fake))
    assert model.generator_loss(fake, x).item() == pytest.approx(expected.item(), rel=1e-6)
    train = TrainConfig(lr=1e-3)
    scalars = model.training_step(x, model.configure_optimizers(train), train)
    assert scalars["d_real"] >= 0 and scalars["d_fake"] >= 0  # energies
    with pytest.raises(ValueError, match="minibatch"):
        build_model("ebgan", vector_info(2), minibatch_kernels=3)
