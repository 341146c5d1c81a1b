"""Sigmoid belief network: bounds and gradient estimators against exact values computed by
enumerating every latent state of a tiny network."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from conftest import all_binary_vectors, vector_info
from dgmbench.enumeration import binary_states
from dgmbench.models import build_model
from dgmbench.models.latent.sbn import estimator_gradient_variance

D = 5


def tiny_sbn(hidden=(3,), **options):
    torch.manual_seed(0)
    model = build_model("sbn", vector_info(D), hidden=hidden, baseline_hidden=8, **options)
    with torch.no_grad():  # away from the near-symmetric initialisation: a sharp model, a poor q
        for p in model.model_parameters():
            p.copy_(2 * torch.randn_like(p))
        for p in model.inference_parameters():  # broad enough that IWAE converges at k = 1000
            p.copy_(0.5 * torch.randn_like(p))
    return model.double()


def data(n=4):
    torch.manual_seed(1)
    return torch.bernoulli(torch.full((n, D), 0.5, dtype=torch.float64))


def enumerated(model, x):
    """log q(s|x) and log w(x, s) for every joint latent state s: shapes (m, n)."""
    states = binary_states(0, 2 ** sum(model.sizes[1:]), sum(model.sizes[1:]))
    hs = model.split_states(states)
    log_q = sum(model.inference_log_probs(x, hs))
    return log_q, model.log_weights(x, hs)


def exact_bound(model, x, k):
    """E[log (1/k) sum_j w_j] by enumerating all k-tuples of latent states: L_1 is the ELBO."""
    log_q, log_w = enumerated(model, x)
    m = len(log_q)
    tuples = torch.tensor(list(itertools.product(range(m), repeat=k)))  # (m^k, k)
    tuple_log_q = log_q[tuples].sum(1)  # (m^k, n)
    tuple_bound = torch.logsumexp(log_w[tuples], dim=1) - math.log(k)
    return (tuple_log_q.exp() * tuple_bound).sum(0)  # (n,)


@pytest.mark.parametrize("hidden", [(3,), (2, 2), (2, 1, 2)])
def test_enumerated_marginal_is_normalised(hidden):
    model = tiny_sbn(hidden)
    log_p = model.log_prob_by_enumeration(all_binary_vectors(D).double())
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("hidden", [(3,), (2, 2)])
def test_elbo_below_iwae_below_log_marginal_and_tightening_in_k(hidden):
    model = tiny_sbn(hidden)
    x = data()
    torch.manual_seed(2)
    with torch.no_grad():
        exact = model.log_prob_by_enumeration(x)
        # the Monte Carlo means match the enumerated expectations ...
        elbo = model.elbo(x.repeat(20000, 1)).elbo.view(20000, -1)
        assert torch.allclose(elbo.mean(0), exact_bound(model, x, 1), atol=5 * elbo.std(0).max().item() / math.sqrt(20000))
        iwae2 = model.iwae_bound(x.repeat(20000, 1), 2).view(20000, -1)
        assert torch.allclose(iwae2.mean(0), exact_bound(model, x, 2), atol=5 * iwae2.std(0).max().item() / math.sqrt(20000))
        # ... and the bounds are ordered and tighten towards log p(x)
        gaps = {k: (exact - exact_bound(model, x, k)).mean().item() for k in (1, 2, 3)}
        iwae = (exact - model.iwae_bound(x.repeat(200, 1), 1000).view(200, -1)).mean(1)  # 200 repeats
        gaps[1000], stderr = iwae.mean().item(), iwae.std().item() / math.sqrt(200)
    assert gaps[1] > 0.3  # a poor q: a gap far above rounding
    assert gaps[1] > gaps[2] > gaps[3] > gaps[1000] > -4 * stderr
    assert gaps[1000] < 0.05 * gaps[1]


def test_elbo_parts_add_up():
    model = tiny_sbn((2, 2))
    bound = model.elbo(data())
    assert torch.allclose(bound.elbo, bound.reconstruction - bound.kl)


def exact_gradient(model, x, k):
    params = model.model_parameters() + model.inference_parameters()
    return torch.cat([g.flatten() for g in torch.autograd.grad(exact_bound(model, x, k).mean(), params)])


def estimated_gradients(model, x, estimator, repeats, batches):
    params = model.model_parameters() + model.inference_parameters()
    big = x.repeat(repeats, 1)  # one batch: the mean over `repeats` draws per example
    return torch.stack([
        torch.cat([g.flatten() for g in torch.autograd.grad(model.surrogate(big, estimator, normalise=False)[0], params)])
        for _ in range(batches)
    ])


def fit_nvil_baselines(model, x, steps=300):
    opt = torch.optim.Adam(model.baselines.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model.surrogate(x, "nvil", update_baselines=True)[1].backward()
        opt.step()


@pytest.mark.parametrize("estimator,hidden", [
    ("reinforce", (3,)), ("nvil", (3,)), ("nvil", (2, 2)), ("vimco", (3,)), ("vimco", (2, 1)),
])
def test_gradient_estimators_are_unbiased(estimator, hidden):
    """Mean of many independent estimates against the gradient of the enumerated objective
    (the ELBO; L_k for VIMCO), for every model and inference parameter."""
    model = tiny_sbn(hidden, estimator=estimator, samples=2 if estimator == "vimco" else 1)
    x = data()
    torch.manual_seed(3)
    if estimator == "nvil":
        fit_nvil_baselines(model, x)
        assert model.signal_mean.abs().min() > 0.1  # centring and baselines are in use
    exact = exact_gradient(model, x, 2 if estimator == "vimco" else 1)
    grads = estimated_gradients(model, x, estimator, repeats=500, batches=40)
    z = (grads.mean(0) - exact) / (grads.std(0) / math.sqrt(len(grads)) + 1e-12)
    assert z.abs().max() < 4.5, z
    assert (grads.mean(0) - exact).norm() < 0.1 * exact.norm()  # the check has power


def test_nvil_normalisation_only_rescales_the_inference_gradient():
    model = tiny_sbn((3,), estimator="nvil")
    x = data()
    fit_nvil_baselines(model, x, steps=20)
    model.signal_var.fill_(9.0)
    params = model.inference_parameters()
    grads = []
    for normalise in (False, True):
        torch.manual_seed(4)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(model.surrogate(x, normalise=normalise)[0], params)]))
    assert torch.allclose(grads[1], grads[0] / 3.0)


def test_nvil_and_vimco_have_lower_variance_than_reinforce():
    model = tiny_sbn((3,), samples=4)
    x = data()
    torch.manual_seed(5)
    report = estimator_gradient_variance(model, x, draws=300, baseline_steps=300)
    assert set(report) == {"nvil", "reinforce", "vimco"}
    assert all(r["samples"] == 4 for r in report.values())
    assert report["nvil"]["variance"] < 0.5 * report["reinforce"]["variance"]
    assert report["vimco"]["variance"] < 0.5 * report["reinforce"]["variance"]


@pytest.mark.parametrize("estimator", ["nvil", "reinforce", "vimco"])
def test_training_raises_the_exact_log_likelihood(estimator):
    from dgmbench.models import TrainConfig

    torch.manual_seed(0)
    model = build_model("sbn", vector_info(D), hidden=(3,), estimator=estimator, samples=3, baseline_hidden=8).double()
    x = torch.bernoulli(torch.tensor([[0.9, 0.9, 0.1, 0.1, 0.5], [0.1, 0.1, 0.9, 0.9, 0.5]], dtype=torch.float64).repeat(50, 1))
    train = TrainConfig(lr=3e-2)
    opts = model.configure_optimizers(train)
    before = model.log_prob_by_enumeration(x).mean().item()
    for _ in range(200):
        model.training_step(x, opts, train)
    after = model.log_prob_by_enumeration(x).mean().item()
    assert after > before + 0.5


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="estimator"):
        build_model("sbn", vector_info(D), estimator="reinforce2")
    with pytest.raises(ValueError, match="samples"):
        build_model("sbn", vector_info(D), estimator="vimco", samples=1)
    with pytest.raises(ValueError, match="hidden"):
        build_model("sbn", vector_info(D), hidden=())
