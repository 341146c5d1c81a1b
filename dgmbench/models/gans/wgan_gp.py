"""WGAN with gradient penalty (Gulrajani et al. 2017).

Instead of clipping weights, the critic's loss gets a soft 1-Lipschitz constraint on the
straight lines between real and generated points, where the optimal critic has gradient
norm 1 (Prop. 1):

    L = E f(G(z)) - E f(x) + lambda E_xhat (||grad_xhat f(xhat)||_2 - 1)^2,
        xhat = eps x + (1 - eps) G(z), eps ~ U[0, 1]                                (eq. 3)

Algorithm 1 (reference configuration): lambda = 10, n_critic = 5, Adam with learning rate
1e-4, beta1 = 0, beta2 = 0.9, batch 64; no batch normalisation in the critic (the penalty
is per example), layer normalisation recommended instead (Sec. 4). Logged every step:
``wasserstein_estimate``, ``gradient_penalty`` and ``grad_norm`` (the mean gradient norm on
the interpolates, which the penalty pushes to 1).
"""
from __future__ import annotations

from dataclasses import dataclass

from dgmbench.models.base import register_model
from dgmbench.models.gans.layers.adversarial import AdversarialConfig
from dgmbench.models.gans.layers.losses import gradient_penalty
from dgmbench.models.gans.wgan import WassersteinGAN


@dataclass
class WGANGPConfig(AdversarialConfig):
    latent: int = 128
    n_critic: int = 5
    penalty: float = 10.0  # lambda
    critic_norm: str = "layer"
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.0, 0.9)


@register_model("wgan_gp")
class WGANGP(WassersteinGAN):
    Config = WGANGPConfig
    citation = "Gulrajani et al. (2017), Improved Training of Wasserstein GANs, NeurIPS"
    train_defaults = {"patience": None, "lr": 1e-4, "batch_size": 64}

    def __init__(self, config, info):
        if config.critic_norm == "batch":
            raise ValueError("the gradient penalty is per example: use critic_norm 'layer' or 'none', not 'batch'")
        if config.minibatch_kernels:
            raise ValueError("minibatch discrimination couples examples, which the per-example gradient penalty forbids")
        super().__init__(config, info)

    def discriminator_penalty(self, real, fake):
        penalty, norms = gradient_penalty(self.discriminator, real, fake)
        return self.config.penalty * penalty, {"gradient_penalty": penalty.item(), "grad_norm": norms.mean().item()}

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 1e-3}
