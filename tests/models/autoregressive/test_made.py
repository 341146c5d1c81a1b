"""MADE: autoregressive masks (autograd), exact normalisation by enumeration, the mask
mixture as a proper mixture, and samples matching a known distribution (chi-square)."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import chisquare

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models.base import MODELS, TrainConfig, build_model
from dgmbench.models.autoregressive.made import MADE


def binary_info(dim: int) -> DataInfo:
    return DataInfo(name="toy", variant="binary", shape=(dim,), value_type="binary", num_levels=2)


def all_binary_vectors(dim: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)), dtype=torch.float64)


def sharpened(model: MADE, scale: float = 3.0) -> MADE:
    """Larger weights so that the conditionals are far from uniform (a harder check)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def test_registered_with_metadata():
    cls = MODELS.get("made")
    assert cls is MADE
    assert cls.family == "autoregressive"
    assert cls.value_types == ("binary",)
    assert "Germain" in cls.citation


@pytest.mark.parametrize("order_agnostic", [False, True])
@pytest.mark.parametrize("hidden_sizes", [(40,), (30, 30)])
def test_autoregressive_property_by_autograd(order_agnostic, hidden_sizes):
    torch.manual_seed(0)
    dim = 7
    model = build_model(
        "made", binary_info(dim), hidden_sizes=hidden_sizes, num_masks=4, order_agnostic=order_agnostic
    )
    x = torch.rand(dim)
    orderings = set()
    for mask_index in range(4):
        jacobian = torch.autograd.functional.jacobian(
            lambda v: model.conditional_logits(v[None], mask_index)[0], x
        )  # jacobian[d, j] = d logit_d / d x_j
        ordering = model.ordering(mask_index).tolist()
        orderings.add(tuple(ordering))
        by_position = jacobian[ordering][:, ordering]  # [i, j]: output o_i w.r.t. input o_j
        assert torch.all(torch.triu(by_position) == 0), "an output sees itself or a later input"
        # Not vacuous: the masks do connect outputs to earlier inputs.
        assert torch.count_nonzero(torch.tril(by_position, diagonal=-1)) > 0
    assert len(orderings) == (4 if order_agnostic else 1)


def test_masks_follow_the_degree_rules():
    model = build_model("made", binary_info(9), hidden_sizes=(50, 50), num_masks=3, order_agnostic=True)
    for mask_index in range(3):
        first, second = model.hidden_degrees_0[mask_index], model.hidden_degrees_1[mask_index]
        assert first.min() >= 0 and first.max() <= 9 - 2
        assert second.min() >= first.min() and second.max() <= 9 - 2
        masks = model.masks(mask_index)
        assert [m.shape for m in masks] == [(50, 9), (50, 50), (9, 50)]
    # The mask set is a deterministic function of mask_seed.
    again = build_model("made", binary_info(9), hidden_sizes=(50, 50), num_masks=3, order_agnostic=True)
    assert torch.equal(model.input_degrees, again.input_degrees)
    assert torch.equal(model.hidden_degrees_1, again.hidden_degrees_1)


@pytest.mark.parametrize("num_test_masks", [1, 4])
def test_probabilities_sum_to_one_by_enumeration(num_test_masks):
    torch.manual_seed(1)
    dim = 10
    model = build_model(
        "made", binary_info(dim), hidden_sizes=(32, 32), num_masks=4,
        num_test_masks=num_test_masks, order_agnostic=True,
    )
    model = sharpened(model).double()
    with torch.no_grad():
        total = torch.exp(model.log_prob(all_binary_vectors(dim))).sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_mixture_is_log_mean_of_probabilities():
    torch.manual_seed(2)
    dim = 6
    model = sharpened(
        build_model("made", binary_info(dim), hidden_sizes=(24,), num_masks=5, num_test_masks=5,
                    order_agnostic=True)
    ).double()
    x = all_binary_vectors(dim)
    with torch.no_grad():
        per_mask = np.stack([model.log_prob_given_mask(x, m).numpy() for m in range(5)])
        mixture = model.log_prob(x).numpy()
    np.testing.assert_allclose(mixture, logsumexp(per_mask, axis=0) - math.log(5), rtol=0, atol=1e-10)
    # The masks really are different models, so the mixture differs from each of them.
    assert np.abs(per_mask[0] - per_mask[1]).max() > 1e-2
    # Averaging log-probabilities instead would not be a distribution:
    assert np.exp(per_mask.mean(0)).sum() < 1 - 1e-3


