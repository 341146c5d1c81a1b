"""Every transform: exact inversion to 1e-5 and the analytic log|det J| equal to
log|det| of the autograd Jacobian to 1e-6, in float64, with randomised parameters that
change volume; autoregressive layers have a triangular Jacobian in their ordering."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dgmbench.models.flows import nets
from dgmbench.models.flows.transforms import (
    ActNorm,
    BatchNormBijection,
    Chain,
    ChannelCoupling,
    Coupling,
    DiagonalScaling,
    ElementwiseAffine,
    FixedAffine,
    InverseTransform,
    InvertibleConv1x1,
    Logit,
    MaskedAutoregressiveAffine,
    MultiScale,
    Planar,
    Radial,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from flow_checks import check_transform, full_jacobian, randomize

torch.set_default_dtype(torch.float32)


def gaussian(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def unit_interval(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.98 + 0.01


def conv_net(channels, out_channels):
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, out_channels, 3, padding=1))


ELEMENTWISE = {
    "fixed_affine": (lambda: FixedAffine(2.5, -0.5), lambda: gaussian(3, 4)),
    "logit": (lambda: Logit(0.05), lambda: unit_interval(3, 4)),
    "logit_maf": (lambda: Logit(1e-6), lambda: unit_interval(3, 4)),
    "diagonal_scaling": (lambda: randomize(DiagonalScaling((4,))), lambda: gaussian(3, 4)),
    "actnorm_image": (lambda: randomize(ActNorm(3)), lambda: gaussian(2, 3, 2, 2)),
    "batchnorm_image": (lambda: randomize(BatchNormBijection(3)), lambda: gaussian(2, 3, 2, 2)),
    "batchnorm_vector": (lambda: randomize(BatchNormBijection(4)), lambda: gaussian(3, 4)),
    "elementwise_affine": (lambda: randomize(ElementwiseAffine(3)), lambda: gaussian(2, 3, 2, 2)),
    "squeeze_then_conv": (lambda: Chain([Squeeze(), randomize(InvertibleConv1x1(4, lu=False))]), lambda: gaussian(2, 1, 4, 2)),
    "conv1x1_plain": (lambda: randomize(InvertibleConv1x1(3, lu=False), scale=0.8), lambda: gaussian(2, 3, 2, 2)),
    "conv1x1_lu": (lambda: randomize(InvertibleConv1x1(4, lu=True), scale=0.5), lambda: gaussian(2, 4, 2, 1)),
    "planar_2d": (lambda: randomize(Planar(2), scale=1.5), lambda: gaussian(4, 2)),
    "planar_5d": (lambda: randomize(Planar(5), scale=1.0), lambda: gaussian(4, 5)),
    "radial_2d": (lambda: randomize(Radial(2), scale=1.0), lambda: gaussian(4, 2)),
    "radial_4d": (lambda: randomize(Radial(4), scale=1.0), lambda: gaussian(4, 4)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_simple_transforms(name):
    make, data = ELEMENTWISE[name]
    check_transform(make(), data())


COUPLINGS = {
    "additive_alternating": lambda: Coupling(alternating_mask(6, 0), nets.mlp(6, 8, 2, 6), affine=False),
    "affine_tanh_alternating": lambda: Coupling(alternating_mask(6, 1), nets.mlp(6, 8, 2, 12), scale="tanh"),
    "affine_exp_checkerboard": lambda: Coupling(checkerboard_mask(2, 2, 2, 0), conv_net(2, 4), scale="exp"),
    "affine_tanh_checkerboard": lambda: Coupling(checkerboard_mask(2, 2, 2, 1), conv_net(2, 4), scale="tanh"),
    "affine_sigmoid_channel": lambda: Coupling(channel_mask(4, 2, 1, 0), conv_net(4, 8), scale="sigmoid"),
    "affine_tanh_channel_odd": lambda: Coupling(channel_mask(4, 2, 1, 1), conv_net(4, 8), scale="tanh"),
}


@pytest.mark.parametrize("name", sorted(COUPLINGS))
def test_couplings(name):
    coupling = randomize(COUPLINGS[name](), scale=0.6)
    x = gaussian(3, 6) if coupling.mask.dim() == 1 else gaussian(3, *coupling.mask.shape)
    if not coupling.affine:
        coupling.volume_preserving = True  # additive coupling: log|det| = 0 exactly
    y, _ = check_transform(coupling, x)
    # the conditioning half passes through unchanged, the other half changes
    assert torch.equal(y * coupling.mask, x.double() * coupling.mask)
    assert ((y - x.double()) * (1 - coupling.mask)).abs().max() > 1e-2


@pytest.mark.parametrize("scale,affine,parity", [("sigmoid", True, 0), ("tanh", True, 1), ("exp", True, 0), ("exp", False, 1)])
def test_channel_coupling(scale, affine, parity):
    coupling = randomize(ChannelCoupling(4, conv_net(2, 4 if affine else 2), affine=affine, scale=scale, parity=parity), scale=0.6)
    coupling.volume_preserving = not affine
    x = gaussian(3, 4, 2, 2)
    y, _ = check_transform(coupling, x)
    kept = slice(0, 2) if parity == 0 else slice(2, 4)
    assert torch.equal(y[:, kept], x[:, kept])


def test_channel_coupling_is_the_masked_coupling_with_a_narrower_net():
    """Same map as Coupling(channel_mask) when the masked net ignores the zeroed half and
    writes the same parameters into the free half."""
    narrow = randomize(conv_net(2, 4), scale=0.6).double()

    class Wide(nn.Module):
        def forward(self, masked):
            raw, shift = narrow(masked[:, :2]).chunk(2, dim=1)
            zeros = torch.zeros_like(raw)
            return torch.cat([zeros, raw, zeros, shift], dim=1)

    channel = ChannelCoupling(4, narrow, scale="sigmoid").double()
    masked = Coupling(channel_mask(4, 2, 2, 0), Wide(), scale="sigmoid").double()
    x = gaussian(3, 4, 2, 2)
    y1, l1 = channel(x)
    y2, l2 = masked(x)
    assert torch.allclose(y1, y2) and torch.allclose(l1, l2)


@pytest.mark.parametrize("parameterisation", ["maf", "iaf"])
def test_masked_autoregressive_jacobian_is_triangular_in_its_ordering(parameterisation):
    dim = 5
    ordering = torch.tensor([3, 0, 4, 1, 2])
    layer = randomize(MaskedAutoregressiveAffine(dim, (12, 12), ordering, parameterisation), scale=0.5)
    x = gaussian(4, dim)
    check_transform(layer, x)
    jac = full_jacobian(lambda v: layer(v)[0], x[0])
    permuted = jac[ordering][:, ordering]  # rows and columns in the stated order
    assert torch.all(torch.triu(permuted, 1) == 0)  # output o_i ignores inputs after o_i
    assert torch.all(torch.tril(permuted, -1)[1:].abs().sum(1) > 0)  # and depends on earlier ones
    # the diagonal is the per-dimension scale whose logs the layer sums
    assert torch.allclose(torch.log(torch.diagonal(jac).abs()).sum(), layer(x[:1])[1][0])


def test_inverse_transform_swaps_directions_and_cheapness():
    layer = randomize(MaskedAutoregressiveAffine(4, (10,), parameterisation="iaf"), scale=0.5)
    inverted = InverseTransform(layer)
    assert layer.cheap_direction == "forward" and inverted.cheap_direction == "inverse"
    x = gaussian(3, 4)
    check_transform(inverted, x)
    assert torch.allclose(inverted(x)[0], layer.inverse(x)[0])


def test_chain_adds_log_dets_and_inverts_in_reverse():
    chain = Chain([
        Logit(0.05),
        randomize(MaskedAutoregressiveAffine(4, (10,), torch.tensor([3, 2, 1, 0])), scale=0.5),
        randomize(BatchNormBijection(4)),
        randomize(Planar(4), scale=1.0),
    ])
    check_transform(chain, unit_interval(3, 4))


def test_multiscale_is_a_bijection_with_factored_out_channels():
    inner = MultiScale(Chain([Squeeze(), randomize(ElementwiseAffine(8))]), (8, 1, 1))
    level = Chain([
        randomize(Coupling(checkerboard_mask(1, 4, 4, 0), conv_net(1, 2), scale="tanh"), scale=0.5),
        Squeeze(),
        randomize(Coupling(channel_mask(4, 2, 2, 0), conv_net(4, 8), scale="exp"), scale=0.4),
    ])
    flow = MultiScale(level, (4, 2, 2), inner)
    x = gaussian(2, 1, 4, 4)
    z, _ = check_transform(flow, x)
    assert z.shape == (2, 16)
    # the factored-out half is level's output channels 2..3, untouched by the next scale
    h, _ = level.double()(x)
    assert torch.equal(z[:, :8], h[:, 2:].flatten(1))


def test_planar_enforces_invertibility_constraint():
    planar = Planar(3)
    with torch.no_grad():
        planar.w.copy_(torch.tensor([1.0, 0.0, 0.0]))
        planar.u.copy_(torch.tensor([-5.0, 1.0, 0.0]))  # w^T u = -5 < -1: not invertible raw
    assert planar.w @ planar.u_hat() > -1
    check_transform(planar, gaussian(5, 3) * 2)


def test_actnorm_data_dependent_initialisation():
    actnorm = ActNorm(3).double().train()
    x = gaussian(64, 3, 4, 4) * torch.tensor([2.0, 0.5, 3.0]).double()[:, None, None] + 1.0
    y, _ = actnorm(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert bool(actnorm.initialized)
    before = actnorm.bias.clone()
    actnorm(x * 2)
    assert torch.equal(before, actnorm.bias)  # only the first batch initialises


def test_batchnorm_uses_batch_statistics_in_training_and_running_ones_in_evaluation():
    bn = BatchNormBijection(2, momentum=0.5).double()
    x = gaussian(50, 2) * 3 + 2
    y, log_det = bn.train()(x)
    assert torch.allclose(y.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(log_det, -0.5 * torch.log(x.var(0, unbiased=False) + bn.eps).sum().expand(50))
    assert torch.allclose(bn.running_mean, 0.5 * x.mean(0))
    y_eval, _ = bn.eval()(x)
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(y_eval, expected)


def test_bad_arguments_fail_with_one_line_errors():
    with pytest.raises(ValueError, match="alpha"):
        Logit(0.5)
    with pytest.raises(ValueError, match="scale"):
        Coupling(alternating_mask(4, 0), nets.mlp(4, 4, 1, 8), scale="softplus")
    with pytest.raises(ValueError, match="even"):
        Squeeze()(torch.zeros(1, 1, 3, 3))
