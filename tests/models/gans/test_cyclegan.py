"""CycleGAN (Zhu et al. 2017): the reference networks, the LSGAN + cycle objective of eq. 3
against closed forms with constant discriminators, the identity-loss option, the image
pool's history rule, gradients reaching every parameter, and each half of the alternating
update changing only its own player's parameters."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.data import load_dataset
from dgmbench.data.base import DataInfo
from dgmbench.data.translation import split_pair
from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.layers.translation import ImagePool, ResidualBlock

TINY = dict(base_channels=4, res_blocks=1, d_base_channels=8)


def pair_info(side: int, channels: int = 1, variant: str = "invert_unaligned") -> DataInfo:
    return DataInfo(name="digits_translation", variant=variant, shape=(channels, side, 2 * side), value_type="binary")


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits_translation/invert_unaligned")


def _constant_discriminators(model):
    for d in model.discriminators:
        nn.init.zeros_(d.body[-1].weight), nn.init.zeros_(d.body[-1].bias)


def test_reference_configuration():
    c = build_model("cyclegan", pair_info(8)).config
    assert (c.cycle_weight, c.identity_weight, c.pool_size, c.res_blocks, c.norm) == (10.0, 0.0, 50, 9, "instance")
    assert (c.generator, c.base_channels, c.d_layers, tuple(c.betas)) == ("resnet", 64, 3, (0.5, 0.999))
    model = build_model("cyclegan", pair_info(32, 3), base_channels=8, d_base_channels=8)
    assert model.train_defaults == {"patience": None, "lr": 2e-4, "batch_size": 1}
    body = list(model.generator_xy.body)
    convs = [m for m in body if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    # c7s1-64, d128, d256, [R256 x 9], u128, u64, c7s1-3 (at an eighth of the widths)
    assert [(m.kernel_size[0], m.stride[0], m.out_channels) for m in convs] == [
        (7, 1, 8), (3, 2, 16), (3, 2, 32), (3, 2, 16), (3, 2, 8), (7, 1, 3)]
    assert isinstance(convs[3], nn.ConvTranspose2d) and isinstance(convs[4], nn.ConvTranspose2d)
    assert sum(isinstance(m, ResidualBlock) for m in body) == 9
    assert any(isinstance(m, nn.InstanceNorm2d) for m in model.generator_xy.modules())
    assert isinstance(body[0], nn.ReflectionPad2d)


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_shapes(data, generator):
    torch.manual_seed(0)
    model = build_model("cyclegan", data.info, generator=generator, **TINY).eval()
    x = torch.rand(3, 1, 8, 8)
    for translator in (model.translate, model.translate_back):
        y = translator(x)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert model.discriminator_x(x).shape == (3, 1, 2, 2)
    pairs = model.sample(5)
    assert pairs.shape == (5, 1, 8, 16)
    source, translated = split_pair(pairs)
    assert torch.allclose(translated, model.translate(source))


def test_objective_against_closed_form_with_constant_discriminators(data):
    """D_X = D_Y = 0 everywhere: each LSGAN generator term is (0 - 1)^2 = 1 and each
    discriminator loss 1/2 [(0 - 1)^2 + 0^2] = 1/2; the rest of eq. 3 is lambda times the two
    cycle errors, computed here from the translators directly."""
    torch.manual_seed(0)
    model = build_model("cyclegan", data.info, **TINY)
    _constant_discriminators(model)
    x, y = split_pair(data.split("train")[:8])
    total, scalars, (fake_y, fake_x) = model.generator_loss(x, y)
    G, Fb = model.generator_xy, model.generator_yx
    cycle = F.l1_loss(Fb(G(x)), x) + F.l1_loss(G(Fb(y)), y)
    assert scalars["g_adversarial_x"] == 1 and scalars["g_adversarial_y"] == 1
    assert math.isclose(total.item(), 2 + 10 * cycle.item(), rel_tol=1e-6)
    loss_y, loss_x = model.discriminator_loss(x, y, fake_x, fake_y)
    assert loss_y.item() == 0.5 and loss_x.item() == 0.5
    # identity option: + 0.5 * lambda * (|G(y) - y| + |F(x) - x|)
    model.config.identity_weight = 0.5
    with_identity = model.generator_loss(x, y)[0]
    identity = F.l1_loss(G(y), y) + F.l1_loss(Fb(x), x)
    assert math.isclose(with_identity.item(), total.item() + 5 * identity.item(), rel_tol=1e-6)


def test_gradients_reach_every_parameter(data):
    torch.manual_seed(0)
    model = build_model("cyclegan", data.info, **TINY, identity_weight=0.5)
    x, y = split_pair(data.split("train")[:8])
    total, _, (fake_y, fake_x) = model.generator_loss(x, y)
    total.backward()
    for g in model.generators:
        for name, p in g.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.zero_grad()
    sum(model.discriminator_loss(x, y, fake_x.detach(), fake_y.detach())).backward()
    for d in model.discriminators:
        for name, p in d.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for g in model.generators for p in g.parameters())


def _snapshot(modules):
    return [{n: p.detach().clone() for n, p in m.named_parameters()} for m in modules]


def _all_changed(modules, before):
    return all(any(not torch.equal(p, b[n]) for n, p in m.named_parameters()) for m, b in zip(modules, before))


def _none_changed(modules, before):
    return all(torch.equal(p, b[n]) for m, b in zip(modules, before) for n, p in m.named_parameters())


def test_each_step_changes_only_its_own_player(data):
    torch.manual_seed(0)
    model = build_model("cyclegan", data.info, **TINY)
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    x, y = split_pair(data.split("train")[:8])
    g0, d0 = _snapshot(model.generators), _snapshot(model.discriminators)
    scalars, (fake_y, fake_x) = model.generator_step(x, y, optimizers["generator"], train)
    assert _all_changed(model.generators, g0) and _none_changed(model.discriminators, d0)
    assert all(p.requires_grad for d in model.discriminators for p in d.parameters())
    g1 = _snapshot(model.generators)
    model.discriminator_step(x, y, fake_y, fake_x, optimizers["discriminator"], train)
    assert _all_changed(model.discriminators, d0) and _none_changed(model.generators, g1)
    step = model.training_step(data.split("train")[:8], optimizers, train)
    assert {"g_loss", "cycle_x", "cycle_y", "d_loss_x", "d_loss_y"} <= set(step)
    assert all(math.isfinite(v) for v in step.values())


def test_image_pool_keeps_a_history():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 3  # filling: returned as they are
    second = (10 + torch.arange(6.0)).view(6, 1, 1, 1).expand(6, 1, 2, 2)
    out = pool.query(second)
    assert int(pool.count) == 4 and torch.equal(out[0], second[0])  # one free slot: stored and returned
    stored_before = {0.0, 1.0, 2.0, 10.0}
    for image, new in zip(out[1:], second[1:]):  # then each is the new image or a stored one
        assert image[0, 0, 0].item() in stored_before | {new[0, 0, 0].item()} | set(range(10, 16))
    history = set(pool.images[:, 0, 0, 0].tolist())
    assert history <= stored_before | set(float(v) for v in range(10, 16))
    # once full, each image of a batch is swapped with probability 1/2 against the pool as it
    # was before the batch (vectorised): about half of 4000 new ones come back as stored zeros
    pool = ImagePool(8, (1,))
    pool.query(torch.zeros(8, 1))
    returned = pool.query(torch.ones(4000, 1))
    assert 0.45 < (returned == 0).float().mean().item() < 0.55
    assert torch.equal(pool.images, torch.ones(8, 1))  # every slot was swapped for a new image
    assert torch.equal(ImagePool(0, (1,)).query(torch.ones(3, 1)), torch.ones(3, 1))


def test_rejects_bad_data_and_options():
    with pytest.raises(ValueError, match="divisible by 4"):
        build_model("cyclegan", pair_info(6))
    build_model("cyclegan", pair_info(6), generator="unet", **TINY)  # the U-Net handles it
    with pytest.raises(ValueError, match="translation dataset"):
        build_model("cyclegan", DataInfo(name="digits", variant="binary", shape=(1, 8, 8), value_type="binary"))
    with pytest.raises(ValueError, match="norm"):
        build_model("cyclegan", pair_info(8), norm="group")
