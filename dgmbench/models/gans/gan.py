"""Generative adversarial nets (Goodfellow et al. 2014), MLP generator and maxout
discriminator, with the minimax and the non-saturating generator loss.

    min_G max_D V(D, G) = E_{x~p_data} log D(x) + E_{z~p_z} log(1 - D(G(z)))      (eq. 1)

D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1) and V(D*, G) = -log 4 + 2 JSD(p_data ||
p_g) (Theorem 1), so each step logs ``js_estimate`` = (log 4 + V(D, G)) / 2 on the batch,
a lower bound on JSD(p_data || p_g) when D is not optimal (V(D, G) <= V(D*, G)).

Generator losses (``generator_loss``): ``"minimax"`` minimises E log(1 - D(G(z))) as in eq.
1 (saturates early in training, when D rejects samples confidently); ``"non_saturating"``
minimises -E log D(G(z)), the heuristic of Sec. 3 (same fixed point, strong gradients
early), which is the default because it is what the paper trains with.

Reference configuration (the authors' MNIST setup, pylearn2 ``mnist.yaml``): 100-D noise,
generator ReLU 1200-1200 with a sigmoid output (ours by default: tanh mapped to [0, 1], the
same function up to a factor 2 inside), discriminator maxout 240 units x 5 pieces, two
layers, dropout 0.2 on the input and 0.5 on the hidden layers, SGD with momentum 0.5,
learning rate 0.1, batch 100, k = 1 discriminator step per generator step. The defaults keep
the uniform noise the committed records were made with; the released code's Generator
draws Gaussian noise unless told otherwise, and its remaining choices (initialisation,
sigmoid output with data-initialised bias, [0, 1] discriminator input, simultaneous
updates, learning-rate decay, momentum ramp) are options of
:mod:`dgmbench.models.gans.layers.adversarial`, set together by the ``gan_parzen_mnist``
reproduction in baselines/gans.toml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dgmbench.models.base import register_model
from dgmbench.models.gans.layers.adversarial import AdversarialConfig, AdversarialModel
from dgmbench.models.gans.layers.losses import gan_discriminator_loss, gan_generator_loss

GENERATOR_LOSSES = ("non_saturating", "minimax")


@dataclass
class GANConfig(AdversarialConfig):
    latent: int = 100
    prior: str = "uniform"
    architecture: str = "mlp"
    g_hidden: tuple[int, ...] = (1200, 1200)
    d_hidden: tuple[int, ...] = (240, 240)
    maxout_pieces: int = 5
    dropout: float = 0.5
    input_dropout: float = 0.2
    generator_norm: str = "none"
    critic_norm: str = "none"
    optimizer: str = "sgd"
    momentum: float = 0.5
    generator_loss: str = "non_saturating"  # or "minimax" (saturating)


class CrossEntropyGAN(AdversarialModel):
    """The cross-entropy game of eq. 1, shared by GAN and DCGAN."""

    supports_label_smoothing = True

    def __init__(self, config, info):
        if config.generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss {config.generator_loss!r} is not one of {', '.join(GENERATOR_LOSSES)}")
        super().__init__(config, info)

    def discriminator_objective(self, real_scores, fake_scores):
        return gan_discriminator_loss(real_scores, fake_scores, real_target=self.config.label_smoothing)

    def generator_objective(self, fake_scores):
        return gan_generator_loss(fake_scores, saturating=self.config.generator_loss == "minimax")

    def critic_estimates(self, real_scores, fake_scores):
        value = -gan_discriminator_loss(real_scores, fake_scores).item()  # V(D, G), unsmoothed
        return {"js_estimate": (math.log(4) + value) / 2}


@register_model("gan")
class GAN(CrossEntropyGAN):
    Config = GANConfig
    citation = "Goodfellow et al. (2014), Generative Adversarial Nets, NeurIPS"
    train_defaults = {"patience": None, "lr": 0.1, "batch_size": 100}

    @classmethod
    def quick_config(cls, info):
        # small, and LeakyReLU + batch-norm generator: the maxout/SGD reference collapsed in
        # this short run on digits (FID ~390 vs ~100, domain features, 2 cores)
        return {"latent": 16, "g_hidden": (128, 128), "d_hidden": (64, 64), "maxout_pieces": 0,
                "dropout": 0.0, "input_dropout": 0.0, "generator_norm": "batch", "optimizer": "adam"}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 5e-4}

