"""Maximum mean discrepancy with a sum of Gaussian kernels (Gretton et al. 2012), the
training criterion of generative moment matching networks (Li et al. 2015; Dziugaite et
al. 2015).

    k(x, y) = sum_s exp(-||x - y||^2 / (2 s^2))
    MMD^2_b = 1/m^2 sum_ij k(x_i, x_j) + 1/n^2 sum_ij k(y_i, y_j) - 2/(mn) sum_ij k(x_i, y_j)
    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(mn) sum_ij k(x_i, y_j)

MMD^2_b (the V-statistic, Li et al. eq. 2) is >= 0 but biased upwards; MMD^2_u (the
U-statistic, Gretton et al. eq. 3, as Dziugaite et al.) is unbiased: E MMD^2_u = 0 when the
two samples come from one distribution.
"""
from __future__ import annotations

import torch


def gaussian_kernel_sum(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...]) -> torch.Tensor:
    """(m, n) matrix of sum_s exp(-||x_i - y_j||^2 / (2 s^2)) for flattened x, y."""
    squared = torch.cdist(x.flatten(1), y.flatten(1)).pow(2)
    return sum(torch.exp(-squared / (2 * s**2)) for s in bandwidths)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...], unbiased: bool = False) -> torch.Tensor:
    kxx, kyy, kxy = (gaussian_kernel_sum(a, b, bandwidths) for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    if unbiased:
        if m < 2 or n < 2:
            raise ValueError("the unbiased MMD estimate needs at least 2 examples in each sample")
        xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    else:
        xx, yy = kxx.mean(), kyy.mean()
    return xx + yy - 2 * kxy.mean()
