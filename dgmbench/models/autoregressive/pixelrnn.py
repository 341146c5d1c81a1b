"""PixelRNN: Row LSTM and Diagonal BiLSTM (van den Oord, Kalchbrenner & Kavukcuoglu 2016,
"Pixel Recurrent Neural Networks", Sec. 3.1-3.4 and Table 2).

    p(x) = prod_i p(x_i | x_<i), raster order, R -> G -> B inside a pixel (Eq. 1-2).

Both models: a 7x7 mask-A convolution, LSTM layers with residual connections (h -> 1x1
mask-B convolution -> added to the 2h-channel stream, Fig. 5), two 1x1 mask-B layers with
ReLU, and a Bernoulli / L-way softmax per channel. Channel groups (``layers.masked_conv``)
keep R -> G -> B inside every masked input-to-state convolution, and each of the four gate
blocks carries the state's channel groups, since gates combine with the state channel by
channel. Both layers compute (Eq. 3)

    [o, f, i, g] = [sigma, sigma, sigma, tanh](K_ss (*) h_prev + K_is (*) x)
    c = f . c_prev + i . g,      h = o . tanh(c)

* Row LSTM (Sec. 3.1): row by row; K_is is a 1 x k convolution along the row masked to the
  pixels on the left (mask B), K_ss a 1 x k convolution over the previous row's state. Its
  receptive field is a triangle above the pixel.
  Sampling keeps every layer's (h, c) of the previous row, so a step recomputes only the
  current row (one LSTM row step per layer) instead of the whole image.

* Diagonal BiLSTM (Sec. 3.2): the input map is skewed (row i shifted right by i) so that
  the diagonals become columns; one column step has K_is a 1x1 mask-B convolution and K_ss
  a 2x1 convolution over the previous column, so the state at (i, c) sees its left and upper
  neighbours: the whole quadrant above-left. A second direction runs on the mirrored image;
  its output map is shifted down by one row (it would otherwise see the pixels to the right
  in the current row) and added. Together they see the whole past but one pixel: the last
  pixel of the row above, (r-1, W-1), reaches (r, c) only through the first layer's kernel
  (c >= W-1-first_kernel//2), since the shifted pass carries row r-1 only through features
  of row r-1, which never see that pixel (tests/models/autoregressive/test_pixelrnn.py shows this with autograd).
  Sampling runs the network on rows 0..r only (every layer is causal in rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import GenerativeModel, register_model
from dgmbench.models.autoregressive.layers.masked_conv import MaskedConv2d, channel_groups
from dgmbench.models.autoregressive.layers.pixel_outputs import (
    PixelLikelihood,
    logits_per_channel,
    output_head,
    sample_raster,
    sample_values,
    scale_levels,
)


@dataclass
class RowLSTMConfig:
    hidden: int = 128  # h: LSTM state channels; the residual stream has 2h
    num_layers: int = 12  # Row LSTM layers (12 for CIFAR-10 in Sec. 5)
    first_kernel: int = 7  # the mask-A convolution
    kernel: int = 3  # width k of the input-to-state and state-to-state convolutions
    output_hidden: int = 1024  # the two 1x1 output layers


def lstm_update(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    o, f, i, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class RowLSTMLayer(nn.Module):
    def __init__(self, features: int, hidden: int, kernel: int, image_channels: int):
        super().__init__()
        # Gates combine channel by channel with the state, so each of the four gate blocks
        # carries the state's channel groups.
        gate_groups = torch.cat([channel_groups(hidden, image_channels)] * 4)
        self.input_to_state = MaskedConv2d(
            features, 4 * hidden, (1, kernel), "B", image_channels, "horizontal", out_groups=gate_groups
        )
        # The previous row is entirely in the past: no mask.
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2)
        self.to_residual = MaskedConv2d(hidden, features, 1, "B", image_channels)
        self.hidden = hidden

    def initial_state(self, x_row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = x_row.new_zeros(x_row.shape[0], self.hidden, x_row.shape[-1])
        return zeros, zeros

    def step(self, input_gates, state):
        """One row: input_gates (N, 4h, W) from K_is, state (h, c) of the row above."""
        h, c = state
        return lstm_update(input_gates + self.state_to_state(h), c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_gates = self.input_to_state(x)  # every row at once
        state = self.initial_state(x[:, 0, :1])
        rows = []
        for row in range(x.shape[2]):
            state = self.step(input_gates[:, :, row], state)
            rows.append(state[0])
        return x + self.to_residual(torch.stack(rows, dim=2))

    def forward_row(self, x_row: torch.Tensor, state):
        """The same layer on one row x_row (N, F, 1, W) given the state of the row above."""
        h, c = self.step(self.input_to_state(x_row)[:, :, 0], state)
        return x_row + self.to_residual(h.unsqueeze(2)), (h, c)


@register_model("row_lstm")
class RowLSTM(PixelLikelihood, GenerativeModel):
    Config = RowLSTMConfig
    family = "autoregressive"
    value_types = ("binary", "discrete")
    citation = (
        "van den Oord, A., Kalchbrenner, N. & Kavukcuoglu, K. (2016). Pixel Recurrent Neural Networks. ICML."
    )

    def __init__(self, config: RowLSTMConfig, info):
        super().__init__(config, info)
        if not info.is_image:
            raise ValueError(f"Row LSTM needs (C, H, W) images; {info.board} has shape {info.shape}")
        channels = info.shape[0]
        features = 2 * config.hidden
        self.num_levels = info.num_levels
        self.input_conv = MaskedConv2d(channels, features, config.first_kernel, "A", channels)
        self.layers = nn.ModuleList(
            RowLSTMLayer(features, config.hidden, config.kernel, channels) for _ in range(config.num_layers)
        )
        self.output = output_head(features, config.output_hidden, channels, self.num_levels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C*K, H, W): the parameters of p(x_i,c | x_<i, x_i,<c) for every pixel and channel."""
        h = self.input_conv(scale_levels(x, self.num_levels))
        for layer in self.layers:
            h = layer(h)
        return self.output(h)

    def row_logits(self, x: torch.Tensor, row: int, states):
        """Logits of row `row` (N, C*K, W) from the image (rows > row are ignored) and every
        layer's state after row-1; returns them with the states after `row`."""
        above = self.config.first_kernel // 2
        crop = x[:, :, max(0, row - above) : row + 1]
        h = self.input_conv(scale_levels(crop, self.num_levels))[:, :, -1:]
        new_states = []
        for layer, state in zip(self.layers, states):
            h, state = layer.forward_row(h, state)
            new_states.append(state)
        return self.output(h)[:, :, 0], new_states

    def initial_states(self, n: int):
        x_row = torch.zeros(n, 1, self.info.shape[2], device=self.device, dtype=self.output[-1].weight.dtype)
        return [layer.initial_state(x_row) for layer in self.layers]

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        channels, height, width = self.info.shape
        states = self.initial_states(n)
        k = logits_per_channel(self.num_levels)
        x = torch.zeros(n, channels, height, width, device=self.device, dtype=self.output[-1].weight.dtype)
        for row in range(height):
            for col in range(width):
                for channel in range(channels):
                    logits, _ = self.row_logits(x, row, states)
                    x[:, channel, row, col] = sample_values(
                        logits[:, channel * k : (channel + 1) * k, col], self.num_levels
                    )
            _, states = self.row_logits(x, row, states)  # commit the finished row
        return x

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 12, "num_layers": 2, "first_kernel": 5, "output_hidden": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 6, "lr": 3e-3}


