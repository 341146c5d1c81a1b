"""Per-player learning rates (TTUR) and the stated checkpoint rule of the adversarial models:
the optimisers carry the given rates and step by them; the validation Frechet distance
matches closed forms and an independent matrix square root; the trainer keeps the epoch
with the lowest one; the record says which checkpoint was evaluated; and the new options
leave the run keys of the committed quick-suite records unchanged."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from dgmbench.data.base import Dataset
from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.layers.adversarial import VALIDATION_SEED, frechet_distance, gaussian_moments
from dgmbench.runner import RunSpec, planned_run_key, run
from dgmbench.train.trainer import BEST, fit
from dgmbench.train.checkpoint import load_checkpoint
from dgmbench.validation import ConfigError, check_options
from gan_helpers import tiny, vector_info
from conftest import REPO


# --- per-player learning rates ------------------------------------------------------------------
@pytest.mark.parametrize("name, optimizer", [("gan", "adam"), ("gan", "sgd"), ("wgan_gp", "rmsprop"),
                                             ("lsgan", "adam"), ("infogan", "adam")])
def test_optimisers_carry_each_players_rate(name, optimizer):
    train = TrainConfig(lr=2e-4)
    shared = tiny(name, optimizer=optimizer).configure_optimizers(train)
    assert [g["lr"] for o in shared.values() for g in o.param_groups] == [2e-4] * 2  # default: the training lr
    own = tiny(name, optimizer=optimizer, lr_generator=1e-4, lr_discriminator=4e-4).configure_optimizers(train)
    assert [g["lr"] for g in own["generator"].param_groups] == [1e-4]
    assert [g["lr"] for g in own["discriminator"].param_groups] == [4e-4]
    one = tiny(name, optimizer=optimizer, lr_discriminator=3e-3).configure_optimizers(train)
    assert (one["generator"].param_groups[0]["lr"], one["discriminator"].param_groups[0]["lr"]) == (2e-4, 3e-3)


def test_each_player_steps_by_its_own_rate():
    """SGD without momentum moves every parameter by exactly -lr * gradient: replay one
    training step by hand on a copy (same random draws), with each player's gradient taken
    by autograd, and compare both players' updates with their own rates."""
    model = tiny("gan", optimizer="sgd", momentum=0.0, lr_generator=0.03, lr_discriminator=0.5)
    train = TrainConfig(lr=1e-9)  # the shared rate, used by neither player here
    optimizers = model.configure_optimizers(train)
    x = torch.randn(16, 2)
    replay = copy.deepcopy(model)
    rng = torch.get_rng_state()
    model.training_step(x, optimizers, train)

    torch.set_rng_state(rng)
    with torch.no_grad():
        fake, inputs = replay.generate_with_input(16)
    d_params = list(replay.discriminator.parameters())
    d_grads = torch.autograd.grad(replay.discriminator_loss(x, fake, None, inputs)[0], d_params)
    with torch.no_grad():
        for p, g in zip(d_params, d_grads):
            p -= 0.5 * g
    fake, inputs = replay.generate_with_input(16)
    g_params = list(replay.generator.parameters())
    g_grads = torch.autograd.grad(replay.generator_loss(fake, x, None, inputs), g_params)
    with torch.no_grad():
        for p, g in zip(g_params, g_grads):
            p -= 0.03 * g
    assert any(g.abs().max() > 1e-4 for g in g_grads)  # the generator really moved
    for mine, trained in zip(replay.parameters(), model.parameters()):
        torch.testing.assert_close(trained.detach(), mine.detach(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("key, value", [("lr_generator", 0.0), ("lr_discriminator", -1e-3)])
def test_rates_must_be_positive(key, value):
    with pytest.raises(ConfigError, match=key):
        check_options(build_model("gan", vector_info(2)).Config, {key: value}, "-o", "model 'gan'")


# --- the Frechet distance ------------------------------------------------------------------------
def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    fd = frechet_distance(torch.tensor([1.0]).double(), torch.tensor([[4.0]]).double(),
                          torch.tensor([-0.5]).double(), torch.tensor([[0.25]]).double())
    assert fd == pytest.approx(1.5**2 + (2 - 0.5) ** 2, rel=1e-12)
    # commuting (diagonal) covariances: sum (sqrt a - sqrt b)^2
    a, b = torch.tensor([1.0, 9.0, 0.04]).double(), torch.tensor([4.0, 1.0, 0.01]).double()
    fd = frechet_distance(torch.zeros(3).double(), torch.diag(a), torch.ones(3).double(), torch.diag(b))
    assert fd == pytest.approx(3 + ((a.sqrt() - b.sqrt()) ** 2).sum().item(), rel=1e-12)
    # identical Gaussians: 0
    cov = torch.tensor([[2.0, 0.7], [0.7, 1.0]]).double()
    assert frechet_distance(torch.ones(2).double(), cov, torch.ones(2).double(), cov) == pytest.approx(0, abs=1e-12)


def test_frechet_distance_matches_scipy_sqrtm():
    """Non-commuting covariances: against tr sqrtm(C1 C2) by scipy's general matrix square root."""
    rng = np.random.default_rng(0)
    for dim in (2, 5, 12):
        a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
        c1, c2 = a @ a.T + 0.1 * np.eye(dim), b @ b.T + 0.1 * np.eye(dim)
        m1, m2 = rng.normal(size=dim), rng.normal(size=dim)
        expected = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
        got = frechet_distance(*(torch.from_numpy(t) for t in (m1, c1, m2, c2)))
        assert got == pytest.approx(expected, rel=1e-8)


def test_gaussian_moments_are_numpys():
    x = torch.randn(50, 3)
    mean, cov = gaussian_moments(x)
    np.testing.assert_allclose(mean.numpy(), x.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.double().numpy().T), rtol=1e-10)


# --- checkpoint selection -------------------------------------------------------------------------
def test_validation_fd_is_the_distance_of_fixed_samples_to_the_split():
    model = tiny("gan", select_checkpoint="validation_fd").eval()
    x = torch.randn(2500, 2) * 2 + 1
    rng = torch.get_rng_state()
    score = model.validation_score(x)
    assert torch.equal(torch.get_rng_state(), rng)  # the training RNG stream is untouched
    assert model.validation_score(x) == score  # the same latents every time
    torch.manual_seed(VALIDATION_SEED)
    fake = torch.cat([model.sample(1000), model.sample(1000), model.sample(500)]).double().numpy()
    real = x.double().numpy()
    expected = (((fake.mean(0) - real.mean(0)) ** 2).sum()
                + np.trace(np.cov(fake.T) + np.cov(real.T) - 2 * scipy.linalg.sqrtm(np.cov(fake.T) @ np.cov(real.T)).real))
    assert score == pytest.approx(expected, rel=1e-6)
    assert tiny("gan").validation_score(x) is None  # "last": no score


def _toy_dataset(n=400):
    torch.manual_seed(1)
    x = torch.randn(n, 2) * 0.5 + torch.tensor([2.0, -1.0])
    return Dataset(vector_info(2), {"train": x, "valid": x[: n // 2], "test": x[: n // 2]})


def test_trainer_keeps_the_epoch_with_the_lowest_validation_fd(tmp_path):
    dataset = _toy_dataset()
    model = tiny("gan", select_checkpoint="validation_fd")
    train = TrainConfig(epochs=6, batch_size=50, lr=5e-3, patience=None)
    summary = fit(model, dataset, train, tmp_path, torch.device("cpu"), progress=False, log=lambda *_: None)
    scores = [entry["valid"] for entry in summary.history]
    assert all(math.isfinite(s) for s in scores) and len(set(scores)) == 6
    assert summary.epochs_completed == 6 and not summary.stopped_early  # no early stopping
    assert summary.best_epoch == 1 + int(np.argmin(scores))
    assert summary.best_validation == pytest.approx(min(scores))
    kept = load_checkpoint(tmp_path / BEST)["model"]
    assert all(torch.equal(kept[k], v) for k, v in model.state_dict().items())  # the model now is the best epoch's
    assert model.eval().validation_score(dataset.split("valid")) == pytest.approx(min(scores))


def test_last_checkpoint_by_default(tmp_path):
    model = tiny("gan")
    summary = fit(model, _toy_dataset(), TrainConfig(epochs=3, batch_size=50, lr=5e-3, patience=None), tmp_path,
                  torch.device("cpu"), progress=False, log=lambda *_: None)
    assert summary.best_epoch == 3 and summary.best_validation is None
    assert all(math.isnan(entry["valid"]) for entry in summary.history)


def test_bad_checkpoint_rule_is_a_one_line_error():
    with pytest.raises(ValueError, match="select_checkpoint 'best' is not one of last, validation_fd"):
        tiny("gan", select_checkpoint="best")


@pytest.mark.parametrize("rule, stated", [("last", "last: epoch 2 (no validation score)"),
                                          ("validation_fd", "lowest data-space Frechet distance")])
def test_the_record_states_the_checkpoint_used(rule, stated, tmp_path):
    spec = RunSpec(model="lsgan", dataset="ring8/continuous", device="cpu", progress=False,
                   results_dir=str(tmp_path / "results"), workdir=str(tmp_path / "work"),
                   model_options={"latent": 2, "g_hidden": [8], "d_hidden": [8], "critic_norm": "none",
                                  "select_checkpoint": rule},
                   train_options={"epochs": 2, "batch_size": 2000}, eval_options={"metrics": ["mode_coverage"]})
    record = run(spec, log=lambda *_: None)
    training = record["training"]
    assert training["checkpoint_selection"].startswith(stated)
    if rule == "validation_fd":
        assert training["checkpoint_selection"].endswith(f"epoch {training['best_epoch']} of 2")
        assert training["best_validation"] == min(e["valid"] for e in training["history"])
    assert record["model_config"]["select_checkpoint"] == rule


# --- run keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gan", "wgan_gp", "lsgan", "wgan", "dcgan", "infogan"])
def test_new_options_keep_the_committed_quick_suite_keys(name):
    """The options were added after the quick suite was recorded: at their defaults they are
    left out of the run key, so the committed records still match their runs."""
    key = planned_run_key(RunSpec(model=name, quick=True))
    assert list((REPO / "results" / "records").glob(f"{name}__digits__dequantized__seed0__{key[:12]}.json"))
    changed = planned_run_key(RunSpec(model=name, quick=True, model_options={"lr_generator": 1e-4}))
    assert changed != key
    assert planned_run_key(RunSpec(model=name, quick=True, model_options={"select_checkpoint": "last"})) == key
