"""MADE: Masked Autoencoder for Distribution Estimation (Germain, Gregor, Murray &
Larochelle, ICML 2015).

An MLP x -> h^1 -> ... -> h^L -> logits whose weight matrices are multiplied by binary
masks, so that output d only sees the inputs that come before d in an ordering o:

    p(x | M) = prod_d p(x_{o_d} | x_{o_<d}),   p(x_d = 1 | x_{o_<d}) = sigmoid(logit_d)

Masks come from *degrees* (paper Sec. 4). Input d has degree m^0(d) = its
position in the ordering (0-based here); hidden unit k of layer l gets a degree
m^l(k) ~ U{min_k' m^{l-1}(k'), ..., D-2}; then

    M^l[k, k'] = 1[m^l(k) >= m^{l-1}(k')]        (hidden layers)
    M^V[d, k]  = 1[m^0(d)  >  m^L(k)]             (output layer)

so output d depends only on inputs of strictly smaller degree, i.e. earlier in o.

Connectivity-agnostic training: a fixed set of ``num_masks`` mask seeds;
each minibatch uses one of them at random. With ``order_agnostic`` each seed also draws
its own random ordering, otherwise every mask uses the natural (raster) ordering.

Test likelihood: with ``num_test_masks = K`` the model's density is the uniform mixture
over the first K masks of the set,

    log p(x) = logsumexp_k log p(x | M_k) - log K,

a normalised distribution (the paper's ensemble over masks). K = 1 is the single-mask
model. ``sample`` draws from exactly this mixture (pick a mask uniformly, then sample it
autoregressively), so samples and ``log_prob`` describe the same distribution.

Storage: only the degrees (orderings and hidden degrees of every mask) are buffers; the
masks are rebuilt from them on the fly, which is cheap next to the matrix products and
keeps checkpoints small even for 32 masks on MNIST.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model


def made_degrees(
    dim: int, hidden_sizes: tuple[int, ...], order_agnostic: bool, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One mask's input degrees (position of each input in its ordering) and hidden degrees."""
    if order_agnostic:
        ordering = torch.randperm(dim, generator=generator)
    else:
        ordering = torch.arange(dim)
    input_degrees = torch.empty(dim, dtype=torch.long)
    input_degrees[ordering] = torch.arange(dim)
    hidden_degrees = []
    previous_min = 0
    for size in hidden_sizes:
        # Units of degree D-1 could feed no output, so degrees stop at D-2 (as in the paper).
        degrees = torch.randint(previous_min, max(dim - 1, previous_min + 1), (size,), generator=generator)
        hidden_degrees.append(degrees)
        previous_min = int(degrees.min())
    return input_degrees, hidden_degrees


def made_masks(input_degrees: torch.Tensor, hidden_degrees: list[torch.Tensor]) -> list[torch.Tensor]:
    """The (out, in) float masks of every layer (hidden: >=, output: strictly >)."""
    masks = []
    previous = input_degrees
    for degrees in hidden_degrees:
        masks.append((degrees[:, None] >= previous[None, :]).float())
        previous = degrees
    masks.append((input_degrees[:, None] > previous[None, :]).float())
    return masks


