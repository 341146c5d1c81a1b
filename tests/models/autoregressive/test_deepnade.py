"""Order-agnostic DeepNADE: autoregressive property (autograd), the fast incremental
evaluation against the defining masked network, exact normalisation by enumeration
(single ordering and ensemble), the ensemble as a proper mixture, unbiasedness of the
order-agnostic training estimator (exact expectation by enumeration), and samples matching
a known distribution (chi-square)."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import comb, logsumexp
from scipy.stats import chisquare

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models.base import MODELS, TrainConfig, build_model
from dgmbench.models.autoregressive.deepnade import DeepNADE


def binary_info(dim: int) -> DataInfo:
    return DataInfo(name="toy", variant="binary", shape=(dim,), value_type="binary", num_levels=2)


def all_binary_vectors(dim: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)), dtype=torch.float64)


def sharpened(model: DeepNADE, scale: float = 2.0) -> DeepNADE:
    """Larger weights so that the conditionals are far from uniform (a harder check)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def test_registered_with_metadata():
    cls = MODELS.get("deepnade")
    assert cls is DeepNADE
    assert cls.family == "autoregressive"
    assert cls.value_types == ("binary",)
    assert "Uria" in cls.citation


@pytest.mark.parametrize("hidden_sizes", [(20,), (20, 20)])
def test_autoregressive_property_by_autograd(hidden_sizes):
    torch.manual_seed(0)
    dim = 7
    model = build_model("deepnade", binary_info(dim), hidden_sizes=hidden_sizes)
    x = torch.rand(dim)
    for trial in range(4):
        ordering = torch.randperm(dim) if trial else torch.arange(dim)
        jacobian = torch.autograd.functional.jacobian(
            lambda v: model.conditional_logits(v[None], ordering)[0], x
        )  # jacobian[d, j] = d logit_d / d x_j
        o = ordering.tolist()
        by_position = jacobian[o][:, o]  # [i, j]: conditional of o_i w.r.t. input o_j
        assert torch.all(torch.triu(by_position) == 0), "a conditional sees itself or a later input"
        assert torch.count_nonzero(torch.tril(by_position, diagonal=-1)) > 0


def test_incremental_evaluation_matches_the_masked_network():
    """The O(H)-per-step recurrence equals D explicit passes of [x * m ; m] with m = 1[o_<d]."""
    torch.manual_seed(1)
    dim = 9
    model = build_model("deepnade", binary_info(dim), hidden_sizes=(16, 16)).double()
    x = torch.bernoulli(torch.full((5, dim), 0.5, dtype=torch.float64))
    ordering = torch.randperm(dim)
    fast = model.conditional_logits(x, ordering)
    for position, d in enumerate(ordering.tolist()):
        observed = torch.zeros(5, dim, dtype=torch.float64)
        observed[:, ordering[:position]] = 1.0
        direct = model.masked_logits(x, observed)[:, d]
        torch.testing.assert_close(fast[:, d], direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("num_test_orderings", [1, 3])
def test_probabilities_sum_to_one_by_enumeration(num_test_orderings):
    torch.manual_seed(2)
    dim = 10
    model = build_model(
        "deepnade", binary_info(dim), hidden_sizes=(24, 24), num_test_orderings=num_test_orderings
    )
    model = sharpened(model).double()
    with torch.no_grad():
        total = torch.exp(model.log_prob(all_binary_vectors(dim))).sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_ensemble_is_log_mean_of_probabilities():
    torch.manual_seed(3)
    dim = 6
    model = sharpened(build_model("deepnade", binary_info(dim), hidden_sizes=(16,), num_test_orderings=4))
    model = model.double()
    x = all_binary_vectors(dim)
    assert torch.equal(model.test_orderings[0], torch.arange(dim))  # ordering 0: the fixed one
    assert len({tuple(o.tolist()) for o in model.test_orderings}) == 4
    with torch.no_grad():
        per_ordering = np.stack([model.log_prob_given_ordering(x, o).numpy() for o in model.test_orderings])
        ensemble = model.log_prob(x).numpy()
    np.testing.assert_allclose(ensemble, logsumexp(per_ordering, axis=0) - math.log(4), rtol=0, atol=1e-10)
    assert np.abs(per_ordering[0] - per_ordering[1]).max() > 1e-2  # an untrained model is not order-invariant
    # The mean of log-probabilities (or of per-pixel probabilities) is not a distribution:
    assert np.exp(per_ordering.mean(0)).sum() < 1 - 1e-3


def test_training_estimator_is_unbiased_for_the_order_agnostic_loss():
    """E_{d, o_<d}[D/(D-d+1) sum_{j not in o_<d} -log p(x_j | x_o<d)] = E_o[-log p(x | o)],
    both sides by exhaustive enumeration (all subsets; all D! orderings), then the sampler
    that loss() uses against that expectation by Monte Carlo."""
    torch.manual_seed(4)
    dim = 4
    model = sharpened(build_model("deepnade", binary_info(dim), hidden_sizes=(12,))).double()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        orderings = list(itertools.permutations(range(dim)))
        order_agnostic_nll = np.mean(
            [-model.log_prob_given_ordering(x, torch.tensor(o)).item() for o in orderings]
        )
        expected = 0.0
        for observed_tuple in itertools.product([0.0, 1.0], repeat=dim):
            observed = torch.tensor([observed_tuple], dtype=torch.float64)
            size = int(observed.sum())
            if size == dim:  # d - 1 <= D - 1: never everything observed
                continue
            probability = (1 / dim) / comb(dim, size)  # d uniform, then a uniform subset of size d-1
            expected += probability * model.order_agnostic_loss(x, observed).item()
        assert expected == pytest.approx(order_agnostic_nll, rel=1e-10)

        draws = torch.stack([model.loss(x.repeat(4000, 1)) for _ in range(10)])
    standard_error = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - expected) < 5 * standard_error + 1e-3


