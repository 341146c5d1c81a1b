"""Mixture of Bernoullis: the data initialisation (init="data") against the uniform one.
Normalisation over all states, sampling and EM's monotonicity are in tests/models/test_first_models.py."""
import pytest
import torch

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models.base import TrainConfig, build_model
from dgmbench.models.latent.bernoulli_mixture import BernoulliMixture
from dgmbench.runner import identity_config

TINY = DataInfo(name="tiny", variant="binary", shape=(6,), value_type="binary", num_levels=2)
FULL_BATCH = TrainConfig(batch_size=None)


def test_data_init_starts_each_component_between_a_training_image_and_the_mean():
    x = torch.bernoulli(torch.full((40, 6), 0.3))
    model = build_model("bernoulli_mixture", TINY, components=5, init="data", init_seed=3)
    model.initialise_from_data(x)
    expected = (0.5 * x + 0.5 * x.mean(0)).clamp(0.01, 0.99)
    for component in model.probs:  # each row is the midpoint of one training image and the mean
        assert (component - expected).abs().amax(1).min() < 1e-6
    chosen = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:5]
    torch.testing.assert_close(model.probs, expected[chosen])
    assert bool(model.initialised)


def test_data_init_keeps_every_component_alive_where_uniform_loses_some():
    """digits/binary, 100 components, 10 EM iterations: the uniform start leaves 14 components
    without data (weight below 1e-3); the data start uses all 100 and fits the training set better."""
    dataset = load_dataset("digits/binary")
    x = dataset.split("train")
    fitted = {}
    for init in ("uniform", "data"):
        model = build_model("bernoulli_mixture", dataset.info, components=100, init=init)
        for _ in range(10):
            nll = model.training_step(x, {}, FULL_BATCH)["nll"]
        fitted[init] = (int((model.log_weights.exp() > 1e-3).sum()), nll)
    assert fitted["uniform"][0] < 95 and fitted["data"][0] == 100
    assert fitted["data"][1] < fitted["uniform"][1] - 0.3


def test_data_init_happens_once_and_survives_a_checkpoint():
    x = torch.bernoulli(torch.full((30, 6), 0.4))
    model = build_model("bernoulli_mixture", TINY, components=3, init="data")
    model.training_step(x, {}, FULL_BATCH)
    fresh = build_model("bernoulli_mixture", TINY, components=3, init="data")
    fresh.load_state_dict(model.state_dict())
    before = fresh.probs.clone()
    fresh.initialise_from_data = None  # resuming must not initialise again (calling it would fail)
    fresh.training_step(x, {}, FULL_BATCH)
    assert bool(fresh.initialised) and not torch.equal(before, fresh.probs)


def test_init_option_keeps_run_keys_and_refuses_unknown_values():
    assert "init" not in identity_config(BernoulliMixture.Config(components=500))
    assert identity_config(BernoulliMixture.Config(init="data"))["init"] == "data"
    assert "initialised" not in build_model("bernoulli_mixture", TINY, components=3).state_dict()
    with pytest.raises(ValueError, match="unknown init"):
        build_model("bernoulli_mixture", TINY, components=3, init="kmeans")
