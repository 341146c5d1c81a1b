"""Conditional GAN (Mirza & Osindero 2014): generator and discriminator both see the class
label y, so the game of Goodfellow et al. 2014 becomes

    min_G max_D E_{x,y ~ data} log D(x | y) + E_{z, y} log(1 - D(G(z | y) | y))     (eq. 2)

and G(z | y) samples a chosen class. During training the generated batch takes the labels
of the real batch (a draw from the data's label distribution); ``sample(n)`` draws y
uniformly, ``sample_class(n, y)`` a given class.

Conditioning: a one-hot y is appended to z, and to the discriminator's input (as K constant
feature maps for the DCGAN networks). Mirza & Osindero's MNIST networks first map z and y
through separate hidden layers (ReLU 200 and 1000 in G; maxout 240 and 50 in D) and join
them; we use the concatenation at the input, the common simplification.

Reference configuration (their MNIST model, Sec. 4.1): 100-D uniform z, generator hidden
1200 ReLU with a sigmoid output, maxout discriminator (240 units, 5 pieces), dropout 0.5,
SGD with momentum 0.5 and learning rate 0.1, batch 100.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dgmbench.models.base import register_model
from dgmbench.models.gans.gan import CrossEntropyGAN
from dgmbench.models.gans.layers.adversarial import AdversarialConfig


@dataclass
class CGANConfig(AdversarialConfig):
    latent: int = 100
    prior: str = "uniform"
    architecture: str = "mlp"
    g_hidden: tuple[int, ...] = (1200,)
    d_hidden: tuple[int, ...] = (240, 240)
    maxout_pieces: int = 5
    dropout: float = 0.5
    input_dropout: float = 0.2
    generator_norm: str = "none"
    critic_norm: str = "none"
    optimizer: str = "sgd"
    momentum: float = 0.5
    generator_loss: str = "non_saturating"  # or "minimax"


@register_model("cgan")
class ConditionalGAN(CrossEntropyGAN):
    Config = CGANConfig
    citation = "Mirza & Osindero (2014), Conditional Generative Adversarial Nets, arXiv:1411.1784"
    train_defaults = {"patience": None, "lr": 0.1, "batch_size": 100}
    uses_labels = True

    def __init__(self, config, info):
        if not info.num_classes:
            raise ValueError(f"the conditional GAN needs class labels; {info.board} has none")
        super().__init__(config, info)

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def generator_input_dim(self) -> int:
        return self.config.latent + self.num_classes

    def critic_info(self):
        if self.architecture == "dcgan":
            c, h, w = self.info.shape
            return dataclasses.replace(self.info, shape=(c + self.num_classes, h, w))
        return dataclasses.replace(self.info, shape=(self.info.dim + self.num_classes,))

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), self.num_classes).to(self.generator.body[0].weight.dtype)

    def generator_input(self, n, labels=None):
        if labels is None:
            labels = torch.randint(0, self.num_classes, (n,), device=self.device)
        return torch.cat([self.prior_sample(n), self.one_hot(labels)], dim=1)

    def _conditioned(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("the conditional GAN's discriminator needs the labels of its batch")
        y = self.one_hot(labels)
        if self.architecture == "dcgan":
            return torch.cat([x, y[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        x = x.flatten(1)
        # the MLP sees a vector, so the [0, 1] -> [-1, 1] image scaling happens here
        return torch.cat([2 * x - 1 if self.info.is_image else x, y], dim=1)

    def critic(self, x, labels=None):
        return self.discriminator(self._conditioned(x, labels))

    def critic_features(self, x, labels=None):
        return self.discriminator.features(self._conditioned(x, labels))

    @torch.no_grad()
    def sample_class(self, n: int, label: int) -> torch.Tensor:
        if not 0 <= label < self.num_classes:
            raise ValueError(f"class {label} is not in 0..{self.num_classes - 1}")
        return self.generate(n, torch.full((n,), label, dtype=torch.long, device=self.device))

    @classmethod
    def quick_config(cls, info):
        # small, and LeakyReLU + batch-norm generator: the maxout/SGD reference collapsed in
        # this short run on digits (FID ~390 vs ~100, domain features, 2 cores)
        return {"latent": 16, "g_hidden": (128, 128), "d_hidden": (64, 64), "maxout_pieces": 0,
                "dropout": 0.0, "input_dropout": 0.0, "generator_norm": "batch", "optimizer": "adam"}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 5e-4}
