"""Element-wise and per-channel transforms: fixed affine maps, the logit preprocessing,
NICE's diagonal scaling, Glow's actnorm and batch normalisation as a bijection."""
from __future__ import annotations

import math

import torch
from torch import nn

from dgmbench.models.flows.transforms.base import Transform, sum_except_batch


class FixedAffine(Transform):
    """y = scale * x + shift with constants (e.g. Glow's x - 1/2); log|det| = D log|scale|."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        if scale == 0:
            raise ValueError("FixedAffine needs a non-zero scale")
        self.scale, self.shift = float(scale), float(shift)

    def _log_det(self, x):
        return x.new_full((len(x),), x[0].numel() * math.log(abs(self.scale)))

    def forward(self, x):
        return x * self.scale + self.shift, self._log_det(x)

    def inverse(self, y):
        return (y - self.shift) / self.scale, -self._log_det(y)


class Logit(Transform):
    """Data in [0,1] to logit space (RealNVP Sec. 4.1; MAF's image experiments):

        p = alpha + (1 - 2 alpha) x,   y = log p - log(1 - p),
        log|dy/dx| = sum_d [log(1 - 2 alpha) - log p_d - log(1 - p_d)].

    alpha keeps p away from 0 and 1 (RealNVP: 0.05, MAF: lambda = 1e-6). Putting this in
    the chain makes log_prob a density on [0,1]^D, not on logit space."""

    def __init__(self, alpha: float):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"logit alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def _log_det(self, p):
        return sum_except_batch(math.log1p(-2 * self.alpha) - torch.log(p) - torch.log1p(-p))

    def forward(self, x):
        p = self.alpha + (1 - 2 * self.alpha) * x
        return torch.log(p) - torch.log1p(-p), self._log_det(p)

    def inverse(self, y):
        p = torch.sigmoid(y)
        return (p - self.alpha) / (1 - 2 * self.alpha), -self._log_det(p)


class DiagonalScaling(Transform):
    """NICE's scaling layer (Dinh et al. 2015, Sec. 3.3): y = exp(s) * x per dimension,
    log|det| = sum_d s_d."""

    def __init__(self, shape):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return x * self.log_scale.exp(), self.log_scale.sum().expand(len(x))

    def inverse(self, y):
        return y * (-self.log_scale).exp(), -self.log_scale.sum().expand(len(y))


def _per_channel(param: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a (C,) parameter over (n, C, *spatial)."""
    return param.view(1, -1, *([1] * (x.dim() - 2)))


def _spatial_size(x: torch.Tensor) -> int:
    return math.prod(x.shape[2:])


class ActNorm(Transform):
    """Glow's activation normalisation (Kingma & Dhariwal 2018, Sec. 3.1): a per-channel
    affine y = (x + b) * exp(s), log|det| = H W sum_c s_c. The first forward pass in
    training mode sets b and s so that this batch's output has zero mean and unit variance
    per channel (data-dependent initialisation); the flag is a buffer, so a resumed run
    keeps the trained values."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x):
        dims = [0, *range(2, x.dim())]
        self.bias.copy_(-x.mean(dims))
        self.log_scale.copy_(-torch.log(x.std(dims, unbiased=False) + 1e-6))
        self.initialized.fill_(True)

    def _log_det(self, x):
        return (self.log_scale.sum() * _spatial_size(x)).expand(len(x))

    def forward(self, x):
        if self.training and not bool(self.initialized):
            self._initialize(x)
        y = (x + _per_channel(self.bias, x)) * _per_channel(self.log_scale, x).exp()
        return y, self._log_det(x)

    def inverse(self, y):
        x = y * _per_channel(-self.log_scale, y).exp() - _per_channel(self.bias, y)
        return x, -self._log_det(y)


class BatchNormBijection(Transform):
    """Batch normalisation as a bijection (RealNVP Sec. 3.7, MAF Sec. 3.4):

        y = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta,
        log|det| = (spatial size) * sum_c [log_gamma_c - 1/2 log(v_c + eps)].

    In training mode (m, v) are the batch's per-channel statistics (treated as constants of
    the map, as in both papers) and update running averages; in evaluation mode, and always
    in ``inverse``, the running averages are used, so the evaluated density is a fixed,
    normalised bijection of x."""

    def __init__(self, num_channels: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(num_channels))
        self.beta = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))

    def _log_det(self, var, x):
        return ((self.log_gamma - 0.5 * torch.log(var + self.eps)).sum() * _spatial_size(x)).expand(len(x))

    def forward(self, x):
        if self.training and len(x) > 1:
            dims = [0, *range(2, x.dim())]
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.log_gamma.exp() / torch.sqrt(var + self.eps)
        y = (x - _per_channel(mean, x)) * _per_channel(scale, x) + _per_channel(self.beta, x)
        return y, self._log_det(var, x)

    def inverse(self, y):
        mean, var = self.running_mean, self.running_var
        scale = self.log_gamma.exp() / torch.sqrt(var + self.eps)
        x = (y - _per_channel(self.beta, y)) / _per_channel(scale, y) + _per_channel(mean, y)
        return x, -self._log_det(var, y)


class ElementwiseAffine(Transform):
    """y = (x - mu) * exp(-log_sigma) with learned per-channel mu, log_sigma, zero-initialised:
    followed by a standard normal this is a learned diagonal Gaussian prior N(mu, sigma^2)
    (Glow's ``learn_top``)."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(num_channels))
        self.log_sigma = nn.Parameter(torch.zeros(num_channels))

    def _log_det(self, x):
        return (-self.log_sigma.sum() * _spatial_size(x)).expand(len(x))

    def forward(self, x):
        return (x - _per_channel(self.mu, x)) * _per_channel(-self.log_sigma, x).exp(), self._log_det(x)

    def inverse(self, y):
        return y * _per_channel(self.log_sigma, y).exp() + _per_channel(self.mu, y), -self._log_det(y)
