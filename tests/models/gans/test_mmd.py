"""MMD (gans/layers/mmd.py) against a brute-force double loop, the closed-form population
MMD^2 of two Gaussians under a Gaussian kernel, and the unbiasedness of the U-statistic."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.models.gans.layers.mmd import mmd2

BANDWIDTHS = (0.5, 1.0, 3.0)


def brute_force(x, y, bandwidths, unbiased):
    def k(a, b):
        return sum(math.exp(-float(((a - b) ** 2).sum()) / (2 * s**2)) for s in bandwidths)

    m, n = len(x), len(y)
    pairs = lambda a, skip: [k(a[i], a[j]) for i in range(len(a)) for j in range(len(a)) if not (skip and i == j)]
    xx = sum(pairs(x, unbiased)) / (m * (m - 1) if unbiased else m * m)
    yy = sum(pairs(y, unbiased)) / (n * (n - 1) if unbiased else n * n)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("unbiased", [False, True])
def test_against_brute_force(unbiased):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), 0.5 + torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert mmd2(x, y, BANDWIDTHS, unbiased).item() == pytest.approx(brute_force(x, y, BANDWIDTHS, unbiased), rel=1e-10)


def population_mmd2(shift: float, dim: int, std: float, bandwidths) -> float:
    """N(0, std^2 I) vs N(shift e_1, std^2 I): E exp(-||u - v||^2 / 2s^2) with u - v ~
    N(delta, 2 std^2 I) is (s^2 / (s^2 + 2 std^2))^(d/2) exp(-delta^2 / (2 (s^2 + 2 std^2)))."""
    total = 0.0
    for s in bandwidths:
        c = (s**2 / (s**2 + 2 * std**2)) ** (dim / 2)
        total += 2 * c - 2 * c * math.exp(-shift**2 / (2 * (s**2 + 2 * std**2)))
    return total


def test_unbiased_estimator_matches_population_value_and_zero_for_identical_distributions():
    g = torch.Generator().manual_seed(1)
    reps, m, dim = 400, 40, 2
    x = torch.randn(reps, m, dim, generator=g, dtype=torch.float64)
    y_same = torch.randn(reps, m, dim, generator=g, dtype=torch.float64)
    y_shift = torch.randn(reps, m, dim, generator=g, dtype=torch.float64)
    y_shift[..., 0] += 1.0
    same_u = torch.stack([mmd2(a, b, BANDWIDTHS, True) for a, b in zip(x, y_same)])
    same_b = torch.stack([mmd2(a, b, BANDWIDTHS, False) for a, b in zip(x, y_same)])
    shift_u = torch.stack([mmd2(a, b, BANDWIDTHS, True) for a, b in zip(x, y_shift)])
    se = lambda v: v.std().item() / math.sqrt(reps)
    assert abs(same_u.mean().item()) < 4 * se(same_u)  # E MMD^2_u = 0
    assert (same_u < 0).any()  # it is a U-statistic: negative values occur
    assert same_b.mean().item() > 10 * se(same_b) and (same_b >= 0).all()  # the V-statistic is biased upwards
    expected = population_mmd2(1.0, dim, 1.0, BANDWIDTHS)
    assert abs(shift_u.mean().item() - expected) < 4 * se(shift_u)