def test_loss_gradients_reach_every_layer():
    torch.manual_seed(5)
    model = build_model("deepnade", binary_info(8), hidden_sizes=(16, 16))
    x = torch.bernoulli(torch.full((30, 8), 0.4))
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_sample_shape_and_values():
    torch.manual_seed(6)
    info = load_dataset("digits", "binary").info
    model = build_model("deepnade", info, **DeepNADE.quick_config(info))
    samples = model.sample(7)
    assert samples.shape == (7, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}


KNOWN_P = np.array([0.30, 0.05, 0.10, 0.15, 0.02, 0.08, 0.20, 0.10])  # over {0,1}^3, binary order


def exact_dataset(p: np.ndarray, n: int) -> torch.Tensor:
    """n rows whose empirical distribution is exactly p (so the MLE is p itself)."""
    counts = np.round(p * n).astype(int)
    states = all_binary_vectors(3).float()
    return torch.cat([states[i].repeat(c, 1) for i, c in enumerate(counts)])


def test_trained_samples_match_known_distribution():
    torch.manual_seed(7)
    model = build_model("deepnade", binary_info(3), hidden_sizes=(32, 32), num_test_orderings=2)
    data = exact_dataset(KNOWN_P, 1000)
    train = TrainConfig(lr=1e-2, batch_size=None)
    optimizers = model.configure_optimizers(train)
    for step in range(600):
        if step == 300:  # the estimator is stochastic: anneal to average out its noise
            for group in optimizers["model"].param_groups:
                group["lr"] = 1e-3
        model.training_step(data, optimizers, train)
    with torch.no_grad():
        model_p = torch.exp(model.log_prob(all_binary_vectors(3).float())).double().numpy()
    assert np.abs(model_p - KNOWN_P).max() < 0.01

    samples = model.sample(20000)
    index = (samples * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    counts = np.bincount(index.numpy(), minlength=8)
    # The sampler draws from the model's own mixture (large n: a sharp test) ...
    assert chisquare(counts, model_p / model_p.sum() * counts.sum()).pvalue > 1e-3
    # ... and that distribution is the one it was trained on.
    first = np.bincount(index[:5000].numpy(), minlength=8)
    assert chisquare(first, KNOWN_P * first.sum()).pvalue > 1e-3


def test_quick_config_learns_digits():
    """The quick-suite model beats independent Bernoulli pixels fitted on the training set."""
    torch.manual_seed(8)
    data = load_dataset("digits", "binary")
    model = build_model("deepnade", data.info, **DeepNADE.quick_config(data.info))
    train = TrainConfig(**DeepNADE.quick_train(data.info))
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
