"""Discretized logistic mixture likelihood (Salimans, Karpathy, Chen & Kingma 2017,
"PixelCNN++", Sec. 2.1-2.2), generalised from 256 to L levels.

Levels 0..L-1 sit at x_l = -1 + 2l/(L-1) on [-1, 1], each owning a bin of width 2/(L-1);
the two edge bins extend to -inf and +inf so that the L masses sum to one exactly:

    P(x | pi, mu, s) = sum_k pi_k [ sigma((x + 1/(L-1) - mu_k)/s_k) - sigma((x - 1/(L-1) - mu_k)/s_k) ]  (Eq. 2)

For colour the whole pixel shares the mixture component, and the channel means are
linear in the channels before them (Eq. 3):

    mu_G = mu'_G + alpha x_R,      mu_B = mu'_B + beta x_R + gamma x_G.

The mass of a bin is computed in log space exactly, with no pdf fallback:
sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - e^(b - a)), so
log[sigma(a) - sigma(b)] = logsigmoid(a) + logsigmoid(-b) + log(1 - e^-(a - b)).

Parameter layout of an (N, P, H, W) map with M components and C channels:
M mixture logits, then C*M means, C*M log-scales, and C(C-1)/2 * M coupling coefficients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_LOG_SCALE = -7.0  # as in PixelCNN++: keeps bins from collapsing to a point mass


def num_parameters(channels: int, num_mixtures: int) -> int:
    return num_mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - e^-d) for d > 0, accurate for small and large d (Maechler 2012)."""
    small = d.clamp(max=math.log(2))
    large = d.clamp(min=math.log(2))
    return torch.where(d < math.log(2), torch.log(-torch.expm1(-small)), torch.log1p(-torch.exp(-large)))


def _split(params: torch.Tensor, channels: int, num_mixtures: int):
    n, _, *spatial = params.shape
    m = num_mixtures
    logits = params[:, :m]
    means = params[:, m : m + channels * m].reshape(n, channels, m, *spatial)
    log_scales = params[:, m + channels * m : m + 2 * channels * m].reshape(n, channels, m, *spatial)
    coeffs = torch.tanh(params[:, m + 2 * channels * m :]).reshape(
        n, channels * (channels - 1) // 2, m, *spatial
    )
    return logits, means, log_scales.clamp(min=MIN_LOG_SCALE), coeffs


def _coupled_mean(means, coeffs, x_scaled, channel):
    """mu_c = mu'_c + sum_{j<c} coeff_{c,j} x_j (Eq. 3), with x (N, C, ...) broadcast over M."""
    mean = means[:, channel]
    first = channel * (channel - 1) // 2  # coefficients of (c, 0), (c, 1), ... are contiguous
    for j in range(channel):
        mean = mean + coeffs[:, first + j] * x_scaled[:, j].unsqueeze(1)
    return mean


def log_prob(params: torch.Tensor, x: torch.Tensor, num_levels: int, num_mixtures: int) -> torch.Tensor:
    """log P(x_pixel) for every pixel: x (N, C, H, W) levels 0..L-1 -> (N, H, W) in nats."""
    channels = x.shape[1]
    logits, means, log_scales, coeffs = _split(params, channels, num_mixtures)
    x_scaled = x * (2.0 / (num_levels - 1)) - 1.0
    half_bin = 1.0 / (num_levels - 1)
    log_mass = 0.0
    for c in range(channels):
        centred = x_scaled[:, c].unsqueeze(1) - _coupled_mean(means, coeffs, x_scaled, c)
        inv_scale = torch.exp(-log_scales[:, c])
        upper = inv_scale * (centred + half_bin)
        lower = inv_scale * (centred - half_bin)
        interior = F.logsigmoid(upper) + F.logsigmoid(-lower) + _log1mexp(upper - lower)
        level = x[:, c].unsqueeze(1)
        log_mass_c = torch.where(
            level == 0,
            F.logsigmoid(upper),
            torch.where(level == num_levels - 1, F.logsigmoid(-lower), interior),
        )
        log_mass = log_mass + log_mass_c
    return torch.logsumexp(F.log_softmax(logits, dim=1) + log_mass, dim=1)


def sample(params: torch.Tensor, channels: int, num_levels: int, num_mixtures: int) -> torch.Tensor:
    """One draw per pixel: (N, P, H, W) -> (N, C, H, W) levels. The component is drawn by
    Gumbel-max, each channel from its logistic by inversion, then rounded to its bin, which
    is exact: level l receives exactly the logistic mass of its bin."""
    logits, means, log_scales, coeffs = _split(params, channels, num_mixtures)
    gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp(min=torch.finfo(logits.dtype).tiny)))
    component = (logits + gumbel).argmax(dim=1, keepdim=True)  # (N, 1, H, W)

    def pick(t):  # (N, K, M, H, W) -> (N, K, 1, H, W) at the drawn component
        return t.gather(2, component.unsqueeze(1).expand(-1, t.shape[1], -1, *t.shape[3:]))

    means, log_scales, coeffs = pick(means), pick(log_scales), pick(coeffs)
    eps = torch.finfo(params.dtype).eps
    levels = torch.zeros(
        params.shape[0], channels, *params.shape[2:], dtype=params.dtype, device=params.device
    )
    x_scaled = torch.zeros_like(levels)
    for c in range(channels):
        mean = _coupled_mean(means, coeffs, x_scaled, c).squeeze(1)
        u = torch.rand_like(mean).clamp(eps, 1 - eps)
        value = mean + torch.exp(log_scales[:, c, 0]) * (torch.log(u) - torch.log1p(-u))
        levels[:, c] = torch.round((value + 1) * (num_levels - 1) / 2).clamp(0, num_levels - 1)
        x_scaled[:, c] = levels[:, c] * (2.0 / (num_levels - 1)) - 1.0
    return levels
