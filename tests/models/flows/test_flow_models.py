"""Every registered flow as a whole, float64, randomised parameters: decode(encode(x)) = x
to 1e-5; log_prob(x) = log p_base(z) + log|det dz/dx| with the determinant taken from
the autograd Jacobian of the whole data -> noise map (preprocessing included) to 1e-6;
samples, temperature, registration, bad options."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.models import MODELS, ExactLikelihood, Invertible, build_model
from dgmbench.models.flows.flow import FlowModel
from flow_checks import jacobian_log_det, randomize

IMAGE = DataInfo(name="tiny", variant="dequantized", shape=(1, 4, 4), value_type="continuous", dequantization_levels=4)
VECTOR = DataInfo(name="tiny", variant="dequantized", shape=(6,), value_type="continuous", dequantization_levels=4)
PLANE = DataInfo(name="toy", variant="continuous", shape=(2,), value_type="continuous")

TINY = {
    "maf": (VECTOR, dict(num_layers=3, hidden_sizes=(10,))),
    "iaf": (VECTOR, dict(num_layers=3, hidden_sizes=(10,))),
    "nice": (VECTOR, dict(num_couplings=4, hidden=8, hidden_layers=2)),
    "planar_flow": (PLANE, dict(num_layers=4)),
    "radial_flow": (PLANE, dict(num_layers=4)),
    "realnvp": (IMAGE, dict(num_scales=2, residual_blocks=1, hidden_channels=4)),
    "realnvp_vector": (PLANE, dict(vector_couplings=4, vector_hidden=8)),
    "glow": (IMAGE, dict(num_levels=2, steps_per_level=2, hidden_channels=4)),
    "glow_additive_plain": (IMAGE, dict(num_levels=2, steps_per_level=1, hidden_channels=4, coupling="additive", lu_decomposed=False)),
}
FLOWS = ["glow", "iaf", "maf", "nice", "planar_flow", "radial_flow", "realnvp"]


# IAF's inverse divides by sigmoid gates: stacked random layers with larger weights push
# the noise to ~1e4 and the gates to underflow, which is the parameters' fault, not the map's.
SCALES = {"iaf": 0.1}


def tiny(name: str, seed: int = 0, scale: float | None = None):
    info, options = TINY[name]
    scale = SCALES.get(name, 0.3) if scale is None else scale
    torch.manual_seed(seed)
    model = build_model(name.split("_vector")[0].split("_additive")[0], info, **options).double().eval()
    return (randomize(model, seed, scale) if scale > 0 else model), info


def data_for(info: DataInfo, n: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if info.dequantization_levels:
        return torch.rand(n, *info.shape, generator=generator, dtype=torch.float64) * 0.9 + 0.05
    return torch.randn(n, *info.shape, generator=generator, dtype=torch.float64)


def test_every_flow_is_registered_with_the_flow_protocol():
    assert sorted(n for n, cls in MODELS.items() if cls.family == "flow") == FLOWS
    for name in FLOWS:
        cls = MODELS.get(name)
        assert issubclass(cls, FlowModel) and issubclass(cls, ExactLikelihood) and issubclass(cls, Invertible)
        assert cls.citation and cls.__module__ == f"dgmbench.models.flows.{name.replace('_flow', '')}"
        assert cls.quick_variant() == "dequantized"


@pytest.mark.parametrize("name", sorted(TINY))
def test_whole_flow_inverts_and_its_log_density_matches_the_autograd_jacobian(name):
    model, info = tiny(name)
    x = data_for(info)
    with torch.no_grad():
        z = model.encode(x)
        x_back = model.decode(z)
        log_p = model.log_prob(x)
    assert z.shape == (len(x), info.dim)
    assert torch.allclose(x_back, x, atol=1e-5, rtol=0), (x_back - x).abs().max()
    log_det = jacobian_log_det(lambda v: model.encode(v.reshape(len(v), *info.shape)), x.reshape(len(x), -1))
    expected = model.flow.base.log_prob(z) + log_det
    assert torch.allclose(log_p, expected, atol=1e-6, rtol=0), (log_p, expected)
    assert log_det.abs().max() > 1e-2  # the randomised flow really changes volume


@pytest.mark.parametrize("name", ["maf", "realnvp", "glow", "nice", "planar_flow"])
def test_sampling_shapes_temperature_and_training_step(name):
    model, info = tiny(name, scale=0)  # as initialised for training
    model.float()
    torch.manual_seed(1)
    samples = model.sample(64)
    cold = model.sample(64, temperature=0.0)  # T = 0: every sample is decode(0)
    assert samples.shape == (64, *info.shape) and torch.isfinite(samples).all()
    assert torch.allclose(cold, cold[:1].expand_as(cold), atol=1e-5)
    if info.dequantization_levels:
        assert samples.min() >= 0 and samples.max() <= 1
    model.train()
    from dgmbench.models import TrainConfig

    train = TrainConfig(lr=1e-3)
    step = model.training_step(data_for(info, 16).float(), model.configure_optimizers(train), train)
    assert math.isfinite(step["loss"])


def test_flows_take_only_continuous_data_and_check_options():
    binary = DataInfo(name="tiny", variant="binary", shape=(4,), value_type="binary", num_levels=2)
    with pytest.raises(ValueError, match="continuous"):
        build_model("maf", binary)
    with pytest.raises(ValueError, match="image"):
        build_model("glow", VECTOR)
    with pytest.raises(ValueError, match="divisible"):
        build_model("glow", IMAGE, num_levels=3)
    with pytest.raises(ValueError, match="coupling"):
        build_model("glow", IMAGE, coupling="spline", num_levels=1)
    with pytest.raises(ValueError, match="prior"):
        build_model("nice", VECTOR, prior="cauchy")


def test_likelihood_protocol_states_the_density_space():
    model, _ = tiny("realnvp")
    protocol = model.likelihood_protocol()
    assert protocol["density_space"] == "[0,1]"
    assert protocol["preprocessing"] == ["logit(alpha + (1 - 2 alpha) x), alpha = 0.05"]
    planar, _ = tiny("planar_flow")
    assert planar.likelihood_protocol()["density_space"] == "R^D"
    assert planar.likelihood_protocol()["preprocessing"] == ["none"]


def test_layers_serve_as_a_posterior_in_the_noise_to_z_direction():
    """VAE-posterior use (planar, radial, IAF): z = T(eps) in one forward pass with
    log q(z) = log N(eps) - log|det dT/deps|; the same q evaluated as a flow density at z
    (through the inverse) agrees, so the forward-direction formula is the right density."""
    from dgmbench.models.flows.flow import Flow, StandardNormal
    from dgmbench.models.flows.transforms import Chain, InverseTransform, MaskedAutoregressiveAffine, Planar, Radial

    torch.manual_seed(0)
    posterior = randomize(Chain([Planar(4), Radial(4), MaskedAutoregressiveAffine(4, (8,), parameterisation="iaf"), Planar(4)]), 0, 0.3).double()
    assert posterior.cheap_direction == "forward"
    eps = torch.randn(16, 4, dtype=torch.float64)
    with torch.no_grad():
        z, log_det = posterior(eps)
        log_q = StandardNormal(4).log_prob(eps) - log_det
        as_density = Flow(InverseTransform(posterior), StandardNormal(4), (4,)).log_prob(z)
    assert torch.allclose(log_q, as_density, atol=1e-8)
    assert (log_det.abs() > 1e-3).all()
