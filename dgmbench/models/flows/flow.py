"""A flow = a base distribution + a chain of transforms, and the model class every
registered flow builds on.

    log p(x) = log p_base(f(x)) + log|det df/dx|,      x = f^-1(z), z ~ p_base

(``f`` is the transform's forward direction, data -> noise; see transforms/base.py.)

Density space. ``log_prob`` is always a density of the data exactly as the dataset hands
it to the model, with every change of variables inside the flow's Jacobian. On dequantised
image data, (level + u)/L on [0,1]^D, a flow may first map the data to logit space
(:class:`~dgmbench.models.flows.transforms.Logit`, RealNVP/MAF) or shift it to
[-1/2, 1/2] (Glow); those maps are the first transforms of the chain, so their
log-Jacobians are in log p(x) and the density lives on [0,1]^D (``density_space = "[0,1]"``
in the record). The reported bits/dim add D log L, the change of variables from [0,1] to
pixel space [0, L) (p_pixel(v) = p(v / L) / L^D), which makes them a bound on the discrete
model's bits/dim (Theis et al. 2016) and directly comparable with the literature's
pixel-space numbers (RealNVP and Glow report this quantity). The MAF
paper's log-likelihoods "in logit space" omit the logit Jacobian and are not comparable.
On other continuous data (toy 2-D) no preprocessing is applied: ``density_space = "R^D"``.

Binary data: uniform dequantisation of {0,1} is (x + u)/2, the L = 2 case of
:func:`dgmbench.data.digits.dequantize`; flows take only continuous data, so they train and
evaluate on a dequantised variant of a dataset, never on raw levels.
"""
from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, Invertible
from dgmbench.models.flows.transforms import Chain, FixedAffine, Logit, Transform


class StandardNormal(nn.Module):
    """N(0, I) on R^D."""

    name = "standard normal"

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z**2).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, n: int, device, temperature: float = 1.0, dtype=torch.float32) -> torch.Tensor:
        return temperature * torch.randn(n, self.dim, device=device, dtype=dtype)


class StandardLogistic(nn.Module):
    """Independent standard logistic components, NICE's prior (Dinh et al. 2015, Sec. 3.4):
    log p(z) = -sum_d [softplus(z_d) + softplus(-z_d)]."""

    name = "standard logistic"

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -(nn.functional.softplus(z) + nn.functional.softplus(-z)).sum(1)

    def sample(self, n: int, device, temperature: float = 1.0, dtype=torch.float32) -> torch.Tensor:
        u = torch.rand(n, self.dim, device=device, dtype=dtype).clamp(1e-7, 1 - 1e-7)
        return temperature * (torch.log(u) - torch.log1p(-u))


class Flow(nn.Module):
    """p(x) through ``transform`` (data -> flat base vector of ``base.dim`` entries)."""

    def __init__(self, transform: Transform, base: nn.Module, event_shape: tuple[int, ...]):
        super().__init__()
        self.transform, self.base, self.event_shape = transform, base, tuple(event_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self.transform(x.reshape(len(x), *self.event_shape))
        return self.base.log_prob(z.reshape(len(z), -1)) + log_det

    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        device = next(self.parameters(), torch.empty(0)).device
        dtype = next(self.parameters(), torch.empty(0)).dtype
        z = self.base.sample(n, device, temperature, dtype)
        return self.transform.inverse(z)[0]


class FlowModel(GenerativeModel, ExactLikelihood, Invertible):
    """Base class of the registered flows: subclasses build ``transform()`` (without the
    data preprocessing, which this class prepends) and may choose the base distribution."""

    family = "flow"
    value_types = ("continuous",)
    image_input = False  # True: the transform takes (n, C, H, W); False: (n, D)

    def __init__(self, config, info):
        super().__init__(config, info)
        self.event_shape = tuple(info.shape) if self.image_input else (info.dim,)
        if self.image_input and not info.is_image:
            raise ValueError(f"{type(self).__name__} needs image data (C, H, W); {info.board} has shape {info.shape}")
        self.preprocessing = self.make_preprocessing()
        self.flow = Flow(Chain([*self.preprocessing, self.transform()]), self.base_distribution(), self.event_shape)

    # --- what subclasses provide ---------------------------------------------------
    @abstractmethod
    def transform(self) -> Transform:
        """The flow's transforms after preprocessing, ending in a flat (n, D) output."""

    def base_distribution(self) -> nn.Module:
        return StandardNormal(self.info.dim)

    def data_in_unit_interval(self) -> bool:
        return self.info.dequantization_levels is not None

    def make_preprocessing(self) -> list[Transform]:
        """Logit(alpha) on dequantised [0,1] data when the config has ``logit_alpha``; none
        on other continuous data (it is not known to lie in [0,1])."""
        alpha = getattr(self.config, "logit_alpha", None)
        if alpha is not None and self.data_in_unit_interval():
            return [Logit(alpha)]
        return []

    # --- the model protocol ----------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats of the data as given (see the module docstring)."""
        return self.flow.log_prob(x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """n samples; ``temperature`` T < 1 draws the base noise with standard deviation T
        (Glow Sec. 5.4), which sharpens the samples (T = 1: the model's distribution)."""
        x = self.flow.sample(n, temperature)
        if self.data_in_unit_interval():
            x = x.clamp(0.0, 1.0)
        return x.reshape(n, *self.info.shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow.transform(x.reshape(len(x), *self.event_shape))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow.transform.inverse(z)[0].reshape(len(z), *self.info.shape)

    def likelihood_protocol(self) -> dict:
        """Recorded with the NLL: the space the density lives in and every change of
        variables included in it."""
        changes = [describe(t) for t in self.preprocessing]
        if self.data_in_unit_interval():
            space = "[0,1]"
        else:
            space = "R^D"
        return {
            "density_space": space,
            "preprocessing": changes or ["none"],
            "base_distribution": self.flow.base.name,
            "jacobians_included": True,
        }

    @classmethod
    def quick_variant(cls) -> str:
        return "dequantized"


def describe(transform: Transform) -> str:
    if isinstance(transform, Logit):
        return f"logit(alpha + (1 - 2 alpha) x), alpha = {transform.alpha}"
    if isinstance(transform, FixedAffine):
        return f"x * {transform.scale} + {transform.shift}"
    return type(transform).__name__
