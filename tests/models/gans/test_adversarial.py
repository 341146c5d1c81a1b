"""The alternating-update machinery shared by every adversarial model: n_critic
discriminator updates per generator update, which player each update moves, the logged
scalars reaching the trainer's history, no early stopping, resumable alternation state,
and one-line errors for bad options."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import DataInfo, Dataset
from dgmbench.models import build_model
from dgmbench.models.base import Implicit, TrainConfig
from dgmbench.train.trainer import fit
from gan_helpers import tiny, vector_info


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_n_critic_discriminator_steps_per_generator_step():
    model = tiny("wgan_gp", n_critic=3)
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    for call in range(1, 10):
        g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
        model.training_step(torch.randn(16, 2), optimizers, train)
        assert changed(d_before, model.discriminator)  # every call: one critic update
        assert changed(g_before, model.generator) == (call % 3 == 0)  # every third: the generator
        assert all(p.requires_grad for p in model.discriminator.parameters())
    assert (int(model.critic_updates), int(model.generator_updates)) == (9, 3)
    # the alternation state is in the checkpointed state dict, so a resumed run continues it
    state = model.state_dict()
    assert {"critic_updates", "generator_updates", "critic_since_generator"} <= set(state)


@pytest.mark.parametrize("name", ["gan", "dcgan", "wgan", "wgan_gp", "lsgan", "infogan", "ebgan", "began", "bigan"])
def test_every_model_is_implicit_with_logged_curves_and_no_early_stopping(name, tmp_path):
    info = DataInfo(name="tiny_images", variant="test", shape=(1, 8, 8), value_type="continuous")
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    dataset = Dataset(info, {"train": images, "valid": images[:16], "test": images[:16]})
    model = build_model(name, info, **build_model(name, info).quick_config(info))
    assert isinstance(model, Implicit) and model.family == "gans"
    assert model.validation_score(images) is None
    train = TrainConfig(**{**model.train_defaults, "epochs": 2, "batch_size": 32, "lr": 1e-3})
    assert train.patience is None
    summary = fit(model, dataset, train, tmp_path, torch.device("cpu"), progress=False, log=lambda *_: None)
    assert summary.epochs_completed == 2 and not summary.stopped_early and summary.best_epoch == 2  # the last
    for entry in summary.history:
        assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(entry)
        assert all(math.isfinite(v) for k, v in entry.items() if k != "valid")
    estimate = {"gan": "js_estimate", "dcgan": "js_estimate", "wgan": "wasserstein_estimate",
                "wgan_gp": "wasserstein_estimate", "lsgan": "ls_generator_value", "infogan": "mi_categorical_bound",
                "ebgan": "d_fake", "began": "convergence", "bigan": "reconstruction_mse"}[name]
    assert estimate in summary.history[-1]
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1


def test_resume_continues_the_alternation(tmp_path):
    info = vector_info(2)
    x = torch.randn(48, 2)
    dataset = Dataset(info, {"train": x, "valid": x[:8], "test": x[:8]})
    train = TrainConfig(epochs=1, batch_size=16, patience=None, lr=1e-3)
    model = tiny("wgan_gp", n_critic=2)
    fit(model, dataset, train, tmp_path, torch.device("cpu"), progress=False, log=lambda *_: None)
    assert (int(model.critic_updates), int(model.generator_updates), int(model.critic_since_generator)) == (3, 1, 1)
    resumed = tiny("wgan_gp", n_critic=2)
    train.epochs = 2
    fit(resumed, dataset, train, tmp_path, torch.device("cpu"), progress=False, log=lambda *_: None)
    assert (int(resumed.critic_updates), int(resumed.generator_updates)) == (6, 3)


def test_generator_step_leaves_the_discriminator_alone():
    model = tiny("gan")
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    d_after_its_step = None
    original = model.after_discriminator_step

    def record():
        nonlocal d_after_its_step
        original()
        d_after_its_step = snapshot(model.discriminator)

    model.after_discriminator_step = record
    model.training_step(torch.randn(16, 2), optimizers, train)
    assert not changed(d_after_its_step, model.discriminator)


def test_priors():
    assert tiny("gan", prior="uniform").prior_sample(1000).abs().max() <= 1
    z = tiny("lsgan", prior="normal").prior_sample(20_000)
    assert abs(z.std().item() - 1) < 0.03


@pytest.mark.parametrize(
    "options, message",
    [
        ({"prior": "cauchy"}, "prior"),
        ({"architecture": "resnet"}, "architecture"),
        ({"architecture": "dcgan"}, "needs images"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"critic_norm": "virtual_batch"}, "normalisation"),
        ({"n_critic": 0}, "n_critic"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
    ],
)
def test_bad_options_are_one_line_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        tiny("lsgan", **options)


def test_label_smoothing_only_for_cross_entropy_losses():
    assert tiny("gan", label_smoothing=0.9).config.label_smoothing == 0.9
    with pytest.raises(ValueError, match="cross-entropy"):
        tiny("wgan", label_smoothing=0.9)