def skew(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W+H-1) with row i shifted right by i (Fig. 3 of the paper)."""
    n, c, height, width = x.shape
    padded = F.pad(x, (0, height)).flatten(2)  # rows of length W+H
    return padded[:, :, : height * (width + height - 1)].view(n, c, height, width + height - 1)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of ``skew``: (N, C, H, W+H-1) -> (N, C, H, W)."""
    n, c, height, _ = x.shape
    padded = F.pad(x.flatten(2), (0, height))
    return padded.view(n, c, height, width + height)[..., :width]


class DiagonalLSTM(nn.Module):
    """One direction of the Diagonal BiLSTM: the state at (i, c) sees (i, c-1) and (i-1, c)."""

    def __init__(self, features: int, hidden: int, image_channels: int):
        super().__init__()
        gate_groups = torch.cat([channel_groups(hidden, image_channels)] * 4)
        self.input_to_state = MaskedConv2d(
            features, 4 * hidden, 1, "B", image_channels, out_groups=gate_groups
        )
        # over the previous skewed column: taps at rows i-1 and i, all in the past
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2)
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        input_gates = skew(self.input_to_state(x))  # every column's K_is at once
        n, _, height, columns = input_gates.shape
        h = input_gates.new_zeros(n, self.hidden, height)
        c = torch.zeros_like(h)
        states = []
        for column in range(columns):
            h, c = lstm_update(input_gates[..., column] + self.state_to_state(F.pad(h, (1, 0))), c)
            states.append(h)
        return unskew(torch.stack(states, dim=3), width)


