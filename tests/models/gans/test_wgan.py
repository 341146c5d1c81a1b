"""WGAN (Arjovsky et al. 2017): the critic's estimate E f(x) - E f(G(z)) with the optimal
1-Lipschitz critic equals W1 (Kantorovich-Rubinstein duality), checked against scipy's
W1 on discrete distributions (optimal critic built from the CDFs) and on two Gaussians
(f* linear) through the model; weight clipping keeps every critic weight in [-c, c]; the
critic warm-up schedule follows Algorithm 1's code."""
from __future__ import annotations

import pytest
import torch
from scipy.stats import wasserstein_distance

from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.models.gans.layers.losses import wasserstein_critic_loss
from gan_helpers import P, P_COUNTS, Q, Q_COUNTS, SUPPORT, as_batch, vector_info


def optimal_critic(support: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """f* on the sorted support: slope sign(F_q - F_p) between support points, since
    E_p f - E_q f = integral f'(t) (F_q(t) - F_p(t)) dt."""
    slope = torch.sign(q.cumsum(0) - p.cumsum(0))[:-1]
    steps = slope * support.diff()
    return torch.cat([torch.zeros(1, dtype=support.dtype), steps.cumsum(0)])


def test_kantorovich_dual_with_optimal_critic_is_w1():
    w1 = wasserstein_distance(SUPPORT.numpy(), SUPPORT.numpy(), P.numpy(), Q.numpy())
    f = optimal_critic(SUPPORT, P, Q)
    assert (f.diff().abs() <= SUPPORT.diff() + 1e-12).all()  # 1-Lipschitz
    estimate = -wasserstein_critic_loss(as_batch(f, P_COUNTS), as_batch(f, Q_COUNTS)).item()
    assert estimate == pytest.approx(w1, abs=1e-12)
    # other 1-Lipschitz critics (random slopes in [-1, 1]) never exceed W1
    for seed in range(20):
        slope = torch.rand(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
        g = torch.cat([torch.zeros(1, dtype=torch.float64), (slope * SUPPORT.diff()).cumsum(0)])
        assert -wasserstein_critic_loss(as_batch(g, P_COUNTS), as_batch(g, Q_COUNTS)).item() <= w1 + 1e-12


def test_model_with_optimal_linear_critic_reports_w1_of_two_gaussians():
    """N(0, 1) against N(2, 1): W1 = 2, attained by f(x) = -x."""
    model = build_model("wgan", vector_info(1), d_hidden=()).double()
    with torch.no_grad():
        model.discriminator.head.weight.fill_(-1.0)
        model.discriminator.head.bias.zero_()
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200_000, 1, generator=g, dtype=torch.float64)
    fake = 2 + torch.randn(200_000, 1, generator=g, dtype=torch.float64)
    _, scalars = model.discriminator_loss(real, fake)
    assert scalars["wasserstein_estimate"] == pytest.approx(2.0, abs=0.015)  # se 0.0032


def test_weights_stay_within_the_clip():
    torch.manual_seed(0)
    model = build_model("wgan", vector_info(2), latent=4, g_hidden=(16,), d_hidden=(16, 16), critic_warmup=False)
    with torch.no_grad():  # start far outside the clip: the first step must bring them in
        for p in model.discriminator.parameters():
            p.mul_(10)
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    for _ in range(12):
        scalars = model.training_step(torch.randn(32, 2) + 3, optimizers, train)
        weights = torch.cat([p.flatten() for p in model.discriminator.parameters()])
        assert weights.abs().max() <= model.config.clip
        assert weights.abs().max() == model.config.clip  # the clip is active, not vacuous
    assert int(model.generator_updates) == 12 // 5
    assert "wasserstein_estimate" in scalars


def test_critic_warmup_schedule():
    model = build_model("wgan", vector_info(2))
    assert model.config.n_critic == 5 and model.config.clip == 0.01 and model.config.optimizer == "rmsprop"
    assert [model.critic_iterations(g) for g in (0, 24, 25, 499, 500, 501)] == [100, 100, 5, 5, 100, 5]
    assert build_model("wgan", vector_info(2), critic_warmup=False).critic_iterations(0) == 5
    with pytest.raises(ValueError, match="clip"):
        build_model("wgan", vector_info(2), clip=0.0)
