"""Mixture of Bernoullis, FVSBN, NADE: exact normalization by enumeration, the
autoregressive property by autograd, and samples against the exact distribution."""
from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from conftest import all_binary_vectors, vector_info
from dgmbench.models import build_model

D = 10


def randomized(name: str, dim: int = D, **options):
    torch.manual_seed(0)
    model = build_model(name, vector_info(dim), **options)
    with torch.no_grad():  # move away from the symmetric initialisation
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        if name == "bernoulli_mixture":
            model.probs.uniform_(0.05, 0.95)
            model.log_weights.copy_(torch.log_softmax(torch.randn(model.log_weights.shape), 0))
    return model.double()


@pytest.mark.parametrize("name,options", [
    ("bernoulli_mixture", {"components": 7}),
    ("fvsbn", {}),
    ("fvsbn", {"ordering": "random"}),
    ("nade", {"hidden": 16}),
    ("nade", {"hidden": 16, "ordering": "random"}),
])
def test_probabilities_over_all_binary_vectors_sum_to_one(name, options):
    model = randomized(name, **options)
    log_p = model.log_prob(all_binary_vectors(D).double())
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["fvsbn", "nade"])
def test_conditional_i_ignores_inputs_at_or_after_i_in_the_ordering(name):
    model = randomized(name, ordering="random", **({"hidden": 16} if name == "nade" else {}))
    x = torch.bernoulli(torch.full((1, D), 0.5, dtype=torch.float64)).requires_grad_()
    logits = model.logits(x)[0]
    order = model.order.tolist()
    for i in range(D):
        (grad,) = torch.autograd.grad(logits[i], x, retain_graph=True)
        later = order[i:]
        assert torch.all(grad[0, later] == 0), f"conditional {i} depends on dims {later}"
        if i > 0:  # and it does depend on the earlier ones
            assert grad[0, order[:i]].abs().sum() > 0


@pytest.mark.parametrize("name", ["bernoulli_mixture", "fvsbn", "nade"])
def test_samples_follow_the_model_distribution(name):
    dim = 4
    model = randomized(name, dim=dim, **({"hidden": 8} if name == "nade" else {"components": 3} if name == "bernoulli_mixture" else {}))
    states = all_binary_vectors(dim).double()
    expected = model.log_prob(states).exp().detach()
    torch.manual_seed(1)
    samples = model.sample(20_000).view(-1, dim)
    codes = (samples * (2 ** torch.arange(dim - 1, -1, -1, dtype=torch.float64))).sum(1).long()
    observed = torch.bincount(codes, minlength=2**dim).double()
    expected = expected / expected.sum()  # exact to 1e-5 (tested above); chisquare wants 1e-8
    result = chisquare(observed.numpy(), (expected * len(samples)).numpy())
    assert result.pvalue > 1e-3


def test_em_increases_the_likelihood_monotonically():
    from dgmbench.models import TrainConfig

    torch.manual_seed(0)
    model = build_model("bernoulli_mixture", vector_info(D), components=4, smoothing=0.0)
    x = torch.bernoulli(torch.rand(3, D).repeat(100, 1))
    nlls = [model.training_step(x, {}, TrainConfig())["nll"] for _ in range(10)]
    assert all(b <= a + 1e-9 for a, b in zip(nlls, nlls[1:]))


@pytest.mark.parametrize("name", ["fvsbn", "nade"])
def test_gradients_reach_every_parameter(name):
    model = build_model(name, vector_info(D), **({"hidden": 8} if name == "nade" else {}))
    model.loss(torch.bernoulli(torch.full((5, D), 0.5))).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", ["bernoulli_mixture", "fvsbn", "nade", "vae"])
def test_sample_shape_matches_the_data(name):
    from dgmbench.data import load_dataset

    info = load_dataset("digits/binary").info
    model = build_model(name, info)
    samples = model.sample(3)
    assert samples.shape == (3, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