@register_model("made")
class MADE(GenerativeModel, ExactLikelihood):
    @dataclass
    class Config:
        hidden_sizes: tuple[int, ...] = (500,)
        num_masks: int = 32  # size of the fixed mask set cycled through in training
        num_test_masks: int = 1  # K in log p(x) = logsumexp_k log p(x|M_k) - log K
        order_agnostic: bool = False  # each mask also draws its own random ordering
        mask_seed: int = 0

    family = "autoregressive"
    value_types = ("binary",)
    citation = (
        "Germain, M., Gregor, K., Murray, I. & Larochelle, H. (2015). MADE: Masked "
        "Autoencoder for Distribution Estimation. ICML."
    )

    def __init__(self, config: Config, info):
        super().__init__(config, info)
        config.hidden_sizes = tuple(config.hidden_sizes)
        if not 1 <= config.num_test_masks <= config.num_masks:
            raise ValueError(
                f"num_test_masks must be in 1..num_masks={config.num_masks}, got {config.num_test_masks}"
            )
        dim = info.dim
        if dim < 2:
            raise ValueError("MADE needs at least 2 dimensions")
        self.dim = dim
        sizes = (dim, *config.hidden_sizes, dim)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

        generator = torch.Generator().manual_seed(config.mask_seed)
        all_input, all_hidden = [], [[] for _ in config.hidden_sizes]
        for _ in range(config.num_masks):
            input_degrees, hidden_degrees = made_degrees(
                dim, config.hidden_sizes, config.order_agnostic, generator
            )
            all_input.append(input_degrees)
            for layer, degrees in enumerate(hidden_degrees):
                all_hidden[layer].append(degrees)
        self.register_buffer("input_degrees", torch.stack(all_input))  # (num_masks, D)
        for layer, degrees in enumerate(all_hidden):
            self.register_buffer(f"hidden_degrees_{layer}", torch.stack(degrees))

    # --- masks ---------------------------------------------------------------------
    def masks(self, mask_index: int) -> list[torch.Tensor]:
        hidden = [
            getattr(self, f"hidden_degrees_{layer}")[mask_index]
            for layer in range(len(self.config.hidden_sizes))
        ]
        return made_masks(self.input_degrees[mask_index], hidden)

    def ordering(self, mask_index: int) -> torch.Tensor:
        """o: o[i] is the dimension predicted i-th under mask `mask_index`."""
        return torch.argsort(self.input_degrees[mask_index])

    # --- the network ---------------------------------------------------------------
    def conditional_logits(self, x: torch.Tensor, mask_index: int = 0) -> torch.Tensor:
        """(n, D) logits; entry d parameterises p(x_d = 1 | inputs before d in the ordering)."""
        h = x.reshape(len(x), self.dim)
        masks = self.masks(mask_index)
        for i, (layer, mask) in enumerate(zip(self.layers, masks)):
            h = F.linear(h, layer.weight * mask, layer.bias)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def log_prob_given_mask(self, x: torch.Tensor, mask_index: int = 0) -> torch.Tensor:
        x = x.reshape(len(x), self.dim)
        logits = self.conditional_logits(x, mask_index)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density of the uniform mixture over the first num_test_masks masks."""
        k = self.config.num_test_masks
        per_mask = torch.stack([self.log_prob_given_mask(x, m) for m in range(k)])
        return torch.logsumexp(per_mask, dim=0) - math.log(k)

    def likelihood_protocol(self) -> dict:
        """Recorded with the NLL: which density log_prob is exact for."""
        return {
            "density": "uniform mixture over masks" if self.config.num_test_masks > 1 else "single mask",
            "num_test_masks": self.config.num_test_masks,
            "num_masks": self.config.num_masks,
            "order_agnostic": self.config.order_agnostic,
        }

    # --- training ------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | M) for one mask drawn uniformly from the fixed set (one per minibatch)."""
        mask_index = int(torch.randint(self.config.num_masks, ()))
        return -self.log_prob_given_mask(x, mask_index).mean()

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float:
        return -self.log_prob(x).mean().item()

    # --- sampling ------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling from the mixture: a uniform mask per sample, then D steps over
        all samples of that mask, each fixing the next dimension in its ordering.

        Fixing x_d only adds column d of the masked first layer to its pre-activation, so
        that layer is updated in O(H) per step, and only output unit d is computed; the
        hidden-to-hidden layers (if any) are evaluated in full at every step."""
        k = self.config.num_test_masks
        mask_of_sample = torch.randint(k, (n,), device=self.device)
        x = torch.zeros(n, self.dim, device=self.device)
        for mask_index in range(k):
            rows = (mask_of_sample == mask_index).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            weights = [layer.weight * mask for layer, mask in zip(self.layers, self.masks(mask_index))]
            biases = [layer.bias for layer in self.layers]
            x_rows = torch.zeros(len(rows), self.dim, device=self.device)
            first_preactivation = biases[0].expand(len(rows), -1)
            for d in self.ordering(mask_index).tolist():
                h = torch.relu(first_preactivation)
                for weight, bias in zip(weights[1:-1], biases[1:-1]):
                    h = torch.relu(F.linear(h, weight, bias))
                logit = h @ weights[-1][d] + biases[-1][d]
                x_rows[:, d] = torch.bernoulli(torch.sigmoid(logit))
                first_preactivation = first_preactivation + x_rows[:, d : d + 1] * weights[0][:, d]
            x[rows] = x_rows
        return x.reshape(n, *self.info.shape)

    # --- quick suite ---------------------------------------------------------------
    @classmethod
    def quick_config(cls, info):
        return {"hidden_sizes": (128,), "num_masks": 4, "num_test_masks": 4}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 40}
