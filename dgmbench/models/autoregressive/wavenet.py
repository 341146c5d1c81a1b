"""WaveNet-style causal dilated convolutions as a density model over sequences (van den Oord,
Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu 2016, "WaveNet:
A Generative Model for Raw Audio", Sec. 2.1-2.4, Fig. 3-4).

Images are flattened into one sequence: pixels in raster order and, within a pixel, the
channels R, G, B, i.e. x.permute(0, 2, 3, 1).flatten(1); vectors are used as they are. Each
element takes one of L levels (binary data: L = 2). Then

    p(x) = prod_t p(x_t | x_1, ..., x_{t-1})                                   (Eq. 1)

computed by a causal convolution over the one-hot inputs shifted right by one (an all-zero
start symbol at t = 0), then ``num_stacks`` stacks of residual layers with dilations
1, 2, ..., 2^(dilation_cycle-1), each a kernel-2 dilated causal convolution with the gated
activation

    z = tanh(W_f * x) . sigma(W_g * x)                                          (Eq. 2)

a 1x1 residual and a 1x1 skip output (Fig. 4); the summed skips go through ReLU -> 1x1 ->
ReLU -> 1x1 to a softmax over the L levels (a Bernoulli logit for binary data).

Fast generation (Paine et al. 2016, "Fast Wavenet Generation Algorithm"): each layer keeps a
queue of its last ``dilation`` inputs, so a step computes one new activation per layer from
the current input and the one ``dilation`` steps back: O(layers) per element instead of a
pass over the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model
from dgmbench.models.autoregressive.layers.pixel_outputs import (
    logits_per_channel,
    pixel_log_prob,
    sample_values,
)


@dataclass
class WaveNetConfig:
    residual_channels: int = 64
    skip_channels: int = 128
    dilation_cycle: int = 10  # dilations 1 .. 2^(cycle-1) per stack, as in the paper
    num_stacks: int = 2
    output_hidden: int = 128


def gate(z: torch.Tensor) -> torch.Tensor:
    filter_, gate_ = z.chunk(2, dim=1)
    return torch.tanh(filter_) * torch.sigmoid(gate_)


class ResidualLayer(nn.Module):
    def __init__(self, residual: int, skip: int, dilation: int, last: bool = False):
        super().__init__()
        self.dilation = dilation
        self.dilated = nn.Conv1d(residual, 2 * residual, 2, dilation=dilation)
        # the last layer only feeds the skip sum: a residual output would be unused
        self.residual = None if last else nn.Conv1d(residual, residual, 1)
        self.skip = nn.Conv1d(residual, skip, 1)

    def forward(self, x: torch.Tensor):
        z = gate(self.dilated(F.pad(x, (self.dilation, 0))))  # left padding: causal
        return (x if self.residual is None else x + self.residual(z)), self.skip(z)

    def step(self, x_now: torch.Tensor, x_before: torch.Tensor):
        """The layer at one time step t: x_now = input at t, x_before = input at t - dilation,
        both (N, R)."""
        w = self.dilated.weight  # (2R, R, 2): tap 0 looks `dilation` steps back
        z = gate(x_before @ w[:, :, 0].T + x_now @ w[:, :, 1].T + self.dilated.bias)
        skip = z @ self.skip.weight[:, :, 0].T + self.skip.bias
        if self.residual is None:
            return x_now, skip
        return x_now + z @ self.residual.weight[:, :, 0].T + self.residual.bias, skip


@register_model("wavenet")
class WaveNet(GenerativeModel, ExactLikelihood):
    Config = WaveNetConfig
    family = "autoregressive"
    value_types = ("binary", "discrete")
    citation = (
        "van den Oord, A., Dieleman, S., Zen, H., Simonyan, K., Vinyals, O., Graves, A., "
        "Kalchbrenner, N., Senior, A. & Kavukcuoglu, K. (2016). WaveNet: A Generative Model for "
        "Raw Audio. arXiv:1609.03499."
    )

    def __init__(self, config: WaveNetConfig, info):
        super().__init__(config, info)
        self.num_levels = info.num_levels
        self.k = logits_per_channel(self.num_levels)
        r, s = config.residual_channels, config.skip_channels
        self.input_conv = nn.Conv1d(self.num_levels, r, 2)  # over the shifted one-hot inputs
        dilations = [2**i for _ in range(config.num_stacks) for i in range(config.dilation_cycle)]
        self.layers = nn.ModuleList(
            ResidualLayer(r, s, d, last=i == len(dilations) - 1) for i, d in enumerate(dilations)
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(s, config.output_hidden, 1),
            nn.ReLU(),
            nn.Conv1d(config.output_hidden, self.k, 1),
        )

    @property
    def receptive_field(self) -> int:
        """How many previous elements p(x_t | x_<t) can see."""
        return 2 + sum(layer.dilation for layer in self.layers)

    # --- images <-> sequences -----------------------------------------------------
    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if self.info.is_image else x.flatten(1)

    def from_sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """(N, T) or (N, K, T) in sequence order -> image layout (N, C, H, W) / (N, C*K, H, W)."""
        if not self.info.is_image:
            return seq.view(seq.shape[0], *self.info.shape) if seq.dim() == 2 else seq
        channels, height, width = self.info.shape
        if seq.dim() == 2:
            return seq.view(-1, height, width, channels).permute(0, 3, 1, 2)
        k = seq.shape[1]
        image = seq.view(-1, k, height, width, channels).permute(0, 4, 1, 2, 3)
        return image.reshape(-1, channels * k, height, width)

    # --- density ------------------------------------------------------------------
    def sequence_logits(self, seq: torch.Tensor) -> torch.Tensor:
        """(N, T) levels -> (N, K, T) parameters of p(x_t | x_<t)."""
        one_hot = F.one_hot(seq.long(), self.num_levels).to(self.input_conv.weight.dtype).transpose(1, 2)
        shifted = F.pad(one_hot, (1, 0))[:, :, :-1]  # position t holds x_{t-1}; zeros = start
        h = self.input_conv(F.pad(shifted, (1, 0)))
        skips = 0
        for layer in self.layers:
            h, skip = layer(h)
            skips = skips + skip
        return self.output(skips)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The same parameters in image layout (N, C*K, H, W), for inspection and tests."""
        return self.from_sequence(self.sequence_logits(self.to_sequence(x)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.to_sequence(x)
        return pixel_log_prob(self.sequence_logits(seq), seq.unsqueeze(1), self.num_levels)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    # --- fast generation ----------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, forced: torch.Tensor | None = None):
        """Sequential generation with per-layer queues. With `forced` (N, T) the given values
        are fed back instead of samples (teacher forcing), which lets tests compare every
        step's logits with ``sequence_logits``. Returns (sequence (N, T), logits (N, K, T))."""
        length = self.info.dim
        dtype, device = self.input_conv.weight.dtype, self.device
        r = self.config.residual_channels
        queues = [torch.zeros(n, r, layer.dilation, device=device, dtype=dtype) for layer in self.layers]
        two_back = torch.zeros(n, self.num_levels, device=device, dtype=dtype)  # one-hot x_{t-2}
        one_back = torch.zeros_like(two_back)  # one-hot x_{t-1}; all zero = start symbol
        w = self.input_conv.weight
        seq = torch.zeros(n, length, device=device, dtype=dtype)
        all_logits = torch.zeros(n, self.k, length, device=device, dtype=dtype)
        for t in range(length):
            h = two_back @ w[:, :, 0].T + one_back @ w[:, :, 1].T + self.input_conv.bias
            skips = 0
            for layer, queue in zip(self.layers, queues):
                slot = t % layer.dilation  # holds this layer's input from step t - dilation
                before = queue[:, :, slot].clone()
                queue[:, :, slot] = h
                h, skip = layer.step(h, before)
                skips = skips + skip
            logits = self.output(skips.unsqueeze(2))[:, :, 0]
            all_logits[:, :, t] = logits
            seq[:, t] = sample_values(logits, self.num_levels) if forced is None else forced[:, t]
            two_back, one_back = one_back, F.one_hot(seq[:, t].long(), self.num_levels).to(dtype)
        return seq, all_logits

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.from_sequence(self.generate(n)[0])

    @classmethod
    def quick_config(cls, info):
        return {
            "residual_channels": 16,
            "skip_channels": 32,
            "dilation_cycle": 6,
            "num_stacks": 1,
            "output_hidden": 32,
        }

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 8, "lr": 3e-3}

    @classmethod
    def quick_variant(cls):
        return "17level"
