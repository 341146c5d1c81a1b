"""Deep belief network (Hinton, Osindero & Teh 2006): a stack of binary RBMs trained greedily,
layer by layer, each on samples of the previous layer's posterior q(h_l | h_{l-1}).

The generative model (layers h_0 = v, h_1, ..., h_L) is a directed sigmoid belief net on
top of an undirected top-level RBM over (h_{L-1}, h_L):

    p(v, h_1, ..., h_{L-1}) = p(v | h_1) ... p(h_{L-2} | h_{L-1}) p~(h_{L-1}) / Z_top,
    p(h_{l-1} | h_l) = prod_i sigmoid(b_l + W_l h_l)_i   (layer l's RBM visible conditional),
    p~(h_{L-1}) = exp(-F_top(h_{L-1}))                     (top RBM with h_L summed out).

log p(v) is intractable; with the recognition model q(h_1..h_{L-1} | v) = prod_l q(h_l | h_{l-1})
(the RBMs' hidden conditionals), Salakhutdinov & Murray (2008) bound it by

    log p(v) >= E_q[ log p(v | h_1) + sum_l log p(h_l | h_{l+1}) + log p~(h_{L-1}) ]
                + H(q) - log Z_top,

estimated with samples from q (each factor's entropy is added analytically given its
sampled parent) and log Z_top from AIS on the top RBM (dgmbench.metrics.ais, metric
``vlb_nll``), or exactly when the top RBM is small. For tiny networks ``exact_log_prob``
enumerates every hidden layer below the top (tests compare the bound against it).

Training inside the one trainer: an update counter (a buffer, so resume works) says which
layer is learning: layer l < L-1 takes ``updates_per_layer`` CD/PCD updates, then the next
starts; the top RBM takes all remaining updates. No early stopping (validation_score is
None): the stack changes meaning whenever a new layer starts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.enumeration import logsumexp_over_binary_states
from dgmbench.models.base import GenerativeModel, TrainConfig, register_model
from dgmbench.models.energy.rbm import BernoulliRBMLayer, RBMAnnealingPath, _bernoulli

EXACT_MAX_BITS = 22  # exact_log_prob enumerates all hidden layers below the top jointly


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum_i log Bernoulli(x_i; sigmoid(logits_i)), shape (n,)."""
    return (x * logits - F.softplus(logits)).sum(-1)


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    probs = torch.sigmoid(logits)
    return (F.softplus(logits) - probs * logits).sum(-1)


@dataclass
class DBNConfig:
    """lr and weight_decay (W only) come from TrainConfig; every layer uses the same settings."""

    hidden: tuple = (500, 2000)  # h_1 ... h_L sizes (S&M 2008's 784-500-2000 DBN)
    updates_per_layer: int = 60_000  # CD/PCD updates for each layer below the top
    k: int = 1
    persistent: bool = False
    pcd_chains: int = 100
    momentum: float = 0.5  # see RBMConfig.momentum
    init_std: float = 0.01
    sample_steps: int = 1000  # Gibbs steps in the top RBM before the downward pass


