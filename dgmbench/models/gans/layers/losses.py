"""The two players' objectives, as functions of the discriminator's outputs on a real batch
and a generated batch (means over each batch). Each is written to be minimised.

GAN (Goodfellow et al. 2014, eq. 1), D(x) = sigmoid(logit(x)):

    V(D, G) = E_data log D(x) + E_z log(1 - D(G(z)))
    discriminator:            -V(D, G)   = E softplus(-logit(x)) + E softplus(logit(G(z)))
    generator, minimax:        E log(1 - D(G(z)))  = -E softplus(logit(G(z)))    (saturating)
    generator, non-saturating: -E log D(G(z))      =  E softplus(-logit(G(z)))   (Sec. 3)

With the optimal discriminator D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1),
V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1). One-sided label smoothing (Salimans
et al. 2016, Sec. 3.4) replaces the real target 1 by alpha: the real term becomes the
cross-entropy alpha softplus(-l) + (1 - alpha) softplus(l).

LSGAN (Mao et al. 2017, eq. 2), targets a (fake), b (real) for D and c for G:

    discriminator: 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2
    generator:     1/2 E (D(G(z)) - c)^2

D*(x) = (b p_data + a p_g) / (p_data + p_g) (eq. 4); with b - c = 1 and b - a = 2 (e.g.
a = -1, b = 1, c = 0), 2 C(G) = Pearson chi^2(p_data + p_g || 2 p_g), where C(G) is the
generator objective including the G-independent term 1/2 E_data (D*(x) - c)^2 (eq. 5-7).

WGAN (Arjovsky et al. 2017, eq. 3): the critic f maximises E_data f(x) - E_z f(G(z)),
which over 1-Lipschitz f is W1(p_data, p_g) (Kantorovich-Rubinstein duality); the
generator minimises -E_z f(G(z)). WGAN-GP (Gulrajani et al. 2017, eq. 3) adds
lambda E_xhat (||grad f(xhat)||_2 - 1)^2 on xhat = eps x + (1 - eps) G(z), eps ~ U(0, 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """-V(D, G) with D = sigmoid(logits); real_target < 1 is one-sided label smoothing."""
    real = real_target * F.softplus(-real_logits) + (1.0 - real_target) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def gan_generator_loss(fake_logits: torch.Tensor, saturating: bool = False) -> torch.Tensor:
    """Minimax: E log(1 - D(G(z))); non-saturating: -E log D(G(z))."""
    if saturating:
        return -F.softplus(fake_logits).mean()
    return F.softplus(-fake_logits).mean()


def least_squares_discriminator_loss(real: torch.Tensor, fake: torch.Tensor, a: float, b: float) -> torch.Tensor:
    return 0.5 * (real - b).pow(2).mean() + 0.5 * (fake - a).pow(2).mean()


def least_squares_generator_loss(fake: torch.Tensor, c: float) -> torch.Tensor:
    return 0.5 * (fake - c).pow(2).mean()


def wasserstein_critic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-(E f(x) - E f(G(z))): minus the critic's estimate of W1 (up to its Lipschitz constant)."""
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E (||grad_xhat f(xhat)||_2 - 1)^2 on random interpolates, and the gradient norms.

    create_graph=True so the penalty is differentiable in the critic's parameters."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    interpolates = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return (norms - 1).pow(2).mean(), norms
