"""Flow posteriors of the VAE (planar, radial: Rezende & Mohamed 2015; IAF: Kingma et al. 2016)
against independent ground truth: log q_K(z_K|x) against the change of variables through the
autograd Jacobian of the whole eps -> z_K map, the bounds against log p(x) by quadrature over
a 2-D latent, the amortised planar and radial steps against the flows family's transforms, and
planar's invertibility constraint."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import vector_info
from dgmbench.models import build_model
from dgmbench.models.flows.transforms import Planar, Radial
from dgmbench.models.latent.flow_posteriors import ContextIAFStep, planar_u_hat

D = 6
POSTERIORS = {
    "planar": {"posterior": "planar"},
    "planar-global": {"posterior": "planar", "flow_amortised": False},
    "radial": {"posterior": "radial"},
    "radial-global": {"posterior": "radial", "flow_amortised": False},
    "iaf": {"posterior": "iaf", "flow_hidden": 8, "flow_context": 4},
}


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int, scale: float) -> torch.nn.Module:
    """Every parameter from N(0, scale^2), so every flow step really changes volume (IAF's
    MADE output layer starts at zero, where each step is a fixed elementwise scaling)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * scale)
    return module


def vae(kind: str, latent: int, steps: int, seed: int = 0, scale: float = 0.5):
    """A float64 VAE with every parameter randomised."""
    torch.manual_seed(seed)
    model = build_model("vae", vector_info(D), latent=latent, hidden=16, layers=1, flow_steps=steps, **POSTERIORS[kind])
    return randomize(model.double(), seed, scale)


@pytest.mark.parametrize("kind", list(POSTERIORS))
def test_log_q_is_the_change_of_variables_of_the_whole_map(kind):
    """log q_K(z_K|x) = log N(eps; 0, I) - log|det dz_K/deps| with the Jacobian by autograd
    (this includes the Gaussian's mu + sigma * eps and every flow step), in float64."""
    latent = 3
    model = vae(kind, latent, steps=4, seed=1)
    posterior = model.posterior_module
    x = torch.bernoulli(torch.full((5, D), 0.5, dtype=torch.float64))
    eps = torch.randn(1, len(x), latent, dtype=torch.float64)
    z, log_q = posterior.transform(x, eps)
    assert z.shape == (1, len(x), latent) and log_q.shape == (1, len(x))
    flow_log_dets = []
    for i in range(len(x)):
        def eps_to_z(e, i=i):
            return posterior.transform(x[i : i + 1], e.view(1, 1, -1))[0].view(-1)

        jacobian = torch.autograd.functional.jacobian(eps_to_z, eps[0, i])
        log_det = torch.linalg.slogdet(jacobian)[1]
        expected = torch.distributions.Normal(0.0, 1.0).log_prob(eps[0, i]).sum() - log_det
        assert log_q[0, i].item() == pytest.approx(expected.item(), abs=1e-6)
        log_var = posterior(x[i : i + 1])[1]
        flow_log_dets.append(log_det - 0.5 * log_var.sum())  # what the flow steps add
    # the flow really changes volume, so a sign error in its log|det| cannot pass
    assert torch.stack(flow_log_dets).abs().max() > 1e-2


def test_amortised_planar_step_equals_the_flows_planar_transform():
    """One amortised step with the encoder's (u, w, b) for example i is the flows family's
    Planar transform with those parameters: the same z and log|det| (independent code)."""
    model = vae("planar", latent=3, steps=1, seed=2)
    posterior = model.posterior_module
    x = torch.bernoulli(torch.full((4, D), 0.5, dtype=torch.float64))
    mean, log_var, extra = posterior.encode(x)
    z0 = torch.randn(7, len(x), 3, dtype=torch.float64)
    z, log_det = posterior.flow(z0, extra)
    u, w, b = posterior.step_parameters(extra)
    for i in range(len(x)):
        peer = Planar(3).double()
        with torch.no_grad():
            peer.u.copy_(u[i, 0]), peer.w.copy_(w[i, 0]), peer.b.copy_(b[i, 0])
        expected_z, expected_log_det = peer(z0[:, i])
        assert torch.allclose(z[:, i], expected_z, atol=1e-12)
        assert torch.allclose(log_det[:, i], expected_log_det, atol=1e-12)
    assert log_det.abs().max() > 1e-2


