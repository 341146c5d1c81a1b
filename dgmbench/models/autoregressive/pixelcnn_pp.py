"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017, "PixelCNN++: Improving the PixelCNN
with Discretized Logistic Mixture Likelihood and Other Modifications").

    p(x) = prod_i p(x_i | x_<i),   x_i the whole pixel (all C channels at once, Sec. 2.2)
    p(x_i | x_<i) = discretized logistic mixture with linearly coupled channel means (Eq. 2-3)

(``layers.discretized_logistic``, generalised to L levels with bin width 2/(L-1) on [-1, 1].)

Network (Sec. 2.3-2.5, Fig. 2): two streams that together see the whole past with no blind
spot: u, made of down-shifted 2x3 convolutions (everything above), and ul, made of
down-right-shifted 2x2 convolutions (above and to the left), each a stack of gated ResNet
blocks with concatenated ELUs; a U-Net-like pass that downsamples by stride-2 convolutions
``num_scales - 1`` times and upsamples back, with shortcut connections from every block of
the up pass to the matching block of the down pass; dropout inside the blocks. Weight
normalisation and Polyak averaging of the paper are not used here (plain Adam updates).

Sampling draws a whole pixel per network pass (D/C passes). Each pass runs only on the rows
0..r' the pixel can see (r' = r rounded up to a multiple of the total stride), which gives
exactly the full network's output for row r because every layer is causal in rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model
from dgmbench.models.layers import discretized_logistic
from dgmbench.models.autoregressive.layers.pixel_outputs import scale_levels


@dataclass
class PixelCNNPPConfig:
    filters: int = 160  # feature maps per stream (the paper's CIFAR-10 model)
    nr_resnet: int = 5  # gated ResNet blocks per scale
    num_scales: int = 3  # 32x32 -> 16x16 -> 8x8; H and W must divide by 2**(num_scales-1)
    num_mixtures: int = 10  # logistic components
    dropout: float = 0.5


def down_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 0, 0, 0))[..., :-1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


class DownShiftedConv(nn.Module):
    """Output (r, c) sees rows r-kh+1..r and columns c-(kw-1)/2..c+(kw-1)/2."""

    def __init__(self, in_channels, out_channels, kernel=(2, 3), stride=1):
        super().__init__()
        kh, kw = kernel
        self.pad = (kw // 2, kw // 2, kh - 1, 0)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad))


class DownRightShiftedConv(nn.Module):
    """Output (r, c) sees rows r-kh+1..r and columns c-kw+1..c."""

    def __init__(self, in_channels, out_channels, kernel=(2, 2), stride=1):
        super().__init__()
        kh, kw = kernel
        self.pad = (kw - 1, 0, kh - 1, 0)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad))


class DownShiftedDeconv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel=(2, 3)):
        super().__init__()
        self.kernel = kernel
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2, output_padding=1)

    def forward(self, x):
        kh, kw = self.kernel
        x = self.deconv(x)
        return x[:, :, : x.shape[2] - kh + 1, kw // 2 : x.shape[3] - kw // 2]


class DownRightShiftedDeconv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel=(2, 2)):
        super().__init__()
        self.kernel = kernel
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2, output_padding=1)

    def forward(self, x):
        kh, kw = self.kernel
        x = self.deconv(x)
        return x[:, :, : x.shape[2] - kh + 1, : x.shape[3] - kw + 1]


class GatedResnet(nn.Module):
    """x + gate(conv(concat_elu(conv(concat_elu(x)) + nin(concat_elu(shortcut)))))  (Sec. 2.4)."""

    def __init__(self, filters: int, conv: type, shortcut_channels: int, dropout: float):
        super().__init__()
        self.conv_in = conv(2 * filters, filters)
        self.shortcut = nn.Conv2d(2 * shortcut_channels, filters, 1) if shortcut_channels else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv(2 * filters, 2 * filters)

    def forward(self, x, shortcut=None):
        h = self.conv_in(concat_elu(x))
        if shortcut is not None:
            h = h + self.shortcut(concat_elu(shortcut))
        value, gate = self.conv_out(self.dropout(concat_elu(h))).chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


