"""DCGAN (Radford et al. 2016): the architecture guidelines, checked on the built networks
for 28x28, 32x32 and 8x8 images: shapes, no pooling or hidden fully connected layers,
batch norm everywhere except the generator output and the discriminator input, ReLU/tanh
in G and LeakyReLU(0.2) in D, N(0, 0.02) weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dgmbench.data.base import DataInfo
from dgmbench.models import build_model
from dgmbench.models.gans.layers.networks import dcgan_levels


def image_info(channels, side):
    return DataInfo(name="img", variant="test", shape=(channels, side, side), value_type="continuous")


@pytest.mark.parametrize("shape, levels", [((1, 28, 28), (2, 7)), ((3, 32, 32), (3, 4)), ((1, 8, 8), (1, 4)), ((3, 64, 64), (4, 4))])
def test_levels(shape, levels):
    assert dcgan_levels(shape) == levels


@pytest.mark.parametrize("channels, side", [(1, 28), (3, 32), (1, 8)])
def test_shapes_and_guidelines(channels, side):
    torch.manual_seed(0)
    model = build_model("dcgan", image_info(channels, side), base_channels=16, latent=10)
    x = model.sample(4)
    assert x.shape == (4, channels, side, side) and x.min() >= 0 and x.max() <= 1
    assert model.discriminator(x).shape == (4,)
    modules = list(model.modules())
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in modules)
    g_layers, d_layers = list(model.generator.body), list(model.discriminator.body)
    # generator: project (Linear) then transposed convolutions only; BN+ReLU except at the output
    assert isinstance(g_layers[0], nn.Linear) and isinstance(g_layers[-1], nn.ConvTranspose2d)
    assert sum(isinstance(m, nn.Linear) for m in g_layers) == 1
    assert all(isinstance(m, (nn.Linear, nn.Unflatten, nn.BatchNorm2d, nn.ReLU, nn.ConvTranspose2d)) for m in g_layers)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g_layers) == sum(isinstance(m, nn.ConvTranspose2d) for m in g_layers)
    # discriminator: strided convolutions, no BN on the input layer, LeakyReLU(0.2)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    convs = [m for m in d_layers if isinstance(m, nn.Conv2d)]
    assert all(c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_layers) == len(convs) - 1
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, nn.LeakyReLU))


def test_reference_configuration_and_initialisation():
    model = build_model("dcgan", image_info(3, 64))
    assert model.config.latent == 100 and model.config.prior == "uniform" and tuple(model.config.betas) == (0.5, 0.999)
    assert model.train_defaults == {"patience": None, "lr": 2e-4, "batch_size": 128}
    # the LSUN generator of Fig. 1: 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3
    convs = [m for m in model.generator.body if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1024, 512), (512, 256), (256, 128), (128, 3)]
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001


def test_rejects_vectors():
    from gan_helpers import vector_info

    with pytest.raises(ValueError, match="images"):
        build_model("dcgan", vector_info(2))
