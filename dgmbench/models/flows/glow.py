"""Glow: generative flow with invertible 1x1 convolutions (Kingma & Dhariwal, NeurIPS 2018).

Multi-scale architecture (Fig. 2b) data -> noise: L levels, each a squeeze, K steps of flow
and (except the last) a split; every step of flow (Fig. 2a, Table 1) is

    actnorm      y = (x + b) * exp(s) per channel, data-dependent initialisation (Sec. 3.1)
    1x1 conv     y = W x per pixel, log|det| = H W log|det W|; LU-decomposed W (Sec. 3.2)
    coupling     affine: the first half of the channels x_a conditions the second half,
                 y_b = (x_b + t(x_a)) * sigmoid(r(x_a) + 2)   (Sec. 3.3; or additive)

The split factors out half the channels h2 under a learned prior N(mu(h1), sigma(h1)^2),
with mu, log sigma from a zero-initialised 3x3 convolution of the kept half h1; it is
implemented as a channel coupling (h2 - mu) / sigma followed by N(0, I), which is the same
density. Couplings split the channels (the network sees only the conditioning half and
outputs parameters only for the other half), as in the authors' code; 44.2M parameters at
the CIFAR-10 size. The top of the last level has a learned per-channel Gaussian prior ("learn_top").
Data on [0,1] are shifted to [-1/2, 1/2] (Jacobian 1), so the density is on [0,1]^D and
the bits/dim are in pixel space as in the paper (Table 2, 3.35 on CIFAR-10).

Temperature sampling (Sec. 5.4): ``sample(n, temperature=T)`` draws all base noise with
standard deviation T, i.e. every prior (split priors and top) at T times its scale.

Reference configuration (defaults): CIFAR-10, Sec. 5: L = 3 levels, K = 32 steps per level,
512 channels in the coupling networks, affine coupling, LU 1x1 convolutions; Adam with
learning rate 1e-3 (Appendix: batch size 64 per GPU x 8 GPUs; we default to 64).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.models.base import register_model
from dgmbench.models.flows import nets
from dgmbench.models.flows.flow import FlowModel
from dgmbench.models.flows.transforms import (
    ActNorm,
    Chain,
    ChannelCoupling,
    ElementwiseAffine,
    FixedAffine,
    InvertibleConv1x1,
    MultiScale,
    Squeeze,
)

COUPLINGS = ("affine", "additive")


@register_model("glow")
class Glow(FlowModel):
    @dataclass
    class Config:
        num_levels: int = 3  # L
        steps_per_level: int = 32  # K
        hidden_channels: int = 512
        coupling: str = "affine"  # or "additive"
        lu_decomposed: bool = True
        learn_top: bool = True
        init_seed: int = 0  # the random rotations the 1x1 convolutions start from

    citation = (
        "Kingma, D. P. & Dhariwal, P. (2018). Glow: Generative Flow with Invertible 1x1 "
        "Convolutions. NeurIPS."
    )
    train_defaults = {"lr": 1e-3, "batch_size": 64}
    image_input = True

    def make_preprocessing(self):
        return [FixedAffine(1.0, -0.5)] if self.data_in_unit_interval() else []

    def _step(self, channels, generator):
        c = self.config
        affine = c.coupling == "affine"
        half = channels // 2
        net = nets.GlowNet(half, c.hidden_channels, channels if affine else half)
        return [
            ActNorm(channels),
            InvertibleConv1x1(channels, lu=c.lu_decomposed, generator=generator),
            ChannelCoupling(channels, net, affine=affine, scale="sigmoid"),
        ]

    def transform(self):
        c = self.config
        if c.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {c.coupling!r}")
        if c.num_levels < 1 or c.steps_per_level < 1:
            raise ValueError("num_levels and steps_per_level must be >= 1")
        channels, height, width = self.info.shape
        if height % 2**c.num_levels or width % 2**c.num_levels:
            raise ValueError(f"{c.num_levels} levels need height and width divisible by {2**c.num_levels}; got {height}x{width}")
        return self._level(channels, height, width, c.num_levels, torch.Generator().manual_seed(c.init_seed))

    def _level(self, channels, height, width, levels_left, generator):
        channels, height, width = 4 * channels, height // 2, width // 2
        layers = [Squeeze()]
        for _ in range(self.config.steps_per_level):
            layers += self._step(channels, generator)
        shape = (channels, height, width)
        if levels_left == 1:
            if self.config.learn_top:
                layers.append(ElementwiseAffine(channels))
            return MultiScale(Chain(layers), shape)
        # learned split prior on the second half given the first: (h2 - mu(h1)) / sigma(h1)
        layers.append(ChannelCoupling(channels, nets.zero_conv(channels // 2, channels), scale="exp"))
        inner = self._level(channels // 2, height, width, levels_left - 1, generator)
        return MultiScale(Chain(layers), shape, inner)

    @classmethod
    def quick_config(cls, info):
        return {"num_levels": 2, "steps_per_level": 2, "hidden_channels": 16}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 3}