class DiagonalBiLSTMLayer(nn.Module):
    def __init__(self, features: int, hidden: int, image_channels: int):
        super().__init__()
        self.left_to_right = DiagonalLSTM(features, hidden, image_channels)
        self.right_to_left = DiagonalLSTM(features, hidden, image_channels)
        self.to_residual = MaskedConv2d(hidden, features, 1, "B", image_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        forward_states = self.left_to_right(x)
        backward_states = self.right_to_left(x.flip(3)).flip(3)
        # shifted down one row, the mirrored direction sees only rows above
        backward_states = F.pad(backward_states, (0, 0, 1, 0))[:, :, :-1]
        return x + self.to_residual(forward_states + backward_states)


@dataclass
class DiagonalBiLSTMConfig:
    hidden: int = 128  # h: LSTM state channels; the residual stream has 2h
    num_layers: int = 12
    first_kernel: int = 7  # the mask-A convolution
    output_hidden: int = 1024  # the two 1x1 output layers


@register_model("diagonal_bilstm")
class DiagonalBiLSTM(PixelLikelihood, GenerativeModel):
    Config = DiagonalBiLSTMConfig
    family = "autoregressive"
    value_types = ("binary", "discrete")
    citation = RowLSTM.citation

    def __init__(self, config: DiagonalBiLSTMConfig, info):
        super().__init__(config, info)
        if not info.is_image:
            raise ValueError(f"Diagonal BiLSTM needs (C, H, W) images; {info.board} has shape {info.shape}")
        channels = info.shape[0]
        features = 2 * config.hidden
        self.num_levels = info.num_levels
        self.input_conv = MaskedConv2d(channels, features, config.first_kernel, "A", channels)
        self.layers = nn.Sequential(
            *(DiagonalBiLSTMLayer(features, config.hidden, channels) for _ in range(config.num_layers))
        )
        self.output = output_head(features, config.output_hidden, channels, self.num_levels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C*K, H, W): the parameters of p(x_i,c | x_<i, x_i,<c) for every pixel and channel."""
        return self.output(self.layers(self.input_conv(scale_levels(x, self.num_levels))))

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        # rows above are all visible; rows below never matter
        _, height, width = self.info.shape
        return sample_raster(
            self.logits,
            n,
            self.info.shape,
            self.num_levels,
            (height, width, width),
            self.device,
            self.output[-1].weight.dtype,
        )

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 8, "num_layers": 1, "first_kernel": 5, "output_hidden": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 6, "lr": 3e-3}