@register_model("pixelcnn_pp")
class PixelCNNPP(GenerativeModel, ExactLikelihood):
    Config = PixelCNNPPConfig
    family = "autoregressive"
    value_types = ("binary", "discrete")
    citation = (
        "Salimans, T., Karpathy, A., Chen, X. & Kingma, D. P. (2017). PixelCNN++: Improving the "
        "PixelCNN with Discretized Logistic Mixture Likelihood and Other Modifications. ICLR."
    )

    def __init__(self, config: PixelCNNPPConfig, info):
        super().__init__(config, info)
        if not info.is_image:
            raise ValueError(f"PixelCNN++ needs (C, H, W) images; {info.board} has shape {info.shape}")
        self.stride = 2 ** (config.num_scales - 1)
        channels, height, width = info.shape
        if height % self.stride or width % self.stride:
            raise ValueError(
                f"num_scales={config.num_scales} needs H and W divisible by {self.stride}; got {info.shape}"
            )
        self.num_levels = info.num_levels
        f, r, s, p = config.filters, config.nr_resnet, config.num_scales, config.dropout
        # An extra all-ones input channel tells real zeros (mid-grey) from the zero padding.
        self.u_init = DownShiftedConv(channels + 1, f, (2, 3))
        self.ul_init_above = DownShiftedConv(channels + 1, f, (1, 3))
        self.ul_init_left = DownRightShiftedConv(channels + 1, f, (2, 1))
        self.up_u = nn.ModuleList(
            nn.ModuleList(GatedResnet(f, DownShiftedConv, 0, p) for _ in range(r)) for _ in range(s)
        )
        self.up_ul = nn.ModuleList(
            nn.ModuleList(GatedResnet(f, DownRightShiftedConv, f, p) for _ in range(r)) for _ in range(s)
        )
        self.downsample_u = nn.ModuleList(DownShiftedConv(f, f, (2, 3), stride=2) for _ in range(s - 1))
        self.downsample_ul = nn.ModuleList(DownRightShiftedConv(f, f, (2, 2), stride=2) for _ in range(s - 1))
        blocks = [r] + [r + 1] * (s - 1)  # the down pass consumes every up-pass output once
        self.down_u = nn.ModuleList(
            nn.ModuleList(GatedResnet(f, DownShiftedConv, f, p) for _ in range(b)) for b in blocks
        )
        self.down_ul = nn.ModuleList(
            nn.ModuleList(GatedResnet(f, DownRightShiftedConv, 2 * f, p) for _ in range(b)) for b in blocks
        )
        self.upsample_u = nn.ModuleList(DownShiftedDeconv(f, f) for _ in range(s - 1))
        self.upsample_ul = nn.ModuleList(DownRightShiftedDeconv(f, f) for _ in range(s - 1))
        self.output = nn.Conv2d(f, discretized_logistic.num_parameters(channels, config.num_mixtures), 1)

    def mixture_params(self, x: torch.Tensor) -> torch.Tensor:
        """(N, P, H, W): the mixture parameters of p(x_i | x_<i) at every pixel i."""
        scaled = scale_levels(x, self.num_levels)
        scaled = torch.cat([scaled, torch.ones_like(scaled[:, :1])], dim=1)
        u_list = [down_shift(self.u_init(scaled))]
        ul_list = [down_shift(self.ul_init_above(scaled)) + right_shift(self.ul_init_left(scaled))]
        for scale in range(self.config.num_scales):
            for u_block, ul_block in zip(self.up_u[scale], self.up_ul[scale]):
                u_list.append(u_block(u_list[-1]))
                ul_list.append(ul_block(ul_list[-1], u_list[-1]))
            if scale < self.config.num_scales - 1:
                u_list.append(self.downsample_u[scale](u_list[-1]))
                ul_list.append(self.downsample_ul[scale](ul_list[-1]))
        u, ul = u_list.pop(), ul_list.pop()
        for scale in range(self.config.num_scales):
            for u_block, ul_block in zip(self.down_u[scale], self.down_ul[scale]):
                u = u_block(u, u_list.pop())
                ul = ul_block(ul, torch.cat([u, ul_list.pop()], dim=1))
            if scale < self.config.num_scales - 1:
                u, ul = self.upsample_u[scale](u), self.upsample_ul[scale](ul)
        return self.output(F.elu(ul))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        per_pixel = discretized_logistic.log_prob(
            self.mixture_params(x), x, self.num_levels, self.config.num_mixtures
        )
        return per_pixel.flatten(1).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        channels, height, width = self.info.shape
        x = torch.zeros(n, channels, height, width, device=self.device, dtype=self.output.weight.dtype)
        for row in range(height):
            visible = min(height, -(-(row + 1) // self.stride) * self.stride)
            for col in range(width):
                params = self.mixture_params(x[:, :, :visible])[:, :, row : row + 1, col : col + 1]
                x[:, :, row, col] = discretized_logistic.sample(
                    params, channels, self.num_levels, self.config.num_mixtures
                )[:, :, 0, 0]
        return x

    @classmethod
    def quick_config(cls, info):
        return {"filters": 8, "nr_resnet": 1, "num_scales": 1, "num_mixtures": 3, "dropout": 0.0}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 6, "lr": 5e-3}

    @classmethod
    def quick_variant(cls):
        return "17level"
