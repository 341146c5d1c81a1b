"""NADE and RNADE's blocked recurrences (NADERecurrence for log_prob, NADEMeanNLL for the
training loss) against the formulation they replaced, kept here as the reference: every
pre-activation at once from an exclusive cumulative sum over an (n, D, H) tensor,
differentiated by autograd. Log-probabilities and gradients must agree to 1e-5 (float32)
and to 1e-10 (float64), at MNIST size (D = 784), at ragged block and chunk edges, and on
every vector of a tiny model; the training loss must never allocate an (n, D, H) tensor."""
import pytest
import torch
import torch.nn.functional as F

from conftest import all_binary_vectors, vector_info
from dgmbench.models.autoregressive import nade as nade_module
from dgmbench.models.base import build_model


# --- the replaced formulation ---------------------------------------------------------
def reference_nade_logits(model, x):
    xo = x.flatten(1)[:, model.order]
    contributions = xo.unsqueeze(2) * model.W.T  # (n, D, H)
    pre = model.c + contributions.cumsum(1) - contributions
    return (torch.sigmoid(pre) * model.V).sum(-1) + model.b


def reference_nade_log_prob(model, x):
    xo = x.flatten(1)[:, model.order]
    return -F.binary_cross_entropy_with_logits(reference_nade_logits(model, x), xo, reduction="none").sum(1)


def reference_rnade_log_density(model, x):
    x = x.reshape(len(x), model.dim)
    contributions = x[:, :, None] * model.input_weight.T[None]
    pre = model.hidden_bias + torch.cumsum(contributions, dim=1) - contributions
    hidden = torch.sigmoid(model.rho[None, :, None] * pre)
    params = torch.bmm(hidden.transpose(0, 1), model.output_weight).transpose(0, 1)
    log_alpha, mean, std = model._mixture(params + model.output_bias)
    log_normal = torch.distributions.Normal(mean, std).log_prob(x[:, :, None])
    return torch.logsumexp(log_alpha + log_normal, dim=-1).sum(1)


# --- helpers ---------------------------------------------------------------------------
def random_nade(dim, hidden, dtype, ordering="random", seed=0):
    torch.manual_seed(seed)
    model = build_model("nade", vector_info(dim), hidden=hidden, ordering=ordering).to(dtype)
    with torch.no_grad():
        model.W.normal_(0, 0.3)
        model.c.normal_(0, 1.0)
        model.V.normal_(0, 0.5)
        model.b.normal_(0, 1.0)
    return model


def random_rnade(dim, hidden, k, dtype, seed=0):
    torch.manual_seed(seed)
    model = build_model("rnade", vector_info(dim, "continuous", None), hidden_size=hidden, num_components=k)
    model = model.to(dtype)
    with torch.no_grad():
        model.input_weight.normal_(0, 0.5)
        model.hidden_bias.normal_(0, 1.0)
        model.rho.uniform_(0.5, 1.5)
        model.output_weight.normal_(0, 0.3)
        model.output_bias.normal_(0, 0.5)
    return model


def gradients(model, loss):
    return [g.clone() for g in torch.autograd.grad(loss, list(model.parameters()))]


def assert_all_close(new, old, tol):
    for a, b in zip(new, old):
        scale = max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= tol * scale, (a - b).abs().max().item()


TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


# --- NADE ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nade_mnist_size_log_prob_and_gradients_equal_reference(dtype):
    """D = 784, H = 50, a small batch: log_prob, the training loss's gradients (one sweep)
    and log_prob's gradients under arbitrary per-example weights (forward + backward)."""
    model = random_nade(784, 50, dtype)
    x = torch.bernoulli(torch.full((6, 784), 0.3, dtype=dtype))
    new, old = model.log_prob(x), reference_nade_log_prob(model, x)
    assert_all_close([new], [old], TOL[dtype])

    reference_loss = -reference_nade_log_prob(model, x).mean()
    assert_all_close(gradients(model, model.loss(x)), gradients(model, reference_loss), TOL[dtype])

    weights = torch.randn(6, dtype=dtype)
    assert_all_close(
        gradients(model, (weights * model.log_prob(x)).sum()),
        gradients(model, (weights * reference_nade_log_prob(model, x)).sum()),
        TOL[dtype],
    )


