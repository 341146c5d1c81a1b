"""DRAW: the attention filterbank against its definition (normalised filters; an N = A grid
with unit stride and tiny variance reads the image itself), and the ELBO / IWAE bounds'
ordering with L_1 equal to the ELBO."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.models import build_model
from dgmbench.models.latent.draw import filterbank

INFO = DataInfo(name="tiny", variant="test", shape=(1, 5, 5), value_type="binary", num_levels=2)


def test_filters_are_normalised_and_a_full_unit_stride_grid_reads_the_image():
    m = torch.ones(3, dtype=torch.float64)
    f_y, f_x = filterbank(2.0 * m, 1.5 * m, torch.log(0.7 * m), torch.log(0.9 * m), n=4, height=6, width=5)
    assert f_y.shape == (3, 4, 6) and f_x.shape == (3, 4, 5)
    assert torch.allclose(f_x.sum(-1), torch.ones(3, 4, dtype=torch.float64))
    assert torch.allclose(f_y.sum(-1), torch.ones(3, 4, dtype=torch.float64))
    # N = A = B = 8, centre (3.5, 3.5), stride 1, variance 1e-3: F_Y x F_X^T = x
    one = torch.ones(1, dtype=torch.float64)
    f_y, f_x = filterbank(3.5 * one, 3.5 * one, math.log(1e-3) * one, 0 * one, n=8, height=8, width=8)
    x = torch.rand(8, 8, dtype=torch.float64)
    assert torch.allclose(f_y[0] @ x @ f_x[0].T, x, atol=1e-12)


@pytest.mark.parametrize("attention", [True, False])
def test_bounds_ordered_and_l1_is_the_elbo(attention):
    torch.manual_seed(0)
    model = build_model("draw", INFO, steps=3, hidden=16, latent=2, attention=attention, read_size=2, write_size=3).double()
    with torch.no_grad():
        for p in model.write_patch.parameters():
            p.mul_(5)  # a sharp decoder: a visible gap between the bounds
    x = torch.bernoulli(torch.full((4, 1, 5, 5), 0.5, dtype=torch.float64))
    torch.manual_seed(1)
    r = 1000
    with torch.no_grad():
        elbo = model.elbo(x.repeat(r, 1, 1, 1)).elbo.view(r, -1)
        l1 = model.iwae_bound(x.repeat(r, 1, 1, 1), 1).view(r, -1)
        l20 = model.iwae_bound(x.repeat(50, 1, 1, 1), 20).view(50, -1)
    stderr = (elbo.std(0) ** 2 / r + l1.std(0) ** 2 / r).sqrt()
    assert torch.all((elbo.mean(0) - l1.mean(0)).abs() < 4.5 * stderr)  # E[log w] = ELBO (closed-form KLs)
    gap = l20.mean(0) - elbo.mean(0)
    stderr = (elbo.std(0) ** 2 / r + l20.std(0) ** 2 / 50).sqrt()
    assert torch.all(gap > 0) and gap.mean() > 4.5 * stderr.mean()  # L_20 above the ELBO


def test_gradients_reach_every_parameter_and_samples_have_the_image_shape():
    model = build_model("draw", INFO, steps=2, hidden=8, latent=2)
    x = torch.bernoulli(torch.full((3, 1, 5, 5), 0.5))
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.sample(4).shape == (4, 1, 5, 5)
    bound = model.elbo(x)
    assert torch.allclose(bound.elbo, bound.reconstruction - bound.kl)


def test_needs_single_channel_images():
    with pytest.raises(ValueError, match="single-channel images"):
        build_model("draw", DataInfo(name="t", variant="t", shape=(25,), value_type="binary", num_levels=2))
