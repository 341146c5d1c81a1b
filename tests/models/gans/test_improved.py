"""Improved techniques (Salimans et al. 2016), tested directly: minibatch discrimination
makes an example's score depend on its batch; virtual batch norm makes a generated
example depend only on the fixed reference batch (not on its batch-mates); historical
averaging penalises the distance to the running mean of past parameters; feature
matching's generator loss is ||E f(x) - E f(G(z))||^2."""
from __future__ import annotations

import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.layers.improved import HistoricalAverage, MinibatchDiscrimination, VirtualBatchNorm
from gan_helpers import vector_info


def test_minibatch_features_against_the_definition():
    layer = MinibatchDiscrimination(in_features=4, kernels=3, kernel_dim=2).double()
    f = torch.randn(5, 4, dtype=torch.float64)
    m = (f @ layer.T).view(5, 3, 2)
    expected = torch.stack([
        torch.stack([sum(torch.exp(-(m[i, b] - m[j, b]).abs().sum()) for j in range(5)) for b in range(3)])
        for i in range(5)
    ])
    out = layer(f)
    assert torch.allclose(out[:, :4], f) and torch.allclose(out[:, 4:], expected)


def test_minibatch_discrimination_score_depends_on_the_batch():
    torch.manual_seed(0)
    model = build_model("gan", vector_info(2), d_hidden=(8,), maxout_pieces=2, dropout=0.0, input_dropout=0.0,
                        minibatch_kernels=4, minibatch_kernel_dim=3)
    model.eval()
    x = torch.randn(6, 2)
    alone = model.discriminator(x[:1])
    with_batch = model.discriminator(x)[0]
    with_other_batch = model.discriminator(torch.cat([x[:1], torch.randn(5, 2) * 3]))[0]
    assert not torch.allclose(alone, with_batch) and not torch.allclose(with_batch, with_other_batch)
    # without it the score is per example
    plain = build_model("gan", vector_info(2), d_hidden=(8,), maxout_pieces=2, dropout=0.0, input_dropout=0.0).eval()
    assert torch.allclose(plain.discriminator(x[:1]), plain.discriminator(x)[:1])


@pytest.mark.parametrize("info", [vector_info(3), DataInfo(name="img", variant="t", shape=(1, 8, 8), value_type="continuous")])
def test_virtual_batch_norm_output_depends_only_on_the_reference_batch(info):
    torch.manual_seed(0)
    model = build_model("lsgan", info, latent=5, g_hidden=(16, 16), base_channels=8,
                        generator_norm="virtual_batch", vbn_reference_size=10)
    assert any(isinstance(m, VirtualBatchNorm) for m in model.generator.modules())
    model.train()  # VBN has no train/eval difference; batch norm in train mode would mix examples
    z = torch.randn(6, 5)
    one = model.generator(z[:1])
    in_batch = model.generator(z)[:1]
    in_other_batch = model.generator(torch.cat([z[:1], 5 * torch.randn(7, 5)]))[:1]
    assert torch.allclose(one, in_batch, atol=1e-6) and torch.allclose(one, in_other_batch, atol=1e-6)
    # ... and it does depend on the reference batch
    model.generator.reference_z = torch.randn(10, 5)
    assert not torch.allclose(model.generator(z[:1]), one, atol=1e-4)


def test_virtual_batch_norm_statistics():
    layer = VirtualBatchNorm(2, reference_size=3).double()
    ref, x = torch.randn(3, 2, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
    out = layer(torch.cat([ref, x]))
    pooled = torch.cat([ref, x])  # the reference batch plus the example itself
    expected = (x - pooled.mean(0)) / (pooled.var(0, unbiased=False) + layer.eps).sqrt()
    assert torch.allclose(out[3:], expected)
    assert torch.allclose(out[:3], (ref - ref.mean(0)) / (ref.var(0, unbiased=False) + layer.eps).sqrt())


def test_historical_average_is_the_running_mean_of_past_parameters():
    module = torch.nn.Linear(2, 1)
    average = HistoricalAverage(module)
    history = [module.weight.detach().clone()]
    for _ in range(4):
        with torch.no_grad():
            module.weight.add_(torch.randn(1, 2))
        history.append(module.weight.detach().clone())
        average.update()
    assert torch.allclose(average.mean_0, torch.stack(history).mean(0))
    expected = (module.weight - torch.stack(history).mean(0)).pow(2).sum() + (module.bias - module.bias.detach()).pow(2).sum()
    assert torch.allclose(average.penalty(), expected)


def test_historical_averaging_option_adds_the_penalty_to_both_players():
    torch.manual_seed(0)
    model = build_model("gan", vector_info(2), d_hidden=(8,), g_hidden=(8,), maxout_pieces=2, dropout=0.0,
                        input_dropout=0.0, historical_averaging=0.5)
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    for _ in range(3):
        model.training_step(torch.randn(16, 2), optimizers, train)
    assert int(model.generator_average.count) == 4 and int(model.discriminator_average.count) == 4
    x, fake = torch.randn(16, 2), model.sample(16)
    torch.manual_seed(1)
    with_penalty = model.generator_loss(fake, x)
    torch.manual_seed(1)
    weight, model.config.historical_averaging = model.config.historical_averaging, 0.0
    without = model.generator_loss(fake, x)
    model.config.historical_averaging = weight
    assert with_penalty.item() == pytest.approx(without.item() + 0.5 * model.generator_average.penalty().item(), rel=1e-5)


def test_feature_matching_generator_loss():
    torch.manual_seed(0)
    model = build_model("gan", vector_info(2), d_hidden=(8,), g_hidden=(8,), maxout_pieces=2, dropout=0.0,
                        input_dropout=0.0, feature_matching=True)
    x, fake = torch.randn(32, 2), model.sample(32)
    f = model.discriminator.features
    expected = (f(x).mean(0) - f(fake).mean(0)).pow(2).sum()
    assert model.generator_loss(fake, x).item() == pytest.approx(expected.item(), rel=1e-6)
    train = TrainConfig(lr=1e-2)
    scalars = model.training_step(x, model.configure_optimizers(train), train)
    assert scalars["g_loss"] >= 0