def test_nade_ragged_blocks_and_chunks_equal_reference(monkeypatch):
    """Dimension blocks and example chunks that do not divide D and n, in float64."""
    monkeypatch.setattr(nade_module, "BLOCK", 5)
    monkeypatch.setattr(nade_module, "CHUNK", 4)
    model = random_nade(37, 9, torch.float64)
    x = torch.bernoulli(torch.full((11, 37), 0.5, dtype=torch.float64))
    assert_all_close([model.log_prob(x)], [reference_nade_log_prob(model, x)], 1e-12)
    reference_loss = -reference_nade_log_prob(model, x).mean()
    assert_all_close(gradients(model, model.loss(x)), gradients(model, reference_loss), 1e-12)
    weights = torch.randn(11, dtype=torch.float64)
    assert_all_close(
        gradients(model, (weights * model.log_prob(x)).sum()),
        gradients(model, (weights * reference_nade_log_prob(model, x)).sum()),
        1e-12,
    )


def test_nade_input_gradient_equals_reference(monkeypatch):
    """d log p / d x (relaxed inputs) through NADERecurrence's backward."""
    monkeypatch.setattr(nade_module, "BLOCK", 4)
    model = random_nade(13, 6, torch.float64, ordering="raster")
    x = torch.rand(5, 13, dtype=torch.float64, requires_grad=True)
    (new,) = torch.autograd.grad(model.log_prob(x).sum(), x)
    (old,) = torch.autograd.grad(reference_nade_log_prob(model, x).sum(), x)
    assert_all_close([new], [old], 1e-12)


def test_nade_tiny_enumeration_equals_reference_and_normalises():
    """All 2^6 vectors of a tiny model: the same log-probabilities and gradients as the
    reference, and probabilities summing to one."""
    model = random_nade(6, 4, torch.float32)
    x = all_binary_vectors(6)
    new = model.log_prob(x)
    assert_all_close([new], [reference_nade_log_prob(model, x)], 1e-5)
    assert torch.logsumexp(new.double(), 0).abs().item() < 1e-5
    reference_loss = -reference_nade_log_prob(model, x).mean()
    assert_all_close(gradients(model, model.loss(x)), gradients(model, reference_loss), 1e-5)


def test_nade_loss_without_gradients_is_the_mean_negative_log_prob():
    model = random_nade(20, 5, torch.float64)
    x = torch.bernoulli(torch.full((7, 20), 0.4, dtype=torch.float64))
    with torch.no_grad():
        assert torch.allclose(model.loss(x), -reference_nade_log_prob(model, x).mean(), atol=1e-12)
    assert torch.allclose(model.loss(x).detach(), -reference_nade_log_prob(model, x).mean().detach(), atol=1e-12)


def test_nade_training_loss_never_allocates_n_by_d_by_h(monkeypatch):
    """The largest single allocation of a loss + backward stays far below the n x D x H
    tensor of the replaced formulation (measured by the profiler's memory tracking; the
    legacy profiler, since kineto's start-up probes for CUDA for seconds)."""
    from torch.autograd.profiler import profile

    monkeypatch.setattr(nade_module, "BLOCK", 4)
    monkeypatch.setattr(nade_module, "CHUNK", 32)
    n, dim, hidden = 96, 64, 64
    model = random_nade(dim, hidden, torch.float32)
    x = torch.bernoulli(torch.full((n, dim), 0.3))

    def largest_allocation(loss):
        with profile(profile_memory=True, use_kineto=False) as prof:
            loss().backward()
        return max(event.self_cpu_memory_usage for event in prof.function_events)

    full = n * dim * hidden * 4
    assert largest_allocation(lambda: -reference_nade_log_prob(model, x).mean()) >= full  # the probe sees it
    assert 0 < largest_allocation(lambda: model.loss(x)) < full / 10


# --- RNADE -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rnade_log_density_and_gradients_equal_reference(dtype, monkeypatch):
    monkeypatch.setattr(nade_module, "BLOCK", 6)
    monkeypatch.setattr(nade_module, "CHUNK", 5)
    model = random_rnade(23, 12, 3, dtype)
    x = torch.randn(9, 23, dtype=dtype)
    assert_all_close([model.log_prob(x)], [reference_rnade_log_density(model, x)], TOL[dtype])
    reference_loss = -reference_rnade_log_density(model, x).mean()
    assert_all_close(gradients(model, model.loss(x)), gradients(model, reference_loss), TOL[dtype])
    weights = torch.randn(9, dtype=dtype)
    assert_all_close(
        gradients(model, (weights * model.log_prob(x)).sum()),
        gradients(model, (weights * reference_rnade_log_density(model, x)).sum()),
        TOL[dtype],
    )
