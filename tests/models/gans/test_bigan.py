"""BiGAN / ALI: the discriminator scores joint pairs (its output depends on z as well as
x), each player's step moves only its own networks (G and E together), the encoder is
deterministic (BiGAN) or a reparameterised Gaussian (ALI), and the logged reconstruction
error is the mean squared error of G(E(x))."""
from __future__ import annotations

import pytest
import torch

from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from gan_helpers import vector_info


def tiny(**options):
    torch.manual_seed(0)
    return build_model("bigan", vector_info(3), **{"latent": 2, "g_hidden": (16,), "e_hidden": (16,),
                                                    "d_hidden": (16,), **options})


def test_joint_discriminator_depends_on_the_latent():
    model = tiny().eval()
    x = torch.randn(4, 3)
    assert not torch.allclose(model.joint_score(x, torch.zeros(4, 2)), model.joint_score(x, torch.ones(4, 2)))


def test_steps_move_their_own_players_and_log_reconstruction():
    model = tiny()
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    params = {name: [p.detach().clone() for p in getattr(model, name).parameters()]
              for name in ("generator", "encoder", "discriminator")}
    d_after = None
    original = model.after_discriminator_step

    def record():
        nonlocal d_after
        original()
        d_after = [p.detach().clone() for p in model.discriminator.parameters()]
        # only D has moved so far
        for name in ("generator", "encoder"):
            assert all(torch.equal(a, b) for a, b in zip(params[name], getattr(model, name).parameters()))

    model.after_discriminator_step = record
    x = torch.randn(16, 3)
    scalars = model.training_step(x, optimizers, train)
    for name in ("generator", "encoder"):
        assert any(not torch.equal(a, b) for a, b in zip(params[name], getattr(model, name).parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d_after, model.discriminator.parameters()))
    assert "reconstruction_mse" in scalars and "js_estimate" in scalars
    expected = (model.generator(model.encode(x)) - x).pow(2).mean().item()
    assert model.reconstruction_error(x) == pytest.approx(expected, rel=1e-6)


def test_ali_encoder_is_stochastic_with_a_deterministic_mean():
    model = tiny(encoder="gaussian")
    x = torch.randn(5, 3)
    assert not torch.allclose(model.encode(x), model.encode(x))
    assert torch.allclose(model.encode(x, sample=False), model.encode(x, sample=False))
    assert torch.allclose(tiny().encode(x), tiny().encode(x))  # BiGAN: deterministic
    with pytest.raises(ValueError, match="encoder"):
        tiny(encoder="flow")