def test_loss_gradients_reach_every_layer():
    torch.manual_seed(3)
    model = build_model("made", binary_info(8), hidden_sizes=(16, 16), num_masks=2)
    x = torch.bernoulli(torch.full((20, 8), 0.4))
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_rejects_more_test_masks_than_masks():
    with pytest.raises(ValueError, match="num_test_masks"):
        build_model("made", binary_info(5), num_masks=2, num_test_masks=3)


def test_sample_shape_and_values():
    torch.manual_seed(4)
    info = load_dataset("digits", "binary").info
    model = build_model("made", info, **MADE.quick_config(info))
    samples = model.sample(7)
    assert samples.shape == (7, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("hidden_sizes", [(24,), (24, 24)])
def test_sampler_draws_from_the_models_own_mixture(hidden_sizes):
    """Chi-square of 20,000 samples against the exact probabilities of all 16 states."""
    torch.manual_seed(9)
    model = sharpened(
        build_model("made", binary_info(4), hidden_sizes=hidden_sizes, num_masks=3, num_test_masks=3,
                    order_agnostic=True),
        scale=2.0,
    )
    with torch.no_grad():
        exact = torch.exp(model.log_prob(all_binary_vectors(4).float())).double().numpy()
    samples = model.sample(20000)
    counts = np.bincount((samples * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long().numpy(), minlength=16)
    assert chisquare(counts, exact / exact.sum() * counts.sum()).pvalue > 1e-3
    assert exact.max() > 2 * exact.min()  # far from uniform, so the test has power


KNOWN_P = np.array([0.30, 0.05, 0.10, 0.15, 0.02, 0.08, 0.20, 0.10])  # over {0,1}^3, binary order


def exact_dataset(p: np.ndarray, n: int) -> torch.Tensor:
    """n rows whose empirical distribution is exactly p (so the MLE is p itself)."""
    counts = np.round(p * n).astype(int)
    states = all_binary_vectors(3).float()
    return torch.cat([states[i].repeat(c, 1) for i, c in enumerate(counts)])


def test_trained_samples_match_known_distribution():
    torch.manual_seed(5)
    model = build_model("made", binary_info(3), hidden_sizes=(32,), num_masks=2, num_test_masks=2,
                        order_agnostic=True)
    data = exact_dataset(KNOWN_P, 1000)
    train = TrainConfig(lr=2e-2, batch_size=None)
    optimizers = model.configure_optimizers(train)
    for _ in range(200):
        model.training_step(data, optimizers, train)
    with torch.no_grad():
        model_p = torch.exp(model.log_prob(all_binary_vectors(3).float())).double().numpy()
    assert np.abs(model_p - KNOWN_P).max() < 0.01

    samples = model.sample(20000)
    index = (samples * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    counts = np.bincount(index.numpy(), minlength=8)
    # The sampler draws from the model's own distribution (large n: a sharp test) ...
    assert chisquare(counts, model_p / model_p.sum() * counts.sum()).pvalue > 1e-3
    # ... and that distribution is the one it was trained on.
    first = np.bincount(index[:5000].numpy(), minlength=8)
    assert chisquare(first, KNOWN_P * first.sum()).pvalue > 1e-3


def test_quick_config_learns_digits():
    """The quick-suite model beats independent Bernoulli pixels fitted on the training set."""
    torch.manual_seed(6)
    data = load_dataset("digits", "binary")
    model = build_model("made", data.info, **MADE.quick_config(data.info))
    train = TrainConfig(**MADE.quick_train(data.info))
    optimizers = model.configure_optimizers(train)
    x = data.split("train").reshape(-1, 64)
    for _ in range(train.epochs):
        for batch in x[torch.randperm(len(x))].split(train.batch_size):
            model.training_step(batch, optimizers, train)
    test = data.split("test").reshape(-1, 64)
    marginal = x.mean(0).clamp(1e-3, 1 - 1e-3)
    independent_nll = -(test * marginal.log() + (1 - test) * (1 - marginal).log()).sum(1).mean()
    with torch.no_grad():
        nll = -model.log_prob(test).mean()
    assert nll < independent_nll - 1.0