def test_amortised_planar_respects_the_invertibility_constraint():
    """w^T u_hat >= -1 for every example and step (R&M Appendix A.1), even for encoder
    outputs far from zero, so 1 + h'(.) w^T u_hat > 0 and log|det| is finite."""
    model = vae("planar", latent=4, steps=5, seed=3, scale=2.0)
    posterior = model.posterior_module
    x = torch.bernoulli(torch.full((200, D), 0.5, dtype=torch.float64))
    _, _, extra = posterior.encode(x)
    u, w, _ = posterior.step_parameters(extra)
    raw = (w * u).sum(-1)
    constrained = (w * planar_u_hat(u, w)).sum(-1)
    assert raw.min() < -1  # the unconstrained parameters do violate it
    assert constrained.min() >= -1 - 1e-12  # -1 itself when softplus underflows: still allowed
    assert torch.allclose(constrained, torch.nn.functional.softplus(raw) - 1)
    _, log_q = posterior.rsample(x, 3)
    assert torch.isfinite(log_q).all()


def test_context_iaf_step_is_autoregressive_and_uses_the_context():
    """dz_t/dz_{t-1} is lower triangular in the step's ordering with diagonal sigma, and the
    context changes z_t (it feeds the MADE, not the mask)."""
    torch.manual_seed(4)
    step = randomize(ContextIAFStep(4, (8, 8), 3).double(), 4, 0.5)
    v = torch.randn(1, 4, dtype=torch.float64)
    context = torch.randn(1, 3, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda e: step(e[None], context)[0][0], v[0])
    assert torch.allclose(jacobian.triu(1), torch.zeros(4, 4, dtype=torch.float64))
    _, log_det = step(v, context)
    assert log_det.item() == pytest.approx(torch.linalg.slogdet(jacobian)[1].item(), abs=1e-10)
    assert not torch.allclose(step(v, context)[0], step(v, -context)[0])
    back, inverse_log_det = step.inverse(step(v, context)[0], context)
    assert torch.allclose(back, v, atol=1e-10) and inverse_log_det.item() == pytest.approx(-log_det.item())


