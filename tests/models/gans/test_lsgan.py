"""LSGAN (Mao et al. 2017): with the optimal discriminator D* = (b p + a q) / (p + q)
(eq. 4) and a = -1, b = 1, c = 0, twice the generator's objective C(G) (with its
G-independent term) is the Pearson chi-square divergence chi^2(p + q || 2q) (eqs. 5-8),
computed here directly from its definition, on exact discrete expectations."""
from __future__ import annotations

import pytest
import torch

from dgmbench.models import build_model
from dgmbench.models.gans.layers.losses import least_squares_discriminator_loss, least_squares_generator_loss
from gan_helpers import P, P_COUNTS, Q, Q_COUNTS, as_batch, vector_info

A, B, C = -1.0, 1.0, 0.0


def test_optimal_discriminator_minimises_the_least_squares_loss():
    d_star = ((B * P + A * Q) / (P + Q)).requires_grad_(True)
    loss = least_squares_discriminator_loss(as_batch(d_star, P_COUNTS), as_batch(d_star, Q_COUNTS), A, B)
    (grad,) = torch.autograd.grad(loss, d_star)
    assert grad.abs().max() < 1e-12
    for seed in range(5):
        other = d_star.detach() + 0.2 * torch.randn(5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert least_squares_discriminator_loss(as_batch(other, P_COUNTS), as_batch(other, Q_COUNTS), A, B) > loss


def test_generator_value_at_optimum_is_half_pearson_chi_square():
    d_star = (B * P + A * Q) / (P + Q)
    generator_value = least_squares_generator_loss(as_batch(d_star, Q_COUNTS), C)  # 1/2 E_q (D - c)^2
    g_independent = least_squares_generator_loss(as_batch(d_star, P_COUNTS), C)  # 1/2 E_p (D - c)^2
    pearson = ((2 * Q - (P + Q)) ** 2 / (P + Q)).sum()  # chi^2_Pearson(p + q || 2q)
    assert 2 * (generator_value + g_independent).item() == pytest.approx(pearson.item(), abs=1e-12)
    # the model logs the same C(G) from the discriminator's scores
    model = build_model("lsgan", vector_info(1), a=A, b=B, c=C)
    logged = model.critic_estimates(as_batch(d_star, P_COUNTS), as_batch(d_star, Q_COUNTS))["ls_generator_value"]
    assert 2 * logged == pytest.approx(pearson.item(), abs=1e-12)


def test_model_losses_use_the_configured_targets():
    model = build_model("lsgan", vector_info(2))
    assert (model.config.a, model.config.b, model.config.c) == (0.0, 1.0, 1.0)
    real, fake = torch.tensor([0.5, 1.5]), torch.tensor([0.2, -0.4])
    assert model.discriminator_objective(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.25) / 2 + 0.5 * (0.04 + 0.16) / 2)
    assert model.generator_objective(fake).item() == pytest.approx(0.5 * (0.64 + 1.96) / 2)
