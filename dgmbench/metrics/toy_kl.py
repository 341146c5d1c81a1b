"""KL from the true density on the toy 2-D boards with a closed-form density
(eight_gaussians, checkerboard, pinwheel; see dgmbench/data/toy2d.py):

    KL(p || q) = E_p[log p(x) - log q(x)]  ~=  (1/N) sum_i [log p(x_i) - log q(x_i)],

x_i the N test samples (drawn from p), with its standard error over them: a Monte Carlo
estimate, unbiased, in nats. It is reported beside the same estimate for a single Gaussian
fitted by maximum likelihood to the training split (``toy_kl_gaussian``), the floor any
flexible density model should clear. Applies to models with an exact ``log_prob``.
A model that puts zero density on a test point (log q = -inf) gets KL = +inf.

``toy_grid_mass`` checks that the model's density is normalised: the midpoint rule

    sum_{cells c} q(centre_c) * h^2   over a square grid of cells of side h covering [-w, w]^2

(w = ``toy_grid_half_width``, 8 by default, ``toy_grid_cells`` = 320 cells per axis, h = 0.05),
evaluated in float64 on a copy of the model. Every board's true density has negligible mass
outside [-8, 8]^2 (all three lie within radius 5), so a normalised, smooth q gives 1 within
the discretisation error; the true density's own grid sum is recorded beside it
(``truth_grid_mass``; exactly 1 for the checkerboard, whose square edges fall on cell edges).
Cells where the model's log q is undefined (NaN, +inf) are left out of the sum and counted
in the protocol, with the true density's mass on them.
"""
from __future__ import annotations

import copy

import torch

from dgmbench.data.base import Dataset
from dgmbench.data.toy2d import EXACT_LOG_DENSITY
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, register_metric
from dgmbench.metrics.likelihood import mean_with_stderr, per_example
from dgmbench.models.base import ExactLikelihood

GRID_BATCH = 10_240  # grid points per log_prob call


def gaussian_log_density(train: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, covariance) with the maximum-likelihood fit to `train`."""
    train = train.double()
    mean = train.mean(0)
    covariance = torch.cov(train.T, correction=0)
    return torch.distributions.MultivariateNormal(mean, covariance).log_prob(x.double())


def cell_centres(half_width: float, cells: int) -> tuple[torch.Tensor, float]:
    """(cells^2, 2) float64 centres of a square grid of cells over [-w, w]^2, and the cell area."""
    side = 2 * half_width / cells
    axis = -half_width + side * (torch.arange(cells, dtype=torch.float64) + 0.5)
    return torch.cartesian_prod(axis, axis), side * side


def grid_mass(log_density, half_width: float = 8.0, cells: int = 320, batch_size: int = GRID_BATCH):
    """(sum of exp(log_density) * cell area over the cells where it is defined, boolean mask of
    the cells where log_density is NaN or +inf; log q = -inf is zero density and counts as 0)."""
    centres, area = cell_centres(half_width, cells)
    log_q = per_example(log_density, centres, batch_size, torch.device("cpu")).double()
    undefined = torch.isnan(log_q) | torch.isposinf(log_q)
    return (log_q[~undefined].exp().sum() * area).item(), undefined


class ToyKL:
    name = "toy_kl"
    settings = {
        "toy_grid_half_width": Setting(float, "half width w of the grid [-w, w]^2 of the toy_grid_mass check (8)", greater_than=0),
        "toy_grid_cells": Setting(int, "cells per axis of the toy_grid_mass grid (320: cells of side 0.05)", minimum=2),
    }

    def applies(self, model, dataset: Dataset) -> bool:
        return isinstance(model, ExactLikelihood) and dataset.info.name in EXACT_LOG_DENSITY

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        x = dataset.split(ctx.split)
        truth = EXACT_LOG_DENSITY[dataset.info.name]
        log_p = truth(x.double())
        log_q = per_example(model.log_prob, x, ctx.batch_size, ctx.device)
        log_gaussian = gaussian_log_density(dataset.split("train"), x)
        protocol = {"split": ctx.split, "estimator": "mean over test samples of log p - log q", "truth": dataset.info.name}
        values = []
        for name, log_model in (("toy_kl", log_q), ("toy_kl_gaussian", log_gaussian)):
            mean, stderr = mean_with_stderr(log_p - log_model)
            values.append(MetricValue(name, mean, "nats", len(x), stderr, "estimate", protocol=dict(protocol)))
        values.append(self.grid_mass_value(model, truth, ctx))
        return values

    def grid_mass_value(self, model, truth, ctx: EvalContext) -> MetricValue:
        half_width = float(ctx.setting("toy_grid_half_width", 8.0))
        cells = int(ctx.setting("toy_grid_cells", 320))
        # float64 on a copy: far from the data a float32 flow's exponentials can overflow
        # (inf - inf), and the caller's model must stay as it is for the other metrics
        double = copy.deepcopy(model).cpu().double().eval()
        mass, undefined = grid_mass(double.log_prob, half_width, cells)
        truth_mass, _ = grid_mass(truth, half_width, cells)
        centres, area = cell_centres(half_width, cells)
        truth_on_undefined = (truth(centres[undefined]).exp().sum() * area).item() if undefined.any() else 0.0
        side = 2 * half_width / cells
        protocol = {
            "estimator": "midpoint rule: sum over grid cells of q(cell centre) x cell area, float64",
            "grid": f"[-{half_width:g}, {half_width:g}]^2, {cells} x {cells} cells of side {side:g}",
            "truth_grid_mass": truth_mass,
            # cells where the model's log q is NaN or +inf (left out of the sum): e.g. a MAF's
            # unbounded scales compound to inf - inf far from the data. The true density's
            # mass on them says whether they matter (0: they lie outside the data).
            "undefined_cells": int(undefined.sum()),
            "truth_mass_on_undefined_cells": truth_on_undefined,
            "expected": 1.0,
        }
        return MetricValue("toy_grid_mass", mass, "", cells * cells, None, "estimate", protocol=protocol)


register_metric(ToyKL())
