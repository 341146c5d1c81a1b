"""Least squares GAN (Mao et al. 2017): the discriminator regresses real data to b and
generated data to a, the generator pushes D(G(z)) to c (eq. 2):

    min_D 1/2 E_data (D(x) - b)^2 + 1/2 E_z (D(G(z)) - a)^2
    min_G 1/2 E_z (D(G(z)) - c)^2

For fixed G the optimal D*(x) = (b p_data + a p_g) / (p_data + p_g) (eq. 4). Adding the
G-independent term 1/2 E_data (D(x) - c)^2 to the generator's objective, with b - c = 1
and b - a = 2 (e.g. a = -1, b = 1, c = 0, eq. 8) it equals
1/2 Pearson chi^2(p_data + p_g || 2 p_g) (eqs. 5-7). The default is the 0-1 coding
a = 0, b = c = 1 (eq. 9), the one most implementations train with; both are options.

Networks: DCGAN-style (for images) with Adam, learning rate 2e-4, beta1 = 0.5 (the
paper's LSUN architecture is a larger VGG-like one, not reproduced here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dgmbench.models.base import register_model
from dgmbench.models.gans.layers.adversarial import AdversarialConfig, AdversarialModel
from dgmbench.models.gans.layers.losses import least_squares_discriminator_loss, least_squares_generator_loss


@dataclass
class LSGANConfig(AdversarialConfig):
    latent: int = 1024  # the paper's z for LSUN scenes (Fig. 3a)
    a: float = 0.0  # target of D on generated data
    b: float = 1.0  # target of D on real data
    c: float = 1.0  # the value G wants D to output on generated data
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.5, 0.999)

    option_ranges: ClassVar[dict] = {**AdversarialConfig.option_ranges, "a": (None, None), "b": (None, None),
                                     "c": (None, None)}


@register_model("lsgan")
class LSGAN(AdversarialModel):
    Config = LSGANConfig
    citation = "Mao et al. (2017), Least Squares Generative Adversarial Networks, ICCV"
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 64}

    def discriminator_objective(self, real_scores, fake_scores):
        return least_squares_discriminator_loss(real_scores, fake_scores, self.config.a, self.config.b)

    def generator_objective(self, fake_scores):
        return least_squares_generator_loss(fake_scores, self.config.c)

    def critic_estimates(self, real_scores, fake_scores):
        """C(G) of eq. 5 on the batch: the generator's objective plus its G-independent term.
        At the optimal D with a = -1, b = 1, c = 0 it is 1/2 chi^2(p_data + p_g || 2 p_g)."""
        c = self.config.c
        value = 0.5 * (real_scores - c).pow(2).mean() + 0.5 * (fake_scores - c).pow(2).mean()
        return {"ls_generator_value": value.item()}

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 10, "batch_size": 64, "lr": 1e-3}
