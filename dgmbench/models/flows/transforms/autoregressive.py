"""Masked autoregressive affine transforms on MADE masks: MAF's layer and, inverted, IAF's.

A MADE network (Germain et al. 2015; masks from :mod:`dgmbench.models.autoregressive.made`)
computes, for every dimension i, two numbers that depend only on the inputs before i in an
ordering o. The layer maps its input v to

    "maf" (Papamakarios et al. 2017, eq. 3-5):   y_i = (v_i - mu_i(v_<i)) exp(-alpha_i(v_<i))
                                                 log|det| = -sum_i alpha_i
    "iaf" (Kingma et al. 2016, eq. 14-15):       y_i = sigma_i v_i + (1 - sigma_i) m_i(v_<i),
                                                 sigma_i = sigmoid(s_i(v_<i)),
                                                 log|det| = sum_i log sigma_i

The Jacobian dy/dv is triangular in the ordering o with those diagonals. Because the
parameters depend on the *input* v, the forward map costs one masked pass for all
dimensions, while the inverse must recover v_{o_1}, v_{o_2}, ... one at a time: D passes.

* MAF uses this layer in the normalising direction (data x = v, noise u = y): density
  evaluation is one pass (cheap, parallel) and sampling takes D passes.
* IAF uses ``InverseTransform`` of the layer: the generative direction noise -> data is the
  layer's forward (one pass), so sampling is cheap and evaluating the density of an
  arbitrary x needs the D-pass inverse. As a VAE posterior the noise eps is drawn and
  z = layer(eps) with log q(z) = log q0(eps) - log|det|: one pass, which is why IAF suits
  posteriors and MAF suits density estimation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.autoregressive.made import made_degrees, made_masks
from dgmbench.models.flows.transforms.base import Transform

PARAMETERISATIONS = ("maf", "iaf")


class MaskedAutoregressiveAffine(Transform):
    cheap_direction = "forward"

    def __init__(
        self,
        dim: int,
        hidden_sizes: tuple[int, ...],
        ordering: torch.Tensor | None = None,
        parameterisation: str = "maf",
        mask_seed: int = 0,
    ):
        super().__init__()
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, got {parameterisation!r}")
        if dim < 2:
            raise ValueError("a masked autoregressive transform needs at least 2 dimensions")
        self.dim, self.parameterisation = dim, parameterisation
        ordering = torch.arange(dim) if ordering is None else torch.as_tensor(ordering)
        # Hidden degrees from MADE's construction (they live in degree space, so they serve
        # any ordering); input degrees are the positions of each dimension in `ordering`.
        _, hidden_degrees = made_degrees(dim, tuple(hidden_sizes), False, torch.Generator().manual_seed(mask_seed))
        input_degrees = torch.empty(dim, dtype=torch.long)
        input_degrees[ordering] = torch.arange(dim)
        masks = made_masks(input_degrees, hidden_degrees)
        masks[-1] = masks[-1].repeat(2, 1)  # two parameters per dimension, same connectivity
        self.register_buffer("ordering", ordering.clone())
        sizes = (dim, *hidden_sizes, 2 * dim)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for index, mask in enumerate(masks):
            self.register_buffer(f"mask_{index}", mask)
        # Start at the identity map (MAF) / sigma = sigmoid(s) near 1 (IAF's forget-gate bias).
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)
        if parameterisation == "iaf":
            with torch.no_grad():
                self.layers[-1].bias[dim:] = 2.0

    def params(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two (n, D) parameter vectors: (mu, alpha) for "maf", (m, s) for "iaf"."""
        h = v
        for index, layer in enumerate(self.layers):
            h = F.linear(h, layer.weight * getattr(self, f"mask_{index}"), layer.bias)
            if index < len(self.layers) - 1:
                h = torch.relu(h)
        return h[:, : self.dim], h[:, self.dim :]

    def forward(self, v):
        a, b = self.params(v)
        if self.parameterisation == "maf":
            return (v - a) * torch.exp(-b), -b.sum(1)
        log_sigma = F.logsigmoid(b)
        sigma = log_sigma.exp()
        return sigma * v + (1 - sigma) * a, log_sigma.sum(1)

    def inverse(self, y):
        """D passes: after pass k the first k dimensions of the ordering are exact (each
        depends only on earlier ones), so after D passes all are."""
        v = torch.zeros_like(y)
        for _ in range(self.dim):
            a, b = self.params(v)
            if self.parameterisation == "maf":
                v = y * torch.exp(b) + a
            else:
                sigma = torch.sigmoid(b)
                v = (y - (1 - sigma) * a) / sigma
        a, b = self.params(v)
        log_det = -b.sum(1) if self.parameterisation == "maf" else F.logsigmoid(b).sum(1)
        return v, -log_det


def reversed_ordering(dim: int) -> torch.Tensor:
    return torch.arange(dim - 1, -1, -1)
