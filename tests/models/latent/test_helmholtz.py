"""Helmholtz machine: the wake, reweighted-wake and sleep updates against their exact
expectations by enumerating every latent (and, for the sleep phase, every visible) state of
a tiny network; training raises the exact log-likelihood, and the bounds stay below it."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import all_binary_vectors, vector_info
from dgmbench.enumeration import binary_states
from dgmbench.models import TrainConfig, build_model

D = 4


def tiny(**options):
    torch.manual_seed(0)
    model = build_model("helmholtz", vector_info(D), **{"hidden": (3,), **options})
    with torch.no_grad():
        for p in model.model_parameters():
            p.copy_(1.5 * torch.randn_like(p))
        for p in model.inference_parameters():
            p.copy_(0.5 * torch.randn_like(p))
    return model.double()


def flat_grad(scalar, params):
    return torch.cat([g.flatten() for g in torch.autograd.grad(scalar, params)])


def latent_states(model):
    bits = sum(model.sizes[1:])
    return model.split_states(binary_states(0, 2**bits, bits))


X = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.float64)


def test_reweighted_p_update_converges_to_the_log_likelihood_gradient():
    model = tiny()
    theta = model.model_parameters()
    exact = flat_grad(model.log_prob_by_enumeration(X).mean(), theta)
    torch.manual_seed(1)
    big = X.repeat(20, 1)
    errors = {}
    for k in (2, 2000):
        estimate = flat_grad(model.wake_objectives(big, k)[0], theta)
        errors[k] = ((estimate - exact).norm() / exact.norm()).item()
    assert errors[2000] < 0.03
    assert errors[2] > 3 * errors[2000]  # self-normalised: biased for small K


def test_wake_update_is_unbiased_for_the_elbo_gradient():
    """K = 1: the wake phase's theta-gradient has expectation E_q[grad log p(x, h)]."""
    model = tiny()
    theta = model.model_parameters()
    hs = latent_states(model)
    q = sum(model.inference_log_probs(X, hs)).exp().detach()  # (m, n)
    exact = flat_grad((q * sum(model.generative_log_probs(X, hs))).sum(0).mean(), theta)
    torch.manual_seed(2)
    draws = torch.stack([flat_grad(model.wake_objectives(X.repeat(200, 1), 1)[0], theta) for _ in range(30)])
    z = (draws.mean(0) - exact) / (draws.std(0) / math.sqrt(len(draws)) + 1e-12)
    assert z.abs().max() < 4.5


def test_q_wake_update_converges_to_the_exact_posterior_gradient():
    """sum_k w~_k grad log q(h^k|x) -> E_p(h|x)[grad log q(h|x)] = -grad KL(p(h|x) || q)."""
    model = tiny(samples=2)
    phi = model.inference_parameters()
    hs = latent_states(model)
    log_joint = sum(model.generative_log_probs(X, hs)).detach()
    posterior = torch.softmax(log_joint, dim=0)  # exact p(h|x), (m, n)
    exact = flat_grad((posterior * sum(model.inference_log_probs(X, hs))).sum(0).mean(), phi)
    torch.manual_seed(3)
    estimate = flat_grad(model.wake_objectives(X.repeat(20, 1), 2000)[1], phi)
    assert ((estimate - exact).norm() / exact.norm()).item() < 0.03


def test_sleep_update_is_unbiased():
    """E_p(x,h)[grad log q(h|x)], by enumerating every (x, h)."""
    model = tiny()
    phi = model.inference_parameters()
    xs = all_binary_vectors(D).double()
    hs = latent_states(model)
    joint = sum(model.generative_log_probs(xs, hs)).exp().detach()  # p(x, h), (m, 2^D)
    assert joint.sum().item() == pytest.approx(1.0, abs=1e-12)
    exact = flat_grad((joint * sum(model.inference_log_probs(xs, hs))).sum() , phi)
    torch.manual_seed(4)
    draws = torch.stack([flat_grad(model.sleep_objective(2000), phi) for _ in range(30)])
    z = (draws.mean(0) - exact) / (draws.std(0) / math.sqrt(len(draws)) + 1e-12)
    assert z.abs().max() < 4.5
    assert (draws.mean(0) - exact).norm() < 0.1 * exact.norm()


@pytest.mark.parametrize("options", [
    {"algorithm": "wake_sleep"},
    {"algorithm": "rws", "samples": 5, "q_update": "both"},
    {"algorithm": "rws", "samples": 5, "q_update": "wake"},
    {"algorithm": "rws", "samples": 5, "q_update": "sleep"},
])
def test_training_raises_the_exact_log_likelihood_and_bounds_stay_below_it(options):
    torch.manual_seed(0)
    model = build_model("helmholtz", vector_info(D), hidden=(3,), **options).double()
    x = torch.bernoulli(torch.tensor([[0.95, 0.95, 0.05, 0.05], [0.05, 0.05, 0.95, 0.95]], dtype=torch.float64).repeat(50, 1))
    train = TrainConfig(lr=3e-2)
    opts = model.configure_optimizers(train)
    before = model.log_prob_by_enumeration(x).mean().item()
    for _ in range(200):
        model.training_step(x, opts, train)
    with torch.no_grad():
        exact = model.log_prob_by_enumeration(x).mean().item()
        elbo = model.elbo(x.repeat(20, 1)).elbo.mean().item()
        iwae = model.iwae_bound(x, 200).mean().item()
    assert exact > before + 0.5
    assert elbo < iwae < exact + 0.01
    assert exact - iwae < 0.1  # the trained q makes L_200 tight on this tiny model


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="algorithm"):
        build_model("helmholtz", vector_info(D), algorithm="ws")
    with pytest.raises(ValueError, match="q_update"):
        build_model("helmholtz", vector_info(D), q_update="none")
    with pytest.raises(ValueError, match="samples >= 2"):
        build_model("helmholtz", vector_info(D), samples=1)
