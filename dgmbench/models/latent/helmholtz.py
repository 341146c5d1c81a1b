"""Helmholtz machine (Dayan, Hinton, Neal & Zemel 1995): a sigmoid belief network p with a
recognition network q of the same layered shape (see sbn.py), trained by wake-sleep
(Hinton, Dayan, Frey & Neal 1995) or reweighted wake-sleep (Bornschein & Bengio 2015).

Wake-sleep (Hinton et al. 1995):
    wake:  h ~ q(h|x);          theta += grad_theta log p(x, h)
    sleep: (x, h) ~ p(x, h);    phi   += grad_phi   log q(h|x)
The sleep phase minimises KL(p(h|x) || q(h|x)) averaged over the model's own x, not the
data's; neither phase follows the gradient of one objective.

Reweighted wake-sleep (Bornschein & Bengio 2015, Sec. 3), K samples h^k ~ q(h|x) and the
self-normalised importance weights w~_k = w_k / sum_j w_j, w_k = p(x, h^k) / q(h^k|x):
    p-update:       sum_k w~_k grad_theta log p(x, h^k)     ~ grad_theta log p(x)   (their eq. 5)
    q wake-update:  sum_k w~_k grad_phi log q(h^k|x)        ~ -grad_phi KL(p(h|x) || q(h|x))  (eq. 8)
    q sleep-update: as in wake-sleep                                                        (eq. 9)
Both self-normalised estimates are consistent (biased, bias O(1/K)). With K = 1 the p-update
is the wake phase of wake-sleep. ``q_update`` picks wake, sleep or both (the paper's best
results use both).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dgmbench.models.base import register_model
from dgmbench.models.latent.sbn import SigmoidBeliefNetwork

ALGORITHMS = ("rws", "wake_sleep")
Q_UPDATES = ("both", "wake", "sleep")


@dataclass
class HelmholtzConfig:
    hidden: tuple[int, ...] = (200,)  # stochastic layer sizes, bottom (next to x) to top
    algorithm: str = "rws"  # "rws" (reweighted wake-sleep) | "wake_sleep"
    samples: int = 5  # K, importance samples per example (rws); Bornschein & Bengio train with K = 5
    q_update: str = "both"  # rws: which q updates to apply: "wake", "sleep" or "both"
    iwae_chunk: int = 1000  # importance samples evaluated per pass (memory bound)


@register_model("helmholtz")
class HelmholtzMachine(SigmoidBeliefNetwork):
    Config = HelmholtzConfig
    citation = (
        "Dayan, Hinton, Neal & Zemel (1995), The Helmholtz Machine; Hinton, Dayan, Frey & Neal (1995), "
        "The wake-sleep algorithm for unsupervised neural networks; Bornschein & Bengio (2015), "
        "Reweighted Wake-Sleep, ICLR"
    )
    train_defaults = {"lr": 3e-4, "batch_size": 100}

    def __init__(self, config: HelmholtzConfig, info):
        if config.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {config.algorithm!r}")
        if config.q_update not in Q_UPDATES:
            raise ValueError(f"q_update must be one of {', '.join(Q_UPDATES)}, got {config.q_update!r}")
        if config.samples < 1:
            raise ValueError(f"samples must be >= 1, got {config.samples}")
        if config.algorithm == "rws" and config.q_update != "sleep" and config.samples < 2:
            raise ValueError("the rws q wake-update needs samples >= 2 (with K = 1 its expectation is zero)")
        super().__init__(config, info)

    def wake_objectives(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p objective, q wake objective, log-weights): batch means whose gradients are the
        RWS p-update and q wake-update (the wake phase of wake-sleep for k = 1)."""
        hs = self.posterior_sample(x, k)
        log_p = sum(self.generative_log_probs(x, hs))
        log_q = sum(self.inference_log_probs(x, hs))
        log_w = (log_p - log_q).detach()
        weights = torch.softmax(log_w, dim=0)  # self-normalised over the k samples
        return (weights * log_p).sum(0).mean(), (weights * log_q).sum(0).mean(), log_w

    def sleep_objective(self, n: int) -> torch.Tensor:
        """Batch mean of log q(h|x) on n dreams (x, h) ~ p: its gradient is the sleep update."""
        x, hs = self.sample_joint(n)
        return sum(self.inference_log_probs(x, hs)).mean()

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        (opt,) = optimizers.values()
        opt.zero_grad(set_to_none=True)
        rws = self.config.algorithm == "rws"
        k = self.config.samples if rws else 1
        p_objective, q_wake, log_w = self.wake_objectives(x, k)
        objective = p_objective
        if rws and self.config.q_update in ("wake", "both"):
            objective = objective + q_wake
        if not rws or self.config.q_update in ("sleep", "both"):
            objective = objective + self.sleep_objective(len(x))
        (-objective).backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        bound = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(k)))
        return {"loss": -bound.mean().item()}  # -L_k on this batch (the ELBO for k = 1)

    @classmethod
    def quick_config(cls, info):
        return {"hidden": (16,)}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "lr": 3e-3, "batch_size": 50}
