"""Peer check against zuko (Rozet et al.): with the same parameters, zuko's masked
autoregressive flow and its coupling flow give the same log-density as our MAF and our
RealNVP coupling stack, to 1e-5, in float64.

zuko computes the univariate affine maps, their log-determinants, the composition and the
N(0, I) base itself; we hand it only our conditioner networks' outputs, translated into its
affine parameterisation y = x exp(a) + b, whose log-scale a is a soft-clip of the raw
parameter s: a = s / (1 + |s| / c) with c = -log(1e-3) (so s = a / (1 - |a| / c))."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgmbench.data.base import DataInfo
from dgmbench.models import build_model
from flow_checks import randomize

zuko = pytest.importorskip("zuko")

D = 5
INFO = DataInfo(name="toy", variant="continuous", shape=(D,), value_type="continuous")
CLIP = -math.log(1e-3)  # zuko's MonotonicAffineTransform(slope=1e-3)


def raw_scale(log_scale: torch.Tensor) -> torch.Tensor:
    assert log_scale.abs().max() < CLIP
    return log_scale / (1 - log_scale.abs() / CLIP)


def zuko_flow(transforms) -> "zuko.lazy.Flow":
    base = zuko.lazy.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64), buffer=True
    )
    return zuko.lazy.Flow(transforms, base)


class MAFHyper(nn.Module):
    """Our MADE layer's (mu, alpha) as zuko's per-feature (shift, scale) pairs:
    u = (x - mu) exp(-alpha) = x exp(-alpha) - mu exp(-alpha)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        mu, alpha = self.layer.params(x)
        return torch.stack([-mu * torch.exp(-alpha), raw_scale(-alpha)], dim=-1).flatten(-2)


def test_maf_log_density_equals_zukos():
    torch.manual_seed(0)
    ours = randomize(build_model("maf", INFO, num_layers=3, hidden_sizes=(16,), batch_norm=False).double().eval(), 1, 0.4)
    layers = list(ours.flow.transform.transforms[0].transforms)
    assert len(layers) == 3
    transforms = []
    for layer in layers:
        peer = zuko.flows.MaskedAutoregressiveTransform(D, order=layer.ordering)
        peer.hyper = MAFHyper(layer)
        transforms.append(peer)
    x = torch.randn(20, D, dtype=torch.float64)
    with torch.no_grad():
        expected = zuko_flow(transforms)().log_prob(x)
        mine = ours.log_prob(x)
    assert torch.allclose(mine, expected, atol=1e-5, rtol=0), (mine - expected).abs().max()
    assert (mine - torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)).abs().max() > 0.1  # not the identity


class CouplingHyper(nn.Module):
    """Our coupling net on the masked vector, as zuko's params for the free features."""

    def __init__(self, coupling):
        super().__init__()
        self.coupling = coupling
        self.kept = coupling.mask.bool()

    def forward(self, x_a):
        full = x_a.new_zeros(len(x_a), D)
        full[:, self.kept] = x_a
        shift, log_scale = self.coupling._shift_and_log_scale(full)
        free = ~self.kept
        return torch.stack([shift[:, free], raw_scale(log_scale[:, free])], dim=-1).flatten(-2)


def test_realnvp_coupling_log_density_equals_zukos():
    torch.manual_seed(0)
    ours = build_model("realnvp", INFO, vector_couplings=4, vector_hidden=16, batch_norm=False).double().eval()
    ours = randomize(ours, 2, 0.4)
    couplings = list(ours.flow.transform.transforms[0].transforms)
    assert len(couplings) == 4
    transforms = []
    for coupling in couplings:
        peer = zuko.flows.GeneralCouplingTransform(D, mask=coupling.mask.bool())
        peer.hyper = CouplingHyper(coupling)
        transforms.append(peer)
    x = torch.randn(20, D, dtype=torch.float64)
    with torch.no_grad():
        expected = zuko_flow(transforms)().log_prob(x)
        mine = ours.log_prob(x)
    assert torch.allclose(mine, expected, atol=1e-5, rtol=0), (mine - expected).abs().max()
    assert (mine - torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)).abs().max() > 0.1
