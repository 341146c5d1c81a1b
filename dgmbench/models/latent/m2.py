"""Semi-supervised VAE "M2" (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised
Learning with Deep Generative Models", Sec. 2.2): a class label y and a continuous style z
generate x, and the inference network's q(y|x) is the classifier.

    p(y) = Cat(1/K),  p(z) = N(0, I),  p(x | y, z) = Bernoulli(MLP([z, onehot(y)]))     (eq. 2)
    q(y | x) = Cat(pi(x)),  q(z | x, y) = N(mu(x, y), diag sigma^2(x, y))               (eq. 4)

Bounds (the KL of z in closed form, one reparameterised z per (x, y)):

    labelled:    -L(x, y) = E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)]   (eq. 6)
    unlabelled:  -U(x) = sum_y q(y|x) (-L(x, y)) + H(q(y|x))                                 (eq. 7)

-U(x) is the ELBO on log p(x) the model reports (``elbo``; its KL part is KL(q(y|x)||p(y))
+ sum_y q(y|x) KL(q(z|x,y)||p(z))); the sum over y is exact (all K classes at once).
Training minimises the paper's J^alpha (eq. 9; L and U are negated bounds there) in
per-example form,

    loss = mean_unlabelled[U(x)] + mean_labelled[L(x, y)] + alpha * labelled * mean_labelled[-log q(y|x)],

the classification weight being the paper's alpha = 0.1 N once its sums are divided by N
(alpha = 0.1 by default).

The labelled set: the trainer hands every batch with its labels; the model keeps the first
``labelled`` examples it sees, class-balanced (labelled / K per class), as its labelled set
(stored with the model, so a checkpoint keeps it) and ignores every other label. Each step
uses the batch as unlabelled data and a batch-sized draw from the labelled set. The
classification error on the test split is reported by the ``elbo_iwae`` metric for models
with ``classify``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model
from dgmbench.models.latent.vae import LOG_2PI


def softplus_mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Softplus())
    return nn.Sequential(*layers)


@dataclass
class M2Config:
    latent: int = 50  # Kingma et al. MNIST: 50-D z, one hidden layer of 500 softplus units
    hidden: int = 500
    labelled: int = 100  # labelled training examples (class-balanced); the rest are unlabelled
    alpha: float = 0.1  # classification weight, the paper's alpha = 0.1 N in per-example form
    iwae_chunk: int = 1000


@register_model("m2")
class M2(GenerativeModel, LowerBound):
    Config = M2Config
    family = "latent"
    value_types = ("binary",)
    uses_labels = True
    citation = "Kingma, Rezende, Mohamed & Welling (2014), Semi-supervised Learning with Deep Generative Models, NeurIPS"

    def __init__(self, config: M2Config, info):
        super().__init__(config, info)
        k = info.num_classes
        if not k or k < 2:
            raise ValueError(f"M2 needs a labelled dataset; {info.board} has no classes")
        if config.labelled < k or config.labelled % k:
            raise ValueError(f"labelled must be a positive multiple of the {k} classes, got {config.labelled}")
        if config.alpha < 0 or config.latent < 1 or config.hidden < 1:
            raise ValueError("alpha must be >= 0, latent and hidden >= 1")
        d, h, z = info.dim, config.hidden, config.latent
        self.classes = k
        self.classifier = softplus_mlp([d, h, k])  # logits of q(y|x)
        self.encoder = softplus_mlp([d + k, h, 2 * z])  # q(z|x,y)
        self.decoder = softplus_mlp([z + k, h, d])  # p(x|y,z)
        self.register_buffer("pool_x", torch.zeros(config.labelled, d))
        self.register_buffer("pool_y", torch.zeros(config.labelled, dtype=torch.long))
        self.register_buffer("pool_filled", torch.zeros(config.labelled, dtype=torch.bool))

    # --- densities --------------------------------------------------------------
    def class_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.classifier(x.flatten(1)), dim=-1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_log_probs(x).argmax(-1)

    def labelled_parts(self, x: torch.Tensor, y_onehot: torch.Tensor, k: int = 1):
        """For onehot labels (..., n, K): k samples z ~ q(z|x,y), (z, log q(z|x,y),
        log p(x|y,z), KL(q(z|x,y)||p(z)))."""
        x = x.flatten(1).expand(*y_onehot.shape[:-1], -1)
        mean, log_var = self.encoder(torch.cat([x, y_onehot], -1)).chunk(2, dim=-1)
        eps = torch.randn(k, *mean.shape, dtype=mean.dtype, device=mean.device)
        z = mean + eps * (0.5 * log_var).exp()
        log_q = (-0.5 * eps.pow(2) - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)
        logits = self.decoder(torch.cat([z, y_onehot.expand(k, *y_onehot.shape)], -1))
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
        return z, log_q, log_px, kl

    def labelled_bound(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-L(x, y) (eq. 6) per example: one z, closed-form KL of z."""
        _, _, log_px, kl = self.labelled_parts(x, F.one_hot(y, self.classes).to(x.dtype))
        return log_px[0] - math.log(self.classes) - kl

    def elbo(self, x: torch.Tensor) -> Bound:
        """-U(x) (eq. 7): the exact sum over all K labels, one z per label."""
        n = len(x)
        every_label = torch.eye(self.classes, dtype=x.dtype, device=x.device)[:, None, :].expand(-1, n, -1)
        _, _, log_px, kl_z = self.labelled_parts(x, every_label)  # (1, K, n), (K, n)
        q_y = self.class_log_probs(x).T.exp()  # (K, n)
        reconstruction = (q_y * log_px[0]).sum(0)
        kl_y = (q_y * (q_y.clamp(min=1e-30).log() + math.log(self.classes))).sum(0)
        kl = kl_y + (q_y * kl_z).sum(0)
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Proposal q(y|x) q(z|x,y): w = p(x|y,z) p(y) p(z) / (q(y|x) q(z|x,y))."""
        log_q_y = self.class_log_probs(x)  # (n, K)
        chunks = []
        for start in range(0, k, self.config.iwae_chunk):
            m = min(self.config.iwae_chunk, k - start)
            y = torch.distributions.Categorical(logits=log_q_y).sample((m,))  # (m, n)
            onehot = F.one_hot(y, self.classes).to(x.dtype)
            z, log_q_z, log_px, _ = self.labelled_parts(x, onehot)  # one z per sampled y
            log_pz = (-0.5 * z[0].pow(2) - 0.5 * LOG_2PI).sum(-1)
            chunks.append(log_px[0] - math.log(self.classes) + log_pz - log_q_z[0] - log_q_y.gather(1, y.T).T)
        return torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k)

    # --- training -----------------------------------------------------------------
    @torch.no_grad()
    def _fill_pool(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the first labelled/K examples of each class seen as the labelled set."""
        per_class = self.config.labelled // self.classes
        for label in y.unique().tolist():
            free = (~self.pool_filled).view(self.classes, per_class)[label].nonzero().flatten()
            take = (y == label).nonzero().flatten()[: len(free)]
            slots = label * per_class + free[: len(take)]
            self.pool_x[slots] = x.flatten(1)[take].to(self.pool_x.dtype)
            self.pool_y[slots] = label
            self.pool_filled[slots] = True

    def semi_supervised_loss(self, x: torch.Tensor) -> torch.Tensor:
        loss = -self.elbo(x).elbo.mean()
        if self.pool_filled.any():
            index = self.pool_filled.nonzero().flatten()
            index = index[torch.randint(len(index), (min(len(x), len(index)),), device=index.device)]
            xl, yl = self.pool_x[index].to(x.dtype), self.pool_y[index]
            classification = F.nll_loss(self.class_log_probs(xl), yl)
            loss = loss - self.labelled_bound(xl, yl).mean() + self.config.alpha * self.config.labelled * classification
        return loss

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        if y is None:
            raise ValueError("M2 is trained with labels; the dataset must provide them")
        if not self.pool_filled.all():
            self._fill_pool(x, y)
        (opt,) = optimizers.values()
        opt.zero_grad(set_to_none=True)
        loss = self.semi_supervised_loss(x)
        loss.backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        return {"loss": loss.item(), "labelled": float(self.pool_filled.sum().item())}

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Negative unlabelled bound -U(x) (validation)."""
        return -self.elbo(x).elbo.mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        y = F.one_hot(torch.randint(0, self.classes, (n,), device=self.device), self.classes).float()
        z = torch.randn(n, self.config.latent, device=self.device)
        return torch.bernoulli(torch.sigmoid(self.decoder(torch.cat([z, y], -1)))).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 8, "hidden": 64, "labelled": 100}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15, "lr": 3e-3}
