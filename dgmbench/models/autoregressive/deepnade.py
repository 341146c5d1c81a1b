"""Order-agnostic DeepNADE (Uria, Côté, Gregor, Murray & Larochelle, "Neural
Autoregressive Distribution Estimation", JMLR 2016, section "Orderless and deep NADE";
first in Uria, Murray & Larochelle, "A Deep and Tractable Density Estimator", ICML 2014).

One deep network predicts, for any subset of observed dimensions, every unobserved one.
Its input is the masked data concatenated with the mask (which tells a 0 pixel from a
missing one):

    h^1 = relu(W^1 [x * m ; m] + b^1),  h^l = relu(W^l h^{l-1} + b^l),
    p(x_j = 1 | x_{m}) = sigmoid(V h^L + c)_j            for every j with m_j = 0.

For an ordering o, the conditional of the d-th dimension uses the mask m = 1[o_<d], and
log p(x | o) = sum_d log p(x_{o_d} | x_{o_<d}).

Training: the order-agnostic loss E_o[-log p(x | o)] has the unbiased
estimator: draw an ordering o and a position d ~ U{1..D} per example and score every
dimension not yet observed,

    L(x) = D / (D - d + 1) * sum_{j not in o_<d} -log p(x_j | x_{o_<d}),

since o_d is uniform over the D - d + 1 remaining dimensions. Only the set o_<d matters,
so we draw it as a uniformly random subset of size d - 1.

Test likelihood: ``log_prob`` is exact for the uniform mixture over ``num_test_orderings``
= K orderings (ordering 0 is the natural raster order, the others are random permutations
drawn from ``ordering_seed``):

    log p(x) = logsumexp_k log p(x | o_k) - log K,

a valid density, unlike an average of per-pixel probabilities. K = 1 is the single fixed
ordering. ``sample`` draws from that same mixture.

Cost: log p(x | o) needs D network evaluations. Going from mask o_<d to o_<d+1 adds one
input pair (x_{o_d}, 1), so the first layer's pre-activation is updated NADE-style,
a += W^1[:, o_d] x_{o_d} + W^1[:, D + o_d], and only the output unit o_d is computed:
per step O(H) for the first layer plus the deeper layers, never the whole D x H product.
Each step runs on the whole batch at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model


@register_model("deepnade")
class DeepNADE(GenerativeModel, ExactLikelihood):
    @dataclass
    class Config:
        hidden_sizes: tuple[int, ...] = (500, 500)
        num_test_orderings: int = 1  # K in log p(x) = logsumexp_k log p(x|o_k) - log K
        ordering_seed: int = 0

    family = "autoregressive"
    value_types = ("binary",)
    citation = (
        "Uria, B., Côté, M.-A., Gregor, K., Murray, I. & Larochelle, H. (2016). Neural "
        "Autoregressive Distribution Estimation. JMLR 17(205):1-37."
    )

    def __init__(self, config: Config, info):
        super().__init__(config, info)
        config.hidden_sizes = tuple(config.hidden_sizes)
        if not config.hidden_sizes:
            raise ValueError("DeepNADE needs at least one hidden layer")
        if config.num_test_orderings < 1:
            raise ValueError(f"num_test_orderings must be >= 1, got {config.num_test_orderings}")
        dim = info.dim
        self.dim = dim
        sizes = (2 * dim, *config.hidden_sizes)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = nn.Linear(config.hidden_sizes[-1], dim)

        generator = torch.Generator().manual_seed(config.ordering_seed)
        orderings = [torch.arange(dim)] + [
            torch.randperm(dim, generator=generator) for _ in range(config.num_test_orderings - 1)
        ]
        self.register_buffer("test_orderings", torch.stack(orderings))  # (K, D)

    # --- the network ---------------------------------------------------------------
    def _deep_layers(self, first_preactivation: torch.Tensor) -> torch.Tensor:
        h = torch.relu(first_preactivation)
        for layer in self.hidden[1:]:
            h = torch.relu(layer(h))
        return h

    def masked_logits(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """(n, D) logits of p(x_j = 1 | x_observed) for every j, given a 0/1 mask (n, D)."""
        h = self.hidden[0](torch.cat([x * observed, observed], dim=1))
        return self.output(self._deep_layers(h))

    def conditional_logits(self, x: torch.Tensor, ordering: torch.Tensor) -> torch.Tensor:
        """(n, D) logits; entry o_d parameterises p(x_{o_d} = 1 | x_{o_<d}).

        D steps, each O(H) in the first layer thanks to the incremental pre-activation."""
        x = x.reshape(len(x), self.dim)
        first = self.hidden[0]
        weight_x, weight_m = first.weight[:, : self.dim], first.weight[:, self.dim :]
        preactivation = first.bias.expand(len(x), -1)
        logits = []
        for d in ordering.tolist():
            h = self._deep_layers(preactivation)
            logits.append(h @ self.output.weight[d] + self.output.bias[d])
            preactivation = preactivation + x[:, d : d + 1] * weight_x[:, d] + weight_m[:, d]
        by_position = torch.stack(logits, dim=1)
        # Undo the ordering so that column j belongs to dimension j.
        return by_position[:, torch.argsort(ordering)]

    def log_prob_given_ordering(self, x: torch.Tensor, ordering: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), self.dim)
        logits = self.conditional_logits(x, ordering)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-probability under the mixture over the num_test_orderings orderings."""
        per_ordering = torch.stack([self.log_prob_given_ordering(x, o) for o in self.test_orderings])
        return torch.logsumexp(per_ordering, dim=0) - math.log(len(self.test_orderings))

    def likelihood_protocol(self) -> dict:
        """Recorded with the NLL: which density log_prob is exact for."""
        k = self.config.num_test_orderings
        return {
            "density": "uniform mixture over orderings" if k > 1 else "single (raster) ordering",
            "num_test_orderings": k,
            "ordering_seed": self.config.ordering_seed,
        }

    # --- training ------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the unbiased order-agnostic estimator above."""
        x = x.reshape(len(x), self.dim)
        n, dim = x.shape
        num_observed = torch.randint(dim, (n, 1), device=x.device)  # d - 1 in 0..D-1
        # A uniformly random subset of size d - 1: the d - 1 smallest of D uniform scores.
        rank = torch.rand(n, dim, device=x.device).argsort(dim=1).argsort(dim=1)
        observed = (rank < num_observed).to(x.dtype)
        return self.order_agnostic_loss(x, observed).mean()

    def order_agnostic_loss(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Per example D / (D - |S|) * sum_{j not in S} -log p(x_j | x_S), S = observed set."""
        x = x.reshape(len(x), self.dim)
        logits = self.masked_logits(x, observed)
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        scale = self.dim / (self.dim - observed.sum(1))
        return scale * (nll * (1 - observed)).sum(1)

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float:
        return -self.log_prob(x).mean().item()

    # --- sampling ------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling from the mixture: a uniform ordering per sample, then D
        cheap incremental steps over all samples sharing that ordering."""
        k = len(self.test_orderings)
        ordering_of_sample = torch.randint(k, (n,), device=self.device)
        x = torch.zeros(n, self.dim, device=self.device)
        first = self.hidden[0]
        weight_x, weight_m = first.weight[:, : self.dim], first.weight[:, self.dim :]
        for index in range(k):
            rows = (ordering_of_sample == index).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            x_rows = torch.zeros(len(rows), self.dim, device=self.device)
            preactivation = first.bias.expand(len(rows), -1)
            for d in self.test_orderings[index].tolist():
                h = self._deep_layers(preactivation)
                logit = h @ self.output.weight[d] + self.output.bias[d]
                x_rows[:, d] = torch.bernoulli(torch.sigmoid(logit))
                preactivation = preactivation + x_rows[:, d : d + 1] * weight_x[:, d] + weight_m[:, d]
            x[rows] = x_rows
        return x.reshape(n, *self.info.shape)

    # --- quick suite ---------------------------------------------------------------
    @classmethod
    def quick_config(cls, info):
        return {"hidden_sizes": (128, 128), "num_test_orderings": 2}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30}
