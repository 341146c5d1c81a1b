"""MAF: Masked Autoregressive Flow (Papamakarios, Pavlakou & Murray, NeurIPS 2017).

A stack of K MADE-parameterised affine autoregressive layers (paper eq. 2-5), each mapping
data towards noise:

    u_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)),     log|det du/dx| = -sum_i alpha_i,

with the ordering reversed from one layer to the next and, as in the paper (Sec. 3.4 and
Appendix B), batch normalisation as a bijection after every layer (between layers and before
the base N(0, I)). One difference: at evaluation the paper normalises with the mean and
variance of the whole training set, we with running averages collected during training. Masks come from MADE's degree construction
(:func:`dgmbench.models.autoregressive.made.made_degrees` / ``made_masks``).

Cheap direction: every mu_i, alpha_i depends only on the data x, which is known when
evaluating a density, so log p(x) is one masked pass per layer (all D conditionals in
parallel). Sampling must invert each layer: x_i needs x_<i first, so D sequential passes
per layer. (IAF is the mirror image, see iaf.py.)

Data: on dequantised images the paper maps [0,1] to logit space with
lambda = 1e-6 for MNIST (``logit_alpha``; 0.05 for CIFAR-10); the logit's Jacobian is part of log_prob, so
the density is on [0,1]^D and the bits/dim are in pixel space.

Reference configuration (defaults): MAF (5) for MNIST: 5 layers, each MADE with one hidden
layer of 1024 ReLU units; Adam, learning rate 1e-4, minibatches of 100, L2 1e-6, early
stopping after 30 epochs without validation improvement (Sec. 4). The paper reports MNIST
and CIFAR-10 log-likelihoods in logit space (Table 2), without the logit's Jacobian; those
are recorded in baselines/flows.toml as ``nll_logit``, never as bits/dim.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import register_model
from dgmbench.models.flows.flow import FlowModel
from dgmbench.models.flows.transforms import BatchNormBijection, Chain, MaskedAutoregressiveAffine, reversed_ordering


def autoregressive_stack(dim: int, num_layers: int, hidden_sizes, parameterisation: str, batch_norm: bool, mask_seed: int):
    """K layers with alternating natural / reversed orderings (and optional batch norm)."""
    layers = []
    for index in range(num_layers):
        ordering = reversed_ordering(dim) if index % 2 else torch.arange(dim)
        layers.append(MaskedAutoregressiveAffine(dim, tuple(hidden_sizes), ordering, parameterisation, mask_seed + index))
        if batch_norm:  # between layers and between the last layer and the base (MAF Sec. 3.4)
            layers.append(BatchNormBijection(dim))
    return layers


@register_model("maf")
class MAF(FlowModel):
    @dataclass
    class Config:
        num_layers: int = 5
        hidden_sizes: tuple[int, ...] = (1024,)
        batch_norm: bool = True
        logit_alpha: float | None = 1e-6  # lambda of the logit transform on [0,1] data
        mask_seed: int = 0

    citation = (
        "Papamakarios, G., Pavlakou, T. & Murray, I. (2017). Masked Autoregressive Flow for "
        "Density Estimation. NeurIPS."
    )
    train_defaults = {"lr": 1e-4, "batch_size": 100, "weight_decay": 1e-6, "patience": 30}

    def transform(self):
        c = self.config
        if c.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {c.num_layers}")
        return Chain(autoregressive_stack(self.info.dim, c.num_layers, c.hidden_sizes, "maf", c.batch_norm, c.mask_seed))

    @classmethod
    def quick_config(cls, info):
        return {"num_layers": 3, "hidden_sizes": (128,)}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15, "lr": 1e-3}
