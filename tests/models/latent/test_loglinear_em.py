"""Log-linear EM: exact normalisation by enumerating every x, the penalised log-likelihood
never decreases, and EM's fixed point is a stationary point of (and matches) scipy's
direct maximisation of the enumerated likelihood."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from conftest import all_binary_vectors
from dgmbench.data.base import DataInfo
from dgmbench.models import TrainConfig, build_model

INFO = DataInfo(name="tiny", variant="test", shape=(1, 2, 3), value_type="binary", num_levels=2)
ALL = ("class_pixel", "pixel", "class", "class_row", "class_col")


def data(n=120):
    torch.manual_seed(0)
    prototypes = torch.tensor([[0.9, 0.9, 0.9, 0.1, 0.1, 0.2], [0.1, 0.2, 0.1, 0.9, 0.8, 0.9]])
    return torch.bernoulli(prototypes[torch.randint(0, 2, (n,))]).view(n, 1, 2, 3).double()


def test_probabilities_over_all_binary_images_sum_to_one():
    model = build_model("loglinear_em", INFO, components=3, features=ALL)
    with torch.no_grad():
        model.weights.normal_()
    log_p = model.log_prob(all_binary_vectors(6).double().view(-1, 1, 2, 3))
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-12)


def test_class_pixel_template_alone_is_a_mixture_of_bernoullis():
    model = build_model("loglinear_em", INFO, components=2, features=("class_pixel",))
    x = data(5)
    eta = model.logits()
    expected = torch.logsumexp(torch.distributions.Bernoulli(logits=eta).log_prob(x.view(5, 1, 6)).sum(-1) + model.log_mix, 1)
    assert torch.allclose(model.log_prob(x), expected.double())


@pytest.mark.parametrize("l2", [1e-2, 1.0])
def test_em_never_decreases_the_penalised_log_likelihood(l2):
    model = build_model("loglinear_em", INFO, components=3, features=ALL, l2=l2)
    x = data()
    values = [model.objective(x)]
    for _ in range(25):
        model.training_step(x, {}, TrainConfig())
        values.append(model.objective(x))
    assert all(b >= a - 1e-9 for a, b in zip(values, values[1:]))
    assert values[-1] > values[0] + 10


def direct_objective(model, x):
    """-J(pi, w) over the unconstrained vector (mixing logits, w), for scipy."""
    k = model.config.components

    def negative(v: np.ndarray):
        v = torch.from_numpy(v).requires_grad_()
        log_mix = torch.log_softmax(v[:k], 0)
        w = v[k:]
        log_p = torch.logsumexp(model.component_log_likelihood(x, w) + log_mix, 1)
        value = -(log_p.sum() - 0.5 * model.config.l2 * w.pow(2).sum())
        (grad,) = torch.autograd.grad(value, v)
        return value.item(), grad.numpy()

    return negative


def test_em_fixed_point_matches_direct_maximisation_by_scipy():
    model = build_model("loglinear_em", INFO, components=2, features=ALL, l2=0.1)
    x = data()
    start = np.concatenate([model.log_mix.numpy(), model.weights.numpy()])
    for _ in range(300):
        model.training_step(x, {}, TrainConfig())
    em_point = np.concatenate([model.log_mix.numpy(), model.weights.numpy()])
    negative = direct_objective(model, x)
    value, grad = negative(em_point)
    assert value == pytest.approx(-model.objective(x), rel=1e-10)
    assert np.abs(grad).max() < 1e-4  # EM's fixed point is stationary for the direct objective
    direct = scipy.optimize.minimize(negative, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 10_000})
    assert direct.fun == pytest.approx(value, abs=1e-6)  # the same maximum from the same start
    # the same distribution up to a relabelling of z: compare log p(x) over every x
    grid = all_binary_vectors(6).double().view(-1, 1, 2, 3)
    em_log_p = model.log_prob(grid)
    with torch.no_grad():
        model.log_mix.copy_(torch.log_softmax(torch.from_numpy(direct.x[:2]), 0))
        model.weights.copy_(torch.from_numpy(direct.x[2:]))
    assert torch.allclose(model.log_prob(grid), em_log_p, atol=1e-3)  # flat ridge: tied templates


def test_samples_and_bad_options():
    model = build_model("loglinear_em", INFO, components=2)
    assert model.sample(4).shape == (4, 1, 2, 3)
    with pytest.raises(ValueError, match="features must be"):
        build_model("loglinear_em", INFO, features=("class_pixels",))
