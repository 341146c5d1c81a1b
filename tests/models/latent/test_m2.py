"""Semi-supervised VAE M2: its bounds against log p(x) and the ELBO computed by quadrature
over a 1-D z and an exact sum over the labels; the labelled set; and the classifier."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.models import TrainConfig, build_model

D, K = 6, 3
INFO = DataInfo(name="tiny", variant="test", shape=(D,), value_type="binary", num_levels=2, num_classes=K)


def sharp():
    torch.manual_seed(0)
    model = build_model("m2", INFO, latent=1, hidden=16, labelled=6).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3)
    x = torch.bernoulli(torch.full((5, D), 0.5, dtype=torch.float64))
    return model, x


GRID = torch.linspace(-12, 12, 12001, dtype=torch.float64)


def per_label_quadrature(model, x):
    """For every label y: log ∫ p(x|y,z) p(z) dz and E_q(z|x,y)[log p(x|y,z)], (K, n) each."""
    dz = (GRID[1] - GRID[0]).item()
    eye = torch.eye(K, dtype=torch.float64)
    marginal, expected = [], []
    for y in range(K):
        onehot = eye[y].expand(len(GRID), len(x), K)
        z = GRID[:, None, None].expand(-1, len(x), 1)
        logits = model.decoder(torch.cat([z, onehot], -1))
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        log_pz = -0.5 * GRID[:, None] ** 2 - 0.5 * math.log(2 * math.pi)
        marginal.append(torch.logsumexp(log_px + log_pz, 0) + math.log(dz))
        mean, log_var = model.encoder(torch.cat([x, eye[y].expand(len(x), K)], -1)).chunk(2, -1)
        q = torch.exp(-0.5 * (GRID[:, None] - mean[:, 0]) ** 2 / log_var[:, 0].exp()) / torch.sqrt(2 * math.pi * log_var[:, 0].exp())
        expected.append((q * log_px).sum(0) * dz)
    return torch.stack(marginal), torch.stack(expected)


def test_bounds_against_quadrature_and_the_exact_label_sum():
    model, x = sharp()
    with torch.no_grad():
        marginal, expected_log_px = per_label_quadrature(model, x)
        exact = torch.logsumexp(marginal - math.log(K), 0)  # log p(x) = log sum_y p(y) p(x|y)
        q_y = model.class_log_probs(x).T.exp()
        kl_y = (q_y * (q_y.log() + math.log(K))).sum(0)
        kl_z = torch.stack([model.labelled_parts(x, torch.eye(K, dtype=torch.float64)[y].expand(len(x), K))[3]
                            for y in range(K)])
        exact_elbo = (q_y * expected_log_px).sum(0) - kl_y - (q_y * kl_z).sum(0)
        torch.manual_seed(1)
        draws = model.elbo(x.repeat(4000, 1)).elbo.view(4000, -1)
        iwae = model.iwae_bound(x.repeat(4, 1), 5000).view(4, -1).mean(0)
    stderr = draws.std(0) / math.sqrt(4000)
    assert torch.all((draws.mean(0) - exact_elbo).abs() < 4.5 * stderr + 1e-6)  # ELBO = the enumerated expectation
    assert torch.all(exact_elbo < exact)
    assert torch.allclose(iwae, exact, atol=0.05 * (exact - exact_elbo).mean().item())


def test_labelled_set_is_the_first_class_balanced_examples_and_later_labels_are_ignored():
    torch.manual_seed(0)
    model = build_model("m2", INFO, latent=2, hidden=8, labelled=6)
    x = torch.bernoulli(torch.full((12, D), 0.5))
    y = torch.tensor([0, 0, 0, 1, 2, 2, 2, 1, 0, 1, 2, 1])
    train = TrainConfig(lr=1e-3)
    opts = model.configure_optimizers(train)
    model.training_step(x, opts, train, y=y)
    assert model.pool_filled.all()
    assert model.pool_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(model.pool_x, x[[0, 1, 3, 7, 4, 5]])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = []
    for labels in (y, y.flip(0)):  # the pool is full: these labels must not matter
        model.load_state_dict(state)
        opts = model.configure_optimizers(train)
        torch.manual_seed(5)
        model.training_step(x, opts, train, y=labels)
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_few_labels_teach_the_classifier():
    torch.manual_seed(0)
    prototypes = torch.tensor([[0.95] * 2 + [0.05] * 4, [0.05] * 2 + [0.95] * 2 + [0.05] * 2, [0.05] * 4 + [0.95] * 2])
    labels = torch.randint(0, K, (300,))
    x = torch.bernoulli(prototypes[labels])
    model = build_model("m2", INFO, latent=2, hidden=32, labelled=6)
    train = TrainConfig(lr=3e-3)
    opts = model.configure_optimizers(train)
    for step in range(150):
        index = torch.arange(step * 30, step * 30 + 30) % 300
        model.training_step(x[index], opts, train, y=labels[index])
    assert (model.classify(x) == labels).double().mean() > 0.9


def test_needs_labels():
    with pytest.raises(ValueError, match="no classes"):
        build_model("m2", DataInfo(name="t", variant="t", shape=(D,), value_type="binary", num_levels=2))
    with pytest.raises(ValueError, match="multiple"):
        build_model("m2", INFO, labelled=4)
