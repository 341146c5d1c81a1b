"""Log-linear ("feature-rich") latent-variable model trained by EM (Berg-Kirkpatrick,
Bouchard-Cote, DeNero & Klein 2010, "Painless Unsupervised Learning with Features"): the
family's exact-inference reference point.

    p(z) = softmax(pi)_z,  z in {1..K}
    p(x | z) = exp(w . f(x, z)) / sum_x' exp(w . f(x', z))                       (BBDK eq. 1-2)

The features are conjunctions of one pixel x_d with a template of (z, d), f(x, z) =
sum_d x_d phi_d(z), so the normaliser factorises over pixels and p(x|z) = prod_d
Bernoulli(x_d; sigmoid(eta_zd)) with eta_zd = w . phi_d(z). The templates (``features``):

    "class_pixel"  one weight per (z, d)        (alone: the mixture of Bernoullis)
    "pixel"        one weight per d, shared by every z (back-off shared across clusters)
    "class"        one weight per z, shared by every pixel
    "class_row", "class_col"   one weight per (z, image row) / (z, image column)

Shared templates tie clusters and pixels together, which a table of per-(z, d)
probabilities cannot. EM on the penalised log-likelihood
J(pi, w) = sum_n log sum_z p(z) p(x_n|z) - (kappa / 2) ||w||^2:

    E-step: r_nz = p(z | x_n), exact (K terms).
    M-step: pi_z = log sum_n r_nz; w = argmax_w sum_{z,d} [S_zd eta_zd - N_z softplus(eta_zd)]
            - (kappa / 2) ||w||^2 with S_zd = sum_n r_nz x_nd and N_z = sum_n r_nz: concave
            in w (eta is linear in w), solved by L-BFGS (scipy) to tolerance (BBDK Sec. 2.2,
            "direct gradient" vs. EM; this is their EM with an exact M-step).

Each iteration cannot decrease J (EM's monotonicity, with the M-step maximised exactly and
warm-started at the current w). ``log_prob`` is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model

TEMPLATES = ("class_pixel", "pixel", "class", "class_row", "class_col")


@dataclass
class LogLinearEMConfig:
    components: int = 10  # K
    features: tuple[str, ...] = ("class_pixel", "pixel", "class_row", "class_col")
    l2: float = 1e-2  # kappa: the Gaussian prior on w that keeps the M-step bounded
    m_step_tolerance: float = 1e-9  # L-BFGS gradient tolerance of each M-step


@register_model("loglinear_em")
class LogLinearEM(GenerativeModel, ExactLikelihood):
    Config = LogLinearEMConfig
    family = "latent"
    value_types = ("binary",)
    citation = (
        "Berg-Kirkpatrick, Bouchard-Cote, DeNero & Klein (2010), Painless Unsupervised Learning "
        "with Features, NAACL"
    )
    train_defaults = {"batch_size": None, "epochs": 50, "patience": 5}

    def __init__(self, config: LogLinearEMConfig, info):
        super().__init__(config, info)
        unknown = sorted(set(config.features) - set(TEMPLATES))
        if unknown or not config.features:
            raise ValueError(f"features must be a non-empty subset of {', '.join(TEMPLATES)}; got {config.features!r}")
        if config.components < 1 or config.l2 < 0:
            raise ValueError("components must be >= 1 and l2 >= 0")
        k, d = config.components, info.dim
        self.height, self.width = (info.shape[-2], info.shape[-1]) if info.is_image else (1, d)
        shapes = {"class_pixel": (k, d), "pixel": (d,), "class": (k, 1),
                  "class_row": (k, self.height), "class_col": (k, self.width)}
        self.templates = tuple(t for t in TEMPLATES if t in config.features)
        self.shapes = [shapes[t] for t in self.templates]
        generator = torch.Generator().manual_seed(0)
        # float64 throughout: EM's monotonicity is checked to 1e-9. Small random weights
        # break the symmetry between clusters (EM needs it).
        size = sum(math.prod(s) for s in self.shapes)
        self.register_buffer("weights", 0.1 * torch.randn(size, generator=generator, dtype=torch.float64))
        self.register_buffer("log_mix", torch.full((k,), -math.log(k), dtype=torch.float64))

    # --- the log-linear emission ----------------------------------------------
    def logits(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """eta_zd = w . phi_d(z), shape (K, D)."""
        weights = self.weights if weights is None else weights
        k, d = self.config.components, self.info.dim
        eta = weights.new_zeros(k, self.height, self.width)
        for template, part in zip(self.templates, weights.split([math.prod(s) for s in self.shapes])):
            if template == "class_pixel":
                eta = eta + part.view(k, self.height, self.width)
            elif template == "pixel":
                eta = eta + part.view(1, self.height, self.width)
            elif template == "class":
                eta = eta + part.view(k, 1, 1)
            elif template == "class_row":
                eta = eta + part.view(k, self.height, 1)
            else:
                eta = eta + part.view(k, 1, self.width)
        return eta.reshape(k, d)

    def component_log_likelihood(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_n | z), shape (n, K): sum_d x_d eta_zd - softplus(eta_zd)."""
        eta = self.logits(weights).to(x.dtype)
        x = x.flatten(1)
        return x @ eta.T - F.softplus(eta).sum(1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()  # the model is float64 (see __init__)
        return torch.logsumexp(self.component_log_likelihood(x) + self.log_mix, dim=1)

    def objective(self, x: torch.Tensor) -> float:
        """J = sum_n log p(x_n) - (kappa / 2) ||w||^2, the quantity EM never decreases."""
        return self.log_prob(x.double()).sum().item() - 0.5 * self.config.l2 * self.weights.double().pow(2).sum().item()

    # --- EM ---------------------------------------------------------------------
    def m_step_weights(self, soft_counts: torch.Tensor, pixel_counts: torch.Tensor) -> torch.Tensor:
        """argmax_w sum_zd [S_zd eta_zd - N_z softplus(eta_zd)] - kappa/2 |w|^2 by L-BFGS."""
        kappa = self.config.l2

        def negative(w_np: np.ndarray):
            w = torch.from_numpy(w_np).requires_grad_()
            eta = self.logits(w)
            value = -(pixel_counts * eta - soft_counts[:, None] * F.softplus(eta)).sum() + 0.5 * kappa * w.pow(2).sum()
            (grad,) = torch.autograd.grad(value, w)
            return value.item(), grad.numpy()

        start = self.weights.double().cpu().numpy()
        result = scipy.optimize.minimize(negative, start, jac=True, method="L-BFGS-B",
                                         options={"gtol": self.config.m_step_tolerance, "maxiter": 10_000})
        if result.fun > negative(start)[0]:  # never accept a worse point (keeps EM monotone)
            return self.weights
        return torch.from_numpy(result.x).to(self.weights)

    @torch.no_grad()
    def em_step(self, x: torch.Tensor) -> None:
        x = x.flatten(1).double()
        joint = self.component_log_likelihood(x) + self.log_mix.double()
        responsibilities = torch.softmax(joint, dim=1)  # exact E-step, (n, K)
        soft_counts = responsibilities.sum(0)  # N_z
        pixel_counts = responsibilities.T @ x  # S_zd
        self.log_mix.copy_((soft_counts / soft_counts.sum()).clamp(min=1e-300).log())
        with torch.enable_grad():
            self.weights.copy_(self.m_step_weights(soft_counts, pixel_counts))

    def configure_optimizers(self, train):
        return {}

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        self.em_step(x)
        return {"nll": -self.log_prob(x.double()).mean().item()}

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    def num_parameters(self) -> int:
        return self.weights.numel() + self.log_mix.numel() - 1

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        z = torch.multinomial(self.log_mix.exp(), n, replacement=True)
        return torch.bernoulli(torch.sigmoid(self.logits()[z])).float().view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"components": 10, "m_step_tolerance": 1e-6}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15}
