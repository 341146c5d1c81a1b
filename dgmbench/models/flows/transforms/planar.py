"""Planar and radial flows (Rezende & Mohamed 2015, Sec. 4.1 and Appendix A.1).

Planar (eq. 10-12):  f(z) = z + u_hat h(w^T z + b),  h = tanh,
                     log|det df/dz| = log|1 + u_hat^T w h'(w^T z + b)|.
f is invertible iff w^T u_hat >= -1 (Appendix A.1); we enforce it with the paper's
reparameterisation u_hat = u + [m(w^T u) - w^T u] w / ||w||^2, m(a) = -1 + softplus(a), so
w^T u_hat = m(w^T u) > -1 and 1 + w^T u_hat h' > 0 for every z.

Radial (eq. 14):     f(z) = z + beta h(alpha, r) (z - z0),  r = |z - z0|,  h = 1/(alpha + r),
                     log|det| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r),
invertible for beta >= -alpha (Appendix A.2): alpha = softplus(a), beta = -alpha + softplus(c).

Both are cheap in the forward direction (closed form with its determinant); neither has a
closed-form inverse in general. The planar inverse reduces to one scalar equation: with
a = w^T z and c = w^T y, a + (w^T u_hat) tanh(a + b) = c is strictly increasing in a and
|a - c| <= |w^T u_hat|, so bisection on that interval solves it to machine precision, then
z = y - u_hat tanh(a + b). The radial inverse is exact: r solves the quadratic
r^2 + (alpha + beta - r') r - alpha r' = 0 with r' = |y - z0|.

In a density model these maps run data -> noise (cheap density, inverse for sampling); as a
VAE posterior (the paper's use) they run noise -> z in the forward direction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.flows.transforms.base import Transform

BISECTION_STEPS = 100


class Planar(Transform):
    cheap_direction = "forward"

    def __init__(self, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.u = nn.Parameter(torch.randn(dim, generator=generator) * 0.01)
        self.w = nn.Parameter(torch.randn(dim, generator=generator) * 0.01)
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> torch.Tensor:
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / (self.w @ self.w)

    def forward(self, z):
        u_hat = self.u_hat()
        pre = z @ self.w + self.b
        y = z + u_hat * torch.tanh(pre)[:, None]
        derivative = 1 - torch.tanh(pre) ** 2
        return y, torch.log(torch.abs(1 + derivative * (self.w @ u_hat)))

    def inverse(self, y):
        u_hat = self.u_hat()
        k = self.w @ u_hat  # > -1
        c = y @ self.w
        low, high = c - k.abs(), c + k.abs()
        with torch.no_grad():
            for _ in range(BISECTION_STEPS):
                middle = (low + high) / 2
                too_big = middle + k * torch.tanh(middle + self.b) > c
                high = torch.where(too_big, middle, high)
                low = torch.where(too_big, low, middle)
        # One Newton step from the bisection's root, with gradients: its value is the root
        # and its derivative is the implicit-function one, so the inverse is differentiable.
        root = (low + high) / 2
        slope = 1 + k * (1 - torch.tanh(root + self.b) ** 2)
        a = root - (root + k * torch.tanh(root + self.b) - c) / slope
        z = y - u_hat * torch.tanh(a + self.b)[:, None]
        derivative = 1 - torch.tanh(z @ self.w + self.b) ** 2
        return z, -torch.log(torch.abs(1 + derivative * k))


class Radial(Transform):
    cheap_direction = "forward"

    def __init__(self, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.dim = dim
        self.z0 = nn.Parameter(torch.randn(dim, generator=generator) * 0.01)
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def alpha_beta(self):
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)

    def _log_det(self, r, alpha, beta):
        h = 1 / (alpha + r)
        h_prime = -(h**2)
        return (self.dim - 1) * torch.log1p(beta * h) + torch.log(1 + beta * h + beta * h_prime * r)

    def forward(self, z):
        alpha, beta = self.alpha_beta()
        diff = z - self.z0
        r = diff.norm(dim=1)
        y = z + (beta / (alpha + r))[:, None] * diff
        return y, self._log_det(r, alpha, beta)

    def inverse(self, y):
        alpha, beta = self.alpha_beta()
        diff = y - self.z0
        r_out = diff.norm(dim=1)
        p = alpha + beta - r_out
        r = (-p + torch.sqrt(p**2 + 4 * alpha * r_out)) / 2
        z = self.z0 + diff / (1 + beta / (alpha + r))[:, None]
        return z, -self._log_det(r, alpha, beta)