def log_marginal_by_quadrature(model, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log ∫∫ p(x|z) N(z; 0, I) dz over a 2-D latent (trapezoid rule on a grid)."""
    axis = torch.linspace(-7, 7, 351, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)  # (G, 2)
    log_joint = model.log_likelihood(x, z[:, None].expand(-1, len(x), 2)) + model.log_prior(z)[:, None]
    step = (axis[1] - axis[0]).item()
    edge = torch.full((len(axis),), 1.0, dtype=torch.float64)
    edge[0] = edge[-1] = 0.5
    weights = torch.outer(edge, edge).reshape(-1, 1) * step**2
    return torch.logsumexp(log_joint + weights.log(), dim=0)


@pytest.mark.parametrize("kind,fit_steps", [("planar", 5), ("iaf", 20)])
def test_flow_elbo_is_below_log_marginal_and_iwae_approaches_it(kind, fit_steps):
    """On a 2-D latent VAE with a sharp decoder: ELBO < log p(x), and L_k rises with k
    towards log p(x) from below (L_1 is the ELBO: the same Monte Carlo KL estimator). The
    posterior gets a few Adam steps on the ELBO first (decoder fixed), so that it is a usable
    importance proposal whose gap is still far above the Monte Carlo noise."""
    torch.manual_seed(5)
    model = build_model("vae", vector_info(D), latent=2, hidden=16, layers=1, flow_steps=3, **POSTERIORS[kind]).double()
    randomize(model.posterior_module, 5, 0.3)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3)
    x = torch.bernoulli(torch.full((6, D), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.Adam(model.posterior_module.parameters(), lr=1e-2)
    for _ in range(fit_steps):
        optimiser.zero_grad()
        (-model.elbo(x.repeat(16, 1)).elbo.mean()).backward()
        optimiser.step()
    n = len(x)
    with torch.no_grad():
        exact = log_marginal_by_quadrature(model, x)
        elbo = model.elbo(x.repeat(4000, 1)).elbo.view(4000, n).mean(0)
        repeats = {1: 4000, 10: 400, 100: 40, 3000: 20}
        gaps = {k: (exact - model.iwae_bound(x.repeat(r, 1), k).view(r, n).mean(0)).mean().item()
                for k, r in repeats.items()}
    assert torch.all(elbo < exact)
    assert gaps[1] > 0.3  # a gap far above the Monte Carlo noise
    assert gaps[1] == pytest.approx((exact - elbo).mean().item(), rel=0.05)
    assert gaps[1] > gaps[10] > gaps[100] > gaps[3000] > -0.01  # tightens from below (to MC noise)
    assert gaps[3000] < 0.1 * gaps[1]


def test_quadrature_is_converged():
    """The grid of log_marginal_by_quadrature against a wider and finer one."""
    torch.manual_seed(5)
    model = build_model("vae", vector_info(D), latent=2, hidden=16, layers=1).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3)
    x = torch.bernoulli(torch.full((6, D), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    axis = torch.linspace(-9, 9, 601, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        log_joint = model.log_likelihood(x, z[:, None].expand(-1, len(x), 2)) + model.log_prior(z)[:, None]
        fine = torch.logsumexp(log_joint, 0) + 2 * math.log((axis[1] - axis[0]).item())
        assert torch.allclose(log_marginal_by_quadrature(model, x), fine, atol=1e-6)


@pytest.mark.parametrize("kind", list(POSTERIORS))
def test_gradients_reach_every_parameter(kind):
    model = vae(kind, latent=3, steps=2, seed=6).float()
    model.loss(torch.bernoulli(torch.full((8, D), 0.5))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_flow_posteriors_train_from_their_initialisation():
    """From the default initialisation (not randomised), a few Adam steps raise the ELBO."""
    torch.manual_seed(7)
    x = torch.bernoulli(torch.full((64, D), 0.3))
    for kind in ("planar", "iaf"):
        model = build_model("vae", vector_info(D), latent=2, hidden=16, layers=1, flow_steps=2, **POSTERIORS[kind])
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        with torch.no_grad():
            before = model.elbo(x.repeat(20, 1)).elbo.mean()
        for _ in range(60):
            optimiser.zero_grad()
            model.loss(x).backward()
            optimiser.step()
        with torch.no_grad():
            after = model.elbo(x.repeat(20, 1)).elbo.mean()
        assert after > before + 0.5, (kind, before, after)


@pytest.mark.parametrize("options,message", [
    ({"posterior": "real-nvp"}, "posterior must be one of"),
    ({"posterior": "iaf", "latent": 1}, "latent >= 2"),
    ({"posterior": "planar", "free_bits": 0.5}, "free_bits needs"),
    ({"posterior": "planar", "flow_steps": 0}, "flow_steps must be >= 1"),
])
def test_bad_options_are_one_line_errors(options, message):
    options = {"latent": 2, "hidden": 8, **options}
    with pytest.raises(ValueError, match=message):
        build_model("vae", vector_info(D), **options)


@pytest.mark.parametrize("kind", ["planar", "iaf"])
def test_posterior_mean_counts_no_spurious_active_units(kind):
    """posterior_mean of a flow posterior: the Monte Carlo mean of q_K (matches many
    independent samples), and a posterior that ignores x gives E[z|x] identical for every x,
    so no unit counts as active (independent draws per example would show variance ~ 1/S)."""
    model = vae(kind, latent=3, steps=2, seed=8, scale=0.5)
    x = torch.bernoulli(torch.full((50, D), 0.5, dtype=torch.float64))
    torch.manual_seed(0)
    reference = model.posterior_module.rsample(x[:3], 20000)[0].mean(0)
    assert torch.allclose(model.posterior_module.mean(x[:3], samples=20000), reference, atol=0.1)
    assert model.posterior_mean(x).shape == (50, 3)
    with torch.no_grad():
        model.posterior_module.encoder[0].weight.zero_()  # q(z|x) no longer depends on x
    means = model.posterior_mean(x)
    assert means.var(0).max() < 1e-20


def test_amortised_radial_step_equals_the_flows_radial_transform():
    """One amortised radial step with the encoder's (z0, alpha, beta) for example i is the
    flows family's Radial transform with those parameters (independent code), and
    beta >= -alpha holds for encoder outputs far from zero (R&M Appendix A.2)."""
    model = vae("radial", latent=3, steps=1, seed=4, scale=2.0)
    posterior = model.posterior_module
    x = torch.bernoulli(torch.full((4, D), 0.5, dtype=torch.float64))
    _, _, extra = posterior.encode(x)
    z0 = torch.randn(7, len(x), 3, dtype=torch.float64)
    z, log_det = posterior.flow(z0, extra)
    centre, alpha, beta = posterior.step_parameters(extra)
    assert (alpha > 0).all() and (beta >= -alpha - 1e-12).all()
    for i in range(len(x)):
        peer = Radial(3).double()
        with torch.no_grad():
            # the transform's own reparameterisation: alpha = softplus(a), beta = -alpha + softplus(b)
            peer.z0.copy_(centre[i, 0])
            peer.alpha_raw.copy_(torch.log(torch.expm1(alpha[i, 0])))
            peer.beta_raw.copy_(torch.log(torch.expm1(beta[i, 0] + alpha[i, 0])))
        expected_z, expected_log_det = peer(z0[:, i])
        assert torch.allclose(z[:, i], expected_z, atol=1e-10)
        assert torch.allclose(log_det[:, i], expected_log_det, atol=1e-10)
    assert log_det.abs().max() > 1e-2
