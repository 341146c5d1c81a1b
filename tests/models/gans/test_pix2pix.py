"""pix2pix (Isola et al. 2017): the reference networks (U-Net widths, 70x70 PatchGAN receptive
field measured by autograd), the objective of eq. 4 against a closed form with a constant
discriminator, gradients reaching every parameter, the alternating update touching only
its own player, and a tiny run on the inversion task lowering the error against the truth."""
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
from dgmbench.models.gans.layers.translation import PatchDiscriminator

TINY = dict(base_channels=8, d_base_channels=8)


def pair_info(side: int, channels: int = 1, variant: str = "invert_aligned") -> DataInfo:
    return DataInfo(name="digits_translation", variant=variant, shape=(channels, side, 2 * side), value_type="binary")


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits_translation/invert_aligned")


def test_reference_configuration():
    c = build_model("pix2pix", pair_info(8)).config
    assert (c.l1_weight, c.dropout, c.dropout_layers, c.d_layers, c.norm) == (100.0, 0.5, 3, 3, "batch")
    assert (c.base_channels, c.d_base_channels, c.depth, c.generator) == (64, 64, 8, "unet")
    assert tuple(c.betas) == (0.5, 0.999)
    # 256x256 at an eighth of the widths (base 8 for 64, to keep the test light)
    model = build_model("pix2pix", pair_info(256, 3), base_channels=8, d_base_channels=8)
    assert model.train_defaults == {"patience": None, "lr": 2e-4, "batch_size": 1}
    # encoder C64-C128-C256-C512-C512-C512-C512-C512
    encoder = [m for layer in model.generator.down for m in layer if isinstance(m, nn.Conv2d)]
    assert [m.out_channels * 8 for m in encoder] == [64, 128, 256, 512, 512, 512, 512, 512]
    # decoder with skips: inputs doubled except the innermost; dropout in its first three layers
    decoder = [m for layer in model.generator.up for m in layer if isinstance(m, nn.ConvTranspose2d)]
    assert [m.in_channels * 8 for m in decoder] == [512, 1024, 1024, 1024, 1024, 512, 256, 128]
    assert [m.out_channels for m in decoder] == [64, 64, 64, 64, 32, 16, 8, 3]
    assert [any(isinstance(m, nn.Dropout) for m in layer) for layer in model.generator.up] == [True] * 3 + [False] * 5
    # no norm on the first encoder layer
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.generator.down[0])
    assert model.discriminator.body[0].in_channels == 6  # D sees (x, y)
    # weights from N(0, 0.02) (Sec. 6.2)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001


