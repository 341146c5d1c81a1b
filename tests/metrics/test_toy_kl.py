"""toy_kl's normalisation check `toy_grid_mass`: the midpoint-rule integral against
densities whose mass is known exactly (the boards' closed forms, a Gaussian, a density
scaled by 2), undefined values reported as NaN, and the caller's model left untouched."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import load_dataset
from dgmbench.data.toy2d import EXACT_LOG_DENSITY
from dgmbench.metrics.base import EvalContext
from dgmbench.metrics.toy_kl import ToyKL, cell_centres, grid_mass
from dgmbench.models.base import ExactLikelihood

BOARDS = ("eight_gaussians", "checkerboard", "pinwheel")


class ScaledTruth(torch.nn.Module):
    """The board's true density times `factor` (mass = factor), as a float32 model."""

    def __init__(self, board: str, factor: float = 1.0):
        super().__init__()
        self.board, self.log_factor = board, math.log(factor)
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a parameter whose dtype we can watch

    def log_prob(self, x):
        return EXACT_LOG_DENSITY[self.board](x.double()).to(x.dtype) + self.log_factor + 0 * self.weight


ExactLikelihood.register(ScaledTruth)


def test_cell_centres_tile_the_square():
    centres, area = cell_centres(1.0, 4)
    assert centres.shape == (16, 2) and area == pytest.approx(0.25)
    assert sorted(set(centres[:, 0].tolist())) == pytest.approx([-0.75, -0.25, 0.25, 0.75])


@pytest.mark.parametrize("board", BOARDS)
def test_true_densities_have_unit_mass_on_the_grid(board):
    mass, undefined = grid_mass(EXACT_LOG_DENSITY[board])
    assert not undefined.any()
    # the checkerboard's square edges fall on cell edges: the midpoint sum is exact
    assert mass == pytest.approx(1.0, abs=1e-12 if board == "checkerboard" else 1e-4)


def test_a_gaussian_integrates_to_one_and_a_scaled_one_to_its_scale():
    normal = torch.distributions.MultivariateNormal(torch.tensor([0.5, -1.0], dtype=torch.float64),
                                                    torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64))
    assert grid_mass(normal.log_prob)[0] == pytest.approx(1.0, abs=1e-8)
    assert grid_mass(lambda x: normal.log_prob(x) + math.log(0.5))[0] == pytest.approx(0.5, abs=1e-8)
    # a density mostly outside the grid loses that mass: the check can fail
    far = torch.distributions.MultivariateNormal(torch.tensor([8.0, 0.0], dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    assert grid_mass(far.log_prob)[0] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_metric_reports_the_mass_and_the_truths_beside_it(factor):
    dataset = load_dataset("checkerboard/continuous")
    model = ScaledTruth("checkerboard", factor)
    values = {v.name: v for v in ToyKL()(model, dataset, EvalContext())}
    mass = values["toy_grid_mass"]
    assert mass.value == pytest.approx(factor, abs=1e-9)
    assert mass.protocol["truth_grid_mass"] == pytest.approx(1.0, abs=1e-12)
    assert mass.protocol["undefined_cells"] == 0 and mass.n == 320 * 320
    assert mass.protocol["truth_mass_on_undefined_cells"] == 0.0
    assert values["toy_kl"].value == pytest.approx(-math.log(factor), abs=1e-6)  # E_p[log p - log(f p)]
    assert model.weight.dtype == torch.float32  # evaluated on a float64 copy


def test_settings_change_the_grid_and_undefined_cells_are_counted_and_left_out():
    dataset = load_dataset("eight_gaussians/continuous")
    ctx = EvalContext(settings={"toy_grid_half_width": 6.0, "toy_grid_cells": 120})
    mass = ToyKL().grid_mass_value(ScaledTruth("eight_gaussians"), EXACT_LOG_DENSITY["eight_gaussians"], ctx)
    assert mass.n == 120 * 120 and "[-6, 6]^2" in mass.protocol["grid"] and mass.value == pytest.approx(1.0, abs=1e-3)

    class Broken(ScaledTruth):
        def log_prob(self, x):
            out = super().log_prob(x)
            return torch.where(x[:, 0] > 7.9, torch.full_like(out, math.nan), out)

    broken = ToyKL().grid_mass_value(Broken("eight_gaussians"), EXACT_LOG_DENSITY["eight_gaussians"], EvalContext())
    assert broken.protocol["undefined_cells"] == 2 * 320  # the two columns of centres at x > 7.9
    assert broken.value == pytest.approx(1.0, abs=1e-4) and broken.protocol["truth_mass_on_undefined_cells"] < 1e-12

    class BrokenOnData(ScaledTruth):  # undefined where the data are: the mass is lost and shown
        def log_prob(self, x):
            out = super().log_prob(x)
            return torch.where(x[:, 0] > 0, torch.full_like(out, math.inf), out)

    lost = ToyKL().grid_mass_value(BrokenOnData("eight_gaussians"), EXACT_LOG_DENSITY["eight_gaussians"], EvalContext())
    assert lost.protocol["undefined_cells"] == 160 * 320
    # half the mixture lies at x > 0 (the modes on the x2 axis split evenly)
    assert lost.value == pytest.approx(0.5, abs=1e-4) and lost.protocol["truth_mass_on_undefined_cells"] == pytest.approx(0.5, abs=1e-4)
