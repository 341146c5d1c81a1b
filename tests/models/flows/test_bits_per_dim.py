"""Bits/dim of a flow on dequantised data against the hand-computed sum of its parts:
base log-density + flow Jacobian (autograd) + logit Jacobian (closed form) + the [0,1] ->
pixel-space change D log L; the density space in every record; a logit-space density
never reaching a bits/dim column."""
from __future__ import annotations

import math

import torch

from dgmbench.data.base import DataInfo, Dataset
from dgmbench.metrics.base import EvalContext
from dgmbench.metrics.likelihood import ExactNLL
from dgmbench.models import build_model
from flow_checks import jacobian_log_det, randomize

LEVELS = 4
INFO = DataInfo(name="tiny", variant="dequantized", shape=(2,), value_type="continuous", dequantization_levels=LEVELS)


def tiny_dataset() -> Dataset:
    levels = torch.tensor([[0, 3], [1, 2], [2, 2], [3, 0], [1, 1]], dtype=torch.float64)
    u = torch.tensor([[0.5, 0.25], [0.1, 0.9], [0.7, 0.3], [0.2, 0.6], [0.95, 0.05]], dtype=torch.float64)
    x = (levels + u) / LEVELS  # (level + u) / L on [0,1], as the dequantized variants
    return Dataset(INFO, {"train": x, "valid": x, "test": x})


def test_bits_per_dim_is_the_sum_of_every_change_of_variables():
    torch.manual_seed(0)
    alpha = 0.05
    model = randomize(build_model("maf", INFO, num_layers=2, hidden_sizes=(6,), logit_alpha=alpha).double().eval(), 3, 0.5)
    dataset = tiny_dataset()
    x = dataset.split("test")
    # 1) logit: p = alpha + (1 - 2 alpha) x, y = log(p / (1 - p)), dy/dx = (1 - 2 alpha) / (p (1 - p))
    p = alpha + (1 - 2 * alpha) * x
    y = torch.log(p / (1 - p))
    logit_log_det = torch.log((1 - 2 * alpha) / (p * (1 - p))).sum(1)
    # 2) the MAF layers after the logit: Jacobian by autograd
    layers = model.flow.transform.transforms[1]
    z = layers(y)[0]
    flow_log_det = jacobian_log_det(lambda v: layers(v)[0], y)
    # 3) standard normal base
    base = -0.5 * (z**2).sum(1) - math.log(2 * math.pi)
    log_density_unit = base + flow_log_det + logit_log_det  # density on [0,1]^2
    # 4) pixel space [0, L): p_pixel(v) = p(v / L) / L^D
    nll_pixel = -log_density_unit + INFO.dim * math.log(LEVELS)
    expected_bpd = nll_pixel.mean().item() / (INFO.dim * math.log(2))

    values = {v.name: v for v in ExactNLL()(model, dataset, EvalContext(batch_size=2))}
    assert abs(values["nll"].value - (-log_density_unit.mean().item())) < 1e-9
    assert abs(values["bpd"].value - expected_bpd) < 1e-9
    assert logit_log_det.abs().min() > 0.5 and flow_log_det.abs().max() > 0.1  # every part matters
    assert values["bpd"].kind == "bound" and values["nll"].kind == "exact"  # dequantised: a bound
    assert values["nll"].protocol["density_space"] == "[0,1]"
    assert values["bpd"].protocol["density_space"] == f"pixel [0,{LEVELS})"
    assert values["bpd"].protocol["dequantization_levels"] == LEVELS


class LogitSpaceDensity:
    """A model that states its density is in logit space (e.g. a quoted logit-space number)."""

    def log_prob(self, x):
        return -x.sum(1)

    def likelihood_protocol(self):
        return {"density_space": "logit"}


def test_a_logit_space_density_never_gets_bits_per_dim():
    from dgmbench.models.base import ExactLikelihood

    ExactLikelihood.register(LogitSpaceDensity)
    values = ExactNLL()(LogitSpaceDensity(), tiny_dataset(), EvalContext())
    assert [v.name for v in values] == ["nll"]
    assert values[0].protocol["density_space"] == "logit"


def test_models_without_a_density_space_are_unchanged():
    model = build_model("maf", INFO, num_layers=1, hidden_sizes=(4,)).double().eval()
    model.likelihood_protocol = lambda: {}  # as every non-flow model
    values = {v.name: v for v in ExactNLL()(model, tiny_dataset(), EvalContext())}
    assert "density_space" not in values["bpd"].protocol
    assert values["bpd"].value == (values["nll"].value + 2 * math.log(LEVELS)) / (2 * math.log(2))
