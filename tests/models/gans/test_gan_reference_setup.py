"""The options that follow the authors' own pylearn2 MLP GAN (Goodfellow et al. 2014,
``mnist.yaml`` and ``AdversaryCost2``): simultaneous updates checked against gradients
computed by hand from the same forward pass, the pylearn2 initialisation, the output bias
from the pixel means, the [0, 1] critic input, and the learning-rate and momentum schedules."""
from __future__ import annotations

import copy

import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.layers.losses import gan_discriminator_loss, gan_generator_loss


def image_info() -> DataInfo:
    return DataInfo(name="tiny", variant="test", shape=(1, 4, 4), value_type="continuous")


def tiny_image_gan(**options):
    torch.manual_seed(0)
    defaults = dict(latent=3, g_hidden=(8,), d_hidden=(6,), maxout_pieces=2, dropout=0.0, input_dropout=0.0,
                    generator_norm="none", critic_norm="none", optimizer="sgd", architecture="mlp")
    return build_model("gan", image_info(), **{**defaults, **options})


def batch(n=5, seed=1):
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def test_simultaneous_step_equals_hand_computed_gradients_of_one_forward_pass():
    model = tiny_image_gan(simultaneous_updates=True)
    reference = copy.deepcopy(model)
    train = TrainConfig(lr=0.1, batch_size=5)
    x = batch()
    torch.manual_seed(7)
    model.training_step(x, model.configure_optimizers(train), train)

    torch.manual_seed(7)  # the same z
    z = reference.prior_sample(5)
    fake = reference.generator(z)
    real_scores, fake_scores = reference.discriminator(x), reference.discriminator(fake)
    d_params, g_params = list(reference.discriminator.parameters()), list(reference.generator.parameters())
    d_grads = torch.autograd.grad(gan_discriminator_loss(real_scores, fake_scores), d_params, retain_graph=True)
    g_grads = torch.autograd.grad(gan_generator_loss(fake_scores), g_params)  # through the OLD discriminator
    for updated, before, grad in zip([*model.discriminator.parameters(), *model.generator.parameters()],
                                     d_params + g_params, d_grads + g_grads):
        torch.testing.assert_close(updated, before - 0.1 * grad, rtol=0, atol=1e-6)
    assert int(model.generator_updates) == 1 and int(model.critic_updates) == 1


def test_default_alternating_step_differs_from_simultaneous():
    """The generator's step sees the updated discriminator under Algorithm 1: other parameters."""
    train = TrainConfig(lr=0.5, batch_size=5)
    results = []
    for simultaneous in (False, True):
        model = tiny_image_gan(simultaneous_updates=simultaneous)
        torch.manual_seed(7)
        model.training_step(batch(), model.configure_optimizers(train), train)
        results.append(torch.cat([p.flatten() for p in model.generator.parameters()]))
    assert not torch.allclose(*results)


def test_pylearn2_initialisation_ranges():
    model = tiny_image_gan(init_range_generator=0.05, init_range_discriminator=0.005)
    for module, r in ((model.generator, 0.05), (model.discriminator, 0.005)):
        for name, parameter in module.named_parameters():
            if name.endswith("bias"):
                assert torch.equal(parameter, torch.zeros_like(parameter)), name
            else:
                assert parameter.abs().max() <= r and parameter.abs().max() > 0.5 * r, name


@pytest.mark.parametrize("output", ["sigmoid", "tanh"])
def test_output_bias_from_the_first_batch_reproduces_its_clamped_pixel_means(output):
    model = tiny_image_gan(generator_output=output, output_bias_from_data=True)
    x = batch(10)
    x[:, 0, 0, 0] = 0.0  # a pixel never on: clamped to 1 / (2n)
    train = TrainConfig(lr=0.0, batch_size=10)
    model.training_step(x, model.configure_optimizers(train), train)
    assert bool(model.output_bias_initialised)
    with torch.no_grad():
        model.generator.body[-1].weight.zero_()  # the output is then the bias alone
        out = model.generator(torch.zeros(1, 3))[0]
    expected = x.mean(0).clamp(1 / 20, 1 - 1 / 20)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # a second batch does not initialise again
    before = model.generator.body[-1].bias.clone()
    model.training_step(batch(10, seed=2), model.configure_optimizers(train), train)
    assert torch.equal(model.generator.body[-1].bias, before)


def test_critic_input_unit_feeds_images_unchanged():
    centred, unit = tiny_image_gan(), tiny_image_gan(critic_input="unit")
    x = batch()
    torch.testing.assert_close(unit.discriminator.features(x), unit.discriminator.body(x).flatten(1))
    torch.testing.assert_close(centred.discriminator.features(x), centred.discriminator.body(2 * x - 1).flatten(1))


def test_learning_rate_decay_and_momentum_ramp():
    model = tiny_image_gan(lr_decay=1.5, min_lr=0.02, lr_discriminator=0.05, momentum=0.5, final_momentum=0.7,
                           momentum_ramp_updates=(1, 5), simultaneous_updates=True)
    train = TrainConfig(lr=0.1, batch_size=5)
    optimizers = model.configure_optimizers(train)
    for step in range(4):
        model.training_step(batch(seed=step), optimizers, train)
        # the step just taken (update count `step`) used these values
        g, d = optimizers["generator"].param_groups[0], optimizers["discriminator"].param_groups[0]
        assert g["lr"] == pytest.approx(max(0.02, 0.1 / 1.5**step))
        assert d["lr"] == pytest.approx(max(0.02, 0.05 / 1.5**step))
        assert g["momentum"] == pytest.approx(0.5 + 0.2 * min(1.0, max(0.0, (step - 1) / 4)))


@pytest.mark.parametrize("options, message", [
    (dict(final_momentum=0.7, optimizer="adam", momentum_ramp_updates=(0, 10)), "optimizer=sgd"),
    (dict(final_momentum=0.7, momentum_ramp_updates=(5, 5)), "momentum_ramp_updates"),
    (dict(simultaneous_updates=True, n_critic=2), "n_critic = 1"),
    (dict(generator_output="softplus"), "generator_output"),
    (dict(critic_input="half"), "critic_input"),
])
def test_bad_reference_setup_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_image_gan(**options)


def test_output_bias_from_data_needs_images_and_unit_input_an_mlp_critic():
    from gan_helpers import tiny

    with pytest.raises(ValueError, match="MLP generator of images"):
        tiny(output_bias_from_data=True)
    with pytest.raises(ValueError, match="critic_input 'unit'"):
        torch.manual_seed(0)
        build_model("dcgan", DataInfo(name="tiny", variant="test", shape=(1, 8, 8), value_type="continuous"),
                    base_channels=4, latent=3, critic_input="unit")