def test_seventy_by_seventy_patchgan_receptive_field():
    """The gradient of one output logit w.r.t. the input is non-zero on a 70x70 window."""
    torch.manual_seed(0)
    d = PatchDiscriminator(1, 4, 3, "none").double()
    x = torch.rand(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero()
    assert (rows.max() - rows.min() + 1).item() == 70 and (cols.max() - cols.min() + 1).item() == 70


@pytest.mark.parametrize("side, depth, d_layers, patches", [(8, 3, 1, 2), (28, 2, 3, 1), (32, 5, 3, 2)])
def test_shapes_follow_the_image_size(side, depth, d_layers, patches):
    torch.manual_seed(0)
    model = build_model("pix2pix", pair_info(side), **TINY)
    assert (model.depth, model.d_layers) == (depth, d_layers)
    x = torch.rand(3, 1, side, side)
    y = model.translate(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert model.critic(x, y).shape == (3, 1, patches, patches)


def test_sample_translates_held_out_sources(data):
    torch.manual_seed(0)
    model = build_model("pix2pix", data.info, **TINY, test_dropout=False).eval()
    pairs = model.sample(7)
    assert pairs.shape == (7, 1, 8, 16)
    source, translated = split_pair(pairs)
    valid = split_pair(data.split("valid"))[0]
    assert all((valid == s).flatten(1).all(1).any() for s in source)  # each source is a validation image
    assert torch.allclose(translated, model.translate(source))


def test_dropout_is_the_noise_at_test_time(data):
    torch.manual_seed(0)
    x = split_pair(data.split("test"))[0][:4]
    noisy = build_model("pix2pix", data.info, **TINY).eval()
    assert not torch.equal(noisy.translate(x), noisy.translate(x))
    quiet = build_model("pix2pix", data.info, **TINY, test_dropout=False).eval()
    assert torch.equal(quiet.translate(x), quiet.translate(x))


def test_objective_against_closed_form_with_a_constant_discriminator(data):
    """With D's last layer zeroed, every patch logit is 0: D's loss (divided by 2) is
    (log 2 + log 2) / 2 = log 2, G's adversarial term -log sigmoid(0) = log 2, and eq. 4 adds
    100 * mean |y - G(x)|."""
    torch.manual_seed(0)
    model = build_model("pix2pix", data.info, **TINY, test_dropout=False)
    last = model.discriminator.body[-1]
    nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)
    source, target = split_pair(data.split("train")[:16])
    fake = model.generator(source)
    assert math.isclose(model.discriminator_loss(source, target, fake).item(), math.log(2), rel_tol=1e-6)
    total, adversarial, l1 = model.generator_loss(source, target, fake)
    expected_l1 = F.l1_loss(fake, target).item()
    assert math.isclose(adversarial.item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(l1.item(), expected_l1, rel_tol=1e-6)
    assert math.isclose(total.item(), math.log(2) + 100 * expected_l1, rel_tol=1e-6)


def test_unconditional_discriminator_sees_only_the_output(data):
    model = build_model("pix2pix", data.info, **TINY, conditional=False)
    assert model.discriminator.body[0].in_channels == 1


def test_gradients_reach_every_parameter(data):
    torch.manual_seed(0)
    model = build_model("pix2pix", data.info, **TINY)
    source, target = split_pair(data.split("train")[:8])
    fake = model.generator(source)
    model.discriminator_loss(source, target, fake.detach()).backward()
    for name, p in model.discriminator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.generator.parameters())
    model.zero_grad()
    model.generator_loss(source, target, fake)[0].backward()
    for name, p in model.generator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _changed(module, before):
    return {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}


def test_each_step_changes_only_its_own_player(data):
    torch.manual_seed(0)
    model = build_model("pix2pix", data.info, **TINY)
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    source, target = split_pair(data.split("train")[:8])
    fake = model.generator(source)
    g0, d0 = _snapshot(model.generator), _snapshot(model.discriminator)
    model.discriminator_step(source, target, fake, optimizers["discriminator"], train)
    assert not _changed(model.generator, g0) and _changed(model.discriminator, d0)
    d1 = _snapshot(model.discriminator)
    scalars = model.generator_step(source, target, fake, optimizers["generator"], train)
    assert not _changed(model.discriminator, d1) and _changed(model.generator, g0)
    assert all(p.requires_grad for p in model.discriminator.parameters())  # unfrozen afterwards
    assert set(scalars) == {"g_loss", "g_adversarial", "l1"} and all(math.isfinite(v) for v in scalars.values())


def test_a_few_steps_on_inversion_reduce_the_error_against_the_truth(data):
    torch.manual_seed(0)
    model = build_model("pix2pix", data.info, **TINY, test_dropout=False)
    train = TrainConfig(lr=5e-3, batch_size=32)
    optimizers = model.configure_optimizers(train)
    source, truth = split_pair(data.split("test"))

    def error():
        model.eval()
        with torch.no_grad():
            value = (model.translate(source) - truth).abs().mean().item()
        model.train()
        return value

    before = error()
    x = data.split("train")
    for step in range(40):
        model.training_step(x[torch.randint(len(x), (32,))], optimizers, train)
    after = error()
    assert after < 0.3 * before and after < 0.15, (before, after)  # 0.50 -> 0.11 when written


def test_rejects_unaligned_and_non_translation_data():
    with pytest.raises(ValueError, match="aligned pairs.*invert_aligned"):
        build_model("pix2pix", pair_info(8, variant="invert_unaligned"))
    with pytest.raises(ValueError, match="translation dataset"):
        build_model("pix2pix", DataInfo(name="digits", variant="binary", shape=(1, 8, 8), value_type="binary"))
    with pytest.raises(ValueError, match="generator"):
        build_model("pix2pix", pair_info(8), generator="resnet")


def test_quick_suite_trains_on_the_translation_pairs():
    from dgmbench.models.base import MODELS
    from dgmbench.runner import quick_dataset_name, quick_suite_models

    assert quick_dataset_name(MODELS.get("pix2pix")) == "digits_translation/invert_aligned"
    assert quick_dataset_name(MODELS.get("cyclegan")) == "digits_translation/invert_unaligned"
    assert quick_dataset_name(MODELS.get("dcgan")) == "digits/dequantized"  # others: digits/<quick_variant>
    assert {"pix2pix", "cyclegan"} <= set(quick_suite_models())
