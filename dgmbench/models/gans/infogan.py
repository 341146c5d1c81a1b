"""InfoGAN (Chen et al. 2016): a GAN whose generator input is split into incompressible
noise z and structured codes c (here one categorical code with K values and C continuous
codes, uniform on [-1, 1]), with a term that keeps the codes recoverable from the samples:

    min_{G,Q} max_D V(D, G) - lambda L_I(G, Q)                                      (eq. 6)
    L_I(G, Q) = E_{c ~ p(c), x ~ G(z, c)} [log Q(c | x)] + H(c) <= I(c; G(z, c))     (eq. 5)

Q(c | x) shares the discriminator's body and adds a small head: a softmax over the K
categories and a factored Gaussian for the continuous codes (Sec. 6) with unit standard
deviation (the authors' MNIST setting; ``learn_std`` learns it, which lets log Q grow
without bound as the generator encodes the codes ever more precisely). Both
players take the -lambda E log Q(c | x) term: the discriminator's step updates Q's head and
the shared body, the generator's step the generator. Logged every step on the generated
batch: ``mi_categorical_bound`` = log K + E log Q(c_cat | x) (a lower bound on I(c_cat; x),
at most log K), ``mi_continuous_bound`` = C log 2 + E log Q(c_cont | x) (the same with the
differential entropy of U(-1, 1)^C) and ``info_loss``.

:meth:`InfoGAN.categorical_code_accuracy` infers each real example's category,
argmax_k Q(c_cat = k | x), and scores it against the true class labels under the best
one-to-one matching of categories to classes (Hungarian algorithm, scipy's
linear_sum_assignment): unsupervised classification accuracy "up to permutation" (Chen
et al. report 5% error on MNIST, Sec. 7.1).

Reference configuration (MNIST, Chen et al. Appendix C.1): 62 noise variables, one
10-way categorical and two continuous codes, lambda = 1, batch 100, Adam with learning
rates 2e-4 (D) and 1e-3 (G; ours: one learning rate for both, 2e-4); DCGAN-style networks
(theirs add a 1024-unit fully connected layer in each network).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from dgmbench.models.base import register_model
from dgmbench.models.gans.gan import CrossEntropyGAN
from dgmbench.models.gans.layers.adversarial import AdversarialConfig


@dataclass
class InfoGANConfig(AdversarialConfig):
    latent: int = 62  # incompressible noise
    prior: str = "uniform"
    categorical: int = 10  # values of the categorical code (0: none)
    continuous: int = 2  # continuous codes, U(-1, 1)
    info_weight: float = 1.0  # lambda
    q_hidden: int = 128
    learn_std: bool = False  # continuous codes: Q's Gaussian has unit std (as the authors' MNIST code)
    generator_loss: str = "non_saturating"


def matched_accuracy(predicted: torch.Tensor, labels: torch.Tensor, num_predicted: int, num_classes: int) -> float:
    """Accuracy of predicted categories against labels under the best one-to-one matching
    of categories to classes (linear_sum_assignment on the confusion matrix)."""
    confusion = np.zeros((num_predicted, num_classes), dtype=np.int64)
    np.add.at(confusion, (predicted.cpu().numpy(), labels.cpu().numpy()), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    return float(confusion[rows, cols].sum()) / len(labels)


@register_model("infogan")
class InfoGAN(CrossEntropyGAN):
    Config = InfoGANConfig
    citation = (
        "Chen et al. (2016), InfoGAN: Interpretable Representation Learning by Information Maximizing "
        "Generative Adversarial Nets, NeurIPS"
    )
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 100}

    def __init__(self, config, info):
        if config.categorical == 1 or (config.categorical == 0 and config.continuous == 0):
            raise ValueError("InfoGAN needs a categorical code with >= 2 values or >= 1 continuous code")
        super().__init__(config, info)
        features = self.discriminator.head.in_features - config.minibatch_kernels
        self.q_head = nn.Sequential(
            nn.Linear(features, config.q_hidden), nn.LeakyReLU(0.2),
            nn.Linear(config.q_hidden, config.categorical + (2 if config.learn_std else 1) * config.continuous),
        )

    def generator_input_dim(self) -> int:
        return self.config.latent + self.config.categorical + self.config.continuous

    def generator_input(self, n, labels=None):
        c = self.config
        parts = [self.prior_sample(n)]
        if c.categorical:
            category = torch.randint(0, c.categorical, (n,), device=self.device)
            parts.append(F.one_hot(category, c.categorical).float())
        if c.continuous:
            parts.append(torch.rand(n, c.continuous, device=self.device) * 2 - 1)
        return torch.cat(parts, dim=1)

    def discriminator_params_module(self) -> nn.Module:
        return nn.ModuleList([self.discriminator, self.q_head])

    def code_log_likelihoods(self, x: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E log Q(c_cat | x) and E log Q(c_cont | x) over the batch, for the codes in
        the generator inputs that produced x."""
        c = self.config
        q = self.q_head(self.discriminator.features(x))
        codes = inputs[:, c.latent:]
        zero = torch.zeros((), device=x.device)
        log_cat = -F.cross_entropy(q[:, :c.categorical], codes[:, :c.categorical].argmax(1)) if c.categorical else zero
        if c.continuous:
            mean = q[:, c.categorical:c.categorical + c.continuous]
            std = q[:, c.categorical + c.continuous:].exp() if c.learn_std else torch.ones_like(mean)
            log_cont = torch.distributions.Normal(mean, std).log_prob(codes[:, c.categorical:]).sum(1).mean()
        else:
            log_cont = zero
        return log_cat, log_cont

    def _information(self, fake, inputs) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        log_cat, log_cont = self.code_log_likelihoods(fake, inputs)
        info_loss = -(log_cat + log_cont)
        scalars = {"info_loss": info_loss.item()}
        if c.categorical:
            scalars["mi_categorical_bound"] = math.log(c.categorical) + log_cat.item()
        if c.continuous:
            scalars["mi_continuous_bound"] = c.continuous * math.log(2) + log_cont.item()
        return c.info_weight * info_loss, scalars

    def discriminator_loss(self, real, fake, labels=None, inputs=None):
        loss, scalars = super().discriminator_loss(real, fake, labels, inputs)
        information, info_scalars = self._information(fake, inputs)
        scalars.update(info_scalars)
        scalars["d_loss"] = (loss + information).item()
        return loss + information, scalars

    def generator_loss(self, fake, real, labels=None, inputs=None):
        return super().generator_loss(fake, real, labels, inputs) + self._information(fake, inputs)[0]

    @torch.no_grad()
    def infer_category(self, x: torch.Tensor) -> torch.Tensor:
        """argmax_k Q(c_cat = k | x) for each example."""
        if not self.config.categorical:
            raise ValueError("this InfoGAN has no categorical code (categorical = 0)")
        return self.q_head(self.discriminator.features(x))[:, :self.config.categorical].argmax(1)

    @torch.no_grad()
    def categorical_code_accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        num_classes = self.info.num_classes or int(labels.max()) + 1
        return matched_accuracy(self.infer_category(x), labels, self.config.categorical, num_classes)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 2e-4}