@register_model("dbn")
class DBN(GenerativeModel):
    Config = DBNConfig
    family = "energy"
    value_types = ("binary",)
    citation = (
        "Hinton, Osindero & Teh (2006), A fast learning algorithm for deep belief nets, Neural "
        "Computation; Salakhutdinov & Murray (2008), On the quantitative analysis of DBNs, ICML"
    )
    train_defaults = {"lr": 0.05, "batch_size": 100, "patience": None}

    def __init__(self, config: DBNConfig, info):
        super().__init__(config, info)
        sizes = (info.dim, *tuple(int(h) for h in config.hidden))
        if len(sizes) < 3:
            raise ValueError("a DBN needs at least two hidden layers; use 'rbm' for one")
        self.sizes = sizes
        self.layers = nn.ModuleList(
            BernoulliRBMLayer(sizes[i], sizes[i + 1], config.init_std) for i in range(len(sizes) - 1)
        )
        chains = config.pcd_chains if config.persistent else 0
        for i, size in enumerate(sizes[:-1]):
            self.register_buffer(f"persistent_chains_{i}", torch.bernoulli(torch.full((chains, size), 0.5)))
        self.register_buffer("updates_done", torch.zeros((), dtype=torch.int64))
        self.register_buffer("layer_started", torch.zeros(len(self.layers), dtype=torch.bool))

    @property
    def top(self) -> BernoulliRBMLayer:
        return self.layers[-1]

    # --- recognition (upward) and generation (downward) ------------------------------
    @torch.no_grad()
    def up(self, v: torch.Tensor, depth: int) -> torch.Tensor:
        """A sample of h_depth from q(h_1 | v) ... q(h_depth | h_{depth-1})."""
        h = v
        for layer in self.layers[:depth]:
            h = _bernoulli(layer.hidden_probs(h))
        return h

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        h = torch.bernoulli(torch.full((n, self.top.visible), 0.5, device=self.device))
        for _ in range(self.config.sample_steps):
            h = self.top.gibbs_step(h)
        for layer in reversed(self.layers[:-1]):
            h = _bernoulli(layer.visible_probs(h))
        return h.view(n, *self.info.shape)

    # --- greedy training ------------------------------------------------------------
    @property
    def current_layer(self) -> int:
        return min(int(self.updates_done) // self.config.updates_per_layer, len(self.layers) - 1)

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {
            f"layer{i}": torch.optim.SGD(
                [
                    {"params": [layer.weight], "weight_decay": train.weight_decay},
                    {"params": [layer.visible_bias, layer.hidden_bias], "weight_decay": 0.0},
                ],
                lr=train.lr,
                momentum=self.config.momentum,
            )
            for i, layer in enumerate(self.layers)
        }

    @torch.no_grad()
    def negative_phase(self, index: int, v_data: torch.Tensor) -> torch.Tensor:
        chains = getattr(self, f"persistent_chains_{index}")
        v = chains if self.config.persistent else v_data
        for _ in range(self.config.k):
            v = self.layers[index].gibbs_step(v)
        if self.config.persistent:
            chains.copy_(v)
        return v

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The current layer's CD surrogate (a free-energy difference, not a likelihood)."""
        index = self.current_layer
        data = self.up(x.flatten(1), index)
        return self.layers[index].contrastive_divergence_loss(data, self.negative_phase(index, data))

    def training_step(self, x, optimizers, train: TrainConfig) -> dict[str, float]:
        index = self.current_layer
        layer = self.layers[index]
        data = self.up(x.flatten(1), index)
        if not bool(self.layer_started[index]):
            with torch.no_grad():  # visible biases from the layer's input (Hinton 2010, sec. 8)
                p = data.mean(0).clamp(0.01, 0.99)
                layer.visible_bias.copy_(torch.log(p) - torch.log1p(-p))
            self.layer_started[index] = True
        optimizer = optimizers[f"layer{index}"]
        # The layer's CD/PCD gradient from its statistics (dgmbench.models.energy.rbm), no autograd.
        chains = getattr(self, f"persistent_chains_{index}")
        negative, gap = layer.contrastive_divergence_gradients(
            data, chains if self.config.persistent else None, self.config.k
        )
        if self.config.persistent:
            chains.copy_(negative)
        optimizer.step()
        self.updates_done += 1
        return {"free_energy_gap": gap, "layer": float(index)}

    def validation_score(self, x: torch.Tensor) -> float | None:
        return None

    # --- the variational bound (metric vlb_nll) --------------------------------------
    def bound_annealing_path(self, base: torch.Tensor) -> RBMAnnealingPath:
        return self.top.annealing_path(base)

    def bound_base_data(self, train: torch.Tensor) -> torch.Tensor:
        return self.up(train.flatten(1), len(self.layers) - 1)

    def exact_bound_log_partition(self) -> float | None:
        return self.top.exact_log_partition() if self.top.exact_log_partition_feasible() else None

    def _down_logits(self, index: int, upper: torch.Tensor) -> torch.Tensor:
        """Logits of p(h_index | h_{index+1}) (h_0 = v), float64."""
        layer = self.layers[index]
        return upper.double() @ layer.weight.double().T + layer.visible_bias.double()

    def _log_prior_of_hidden(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        """log p(h_1 | h_2) + ... + log p(h_{L-2} | h_{L-1}) - F_top(h_{L-1}) for states
        h_1 .. h_{L-1} given as rows, float64, shape (rows,)."""
        total = -self.top.free_energy_float64(hidden[-1])
        for index in range(1, len(hidden)):
            total = total + bernoulli_log_prob(hidden[index - 1].double(), self._down_logits(index, hidden[index]))
        return total

    @torch.no_grad()
    def unnormalized_bound(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """Monte Carlo estimate of the bound plus log Z_top, per example (float64)."""
        v = x.flatten(1).double()
        total = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
        for _ in range(samples):
            states, entropy = [v], torch.zeros_like(total)
            for layer in self.layers[:-1]:
                logits = states[-1] @ layer.weight.double() + layer.hidden_bias.double()
                entropy += bernoulli_entropy(logits)
                states.append(_bernoulli(torch.sigmoid(logits)))
            log_likelihood = bernoulli_log_prob(v, self._down_logits(0, states[1]))
            total += log_likelihood + self._log_prior_of_hidden(states[1:]) + entropy
        return total / samples

    def exact_log_prob_feasible(self) -> bool:
        return sum(self.sizes[1:-1]) <= EXACT_MAX_BITS and self.top.exact_log_partition_feasible()

    @torch.no_grad()
    def exact_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(v) by enumerating all joint states of h_1 .. h_{L-1} (tiny networks only)."""
        if not self.exact_log_prob_feasible():
            raise ValueError(f"a DBN with layers {self.sizes} is too large to enumerate")
        v = x.flatten(1).double()
        cuts = torch.tensor(self.sizes[1:-1]).cumsum(0).tolist()

        def log_joint(hidden_states):  # (m, bits) -> (m, n): log p~(v, h_1 .. h_{L-1})
            hidden = list(hidden_states.tensor_split(cuts[:-1], dim=1))
            logits = self._down_logits(0, hidden[0])  # (m, D)
            log_likelihood = logits @ v.T - F.softplus(logits).sum(1, keepdim=True)
            return log_likelihood + self._log_prior_of_hidden(hidden).unsqueeze(1)

        return logsumexp_over_binary_states(log_joint, cuts[-1], v.device, 1 << 12) - self.top.exact_log_partition()

    # --- quick suite ----------------------------------------------------------------
    @classmethod
    def quick_config(cls, info):
        return {"hidden": (16, 16), "updates_per_layer": 250, "persistent": True, "sample_steps": 300}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "lr": 0.05, "batch_size": 50}
