"""RNADE: autoregressive property (autograd), the vectorised density against a direct
per-dimension scipy implementation, normalisation by 2-D numerical integration, the
sampler against the model's own conditionals (probability integral transform + KS), and
a model trained on a known Gaussian recovering its entropy and its distribution."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit, softmax

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models.base import MODELS, TrainConfig, build_model
from dgmbench.models.autoregressive.rnade import RNADE


def continuous_info(dim: int) -> DataInfo:
    return DataInfo(name="toy", variant="continuous", shape=(dim,), value_type="continuous")


def randomized(model: RNADE, seed: int) -> RNADE:
    """Parameters far from their initialisation, so every part of the density matters."""
    generator = torch.Generator().manual_seed(seed)
    k = model.config.num_components
    with torch.no_grad():
        model.input_weight.copy_(torch.randn(model.input_weight.shape, generator=generator) * 1.5)
        model.hidden_bias.copy_(torch.randn(model.hidden_bias.shape, generator=generator))
        model.rho.copy_(0.5 + torch.rand(model.rho.shape, generator=generator))
        model.output_weight.copy_(torch.randn(model.output_weight.shape, generator=generator))
        model.output_bias.copy_(torch.randn(model.output_bias.shape, generator=generator))
        # Widths exp(-1.2 .. 0.3): peaked, yet resolved by the 0.06 integration grid.
        model.output_weight[:, :, 2 * k :] *= 0.1
        model.output_bias[:, 2 * k :] = -1.2 + 1.5 * torch.rand(model.output_bias[:, 2 * k :].shape,
                                                                   generator=generator)
    return model


def test_registered_with_metadata():
    cls = MODELS.get("rnade")
    assert cls is RNADE
    assert cls.family == "autoregressive"
    assert cls.value_types == ("continuous",)
    assert "Uria" in cls.citation


def test_rejects_binary_data():
    info = DataInfo(name="toy", variant="binary", shape=(4,), value_type="binary", num_levels=2)
    with pytest.raises(ValueError, match="continuous"):
        build_model("rnade", info)


def test_autoregressive_property_by_autograd():
    torch.manual_seed(0)
    dim = 6
    model = randomized(build_model("rnade", continuous_info(dim), hidden_size=10, num_components=3), 0)
    x = torch.randn(dim)
    for part in range(3):  # mixing weights, means, standard deviations
        jacobian = torch.autograd.functional.jacobian(
            lambda v: model.conditional_params(v[None])[part][0], x
        )  # (D, K, D): d param[d, k] / d x_j
        influence = jacobian.abs().sum(1)  # [d, j]
        assert torch.all(torch.triu(influence) == 0), "a conditional sees x_d itself or a later x_j"
        assert torch.count_nonzero(torch.tril(influence, diagonal=-1)) > 0


def reference_log_density(model: RNADE, x: np.ndarray) -> np.ndarray:
    """The paper's recurrence, one example and one dimension at a time, with scipy's normal."""
    W = model.input_weight.detach().double().numpy()
    c = model.hidden_bias.detach().double().numpy()
    rho = model.rho.detach().double().numpy()
    V = model.output_weight.detach().double().numpy()
    b = model.output_bias.detach().double().numpy()
    k = model.config.num_components
    out = []
    for example in x:
        total = 0.0
        for d in range(len(example)):
            a = c + W[:, :d] @ example[:d]
            h = expit(rho[d] * a)
            params = h @ V[d] + b[d]
            alpha = softmax(params[:k])
            density = np.sum(alpha * stats.norm.pdf(example[d], params[k : 2 * k], np.exp(params[2 * k :])))
            total += np.log(density)
        out.append(total)
    return np.array(out)


def test_log_density_matches_direct_recurrence():
    torch.manual_seed(1)
    model = randomized(build_model("rnade", continuous_info(5), hidden_size=8, num_components=4), 1).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    with torch.no_grad():
        ours = model.log_prob(x).numpy()
    np.testing.assert_allclose(ours, reference_log_density(model, x.numpy()), rtol=1e-10, atol=1e-10)


def test_density_integrates_to_one_in_2d():
    model = randomized(build_model("rnade", continuous_info(2), hidden_size=12, num_components=3), 2).double()
    grid = np.linspace(-12.0, 12.0, 401)  # spacing 0.06 vs widths >= 0.3: trapezoid is exact here
    x1, x2 = np.meshgrid(grid, grid, indexing="ij")
    points = torch.from_numpy(np.stack([x1.ravel(), x2.ravel()], axis=1))
    with torch.no_grad():
        density = torch.exp(model.log_prob(points)).numpy().reshape(x1.shape)
    total = np.trapezoid(np.trapezoid(density, grid, axis=1), grid)
    assert total == pytest.approx(1.0, abs=1e-4)
    assert density.max() > 0.05  # a peaked density, not a flat one that is trivially normalised


def test_sampler_matches_its_own_conditionals():
    """Probability integral transform: u_d = F(x_d | x_<d) of genuine samples are iid U(0,1)."""
    torch.manual_seed(3)
    model = randomized(build_model("rnade", continuous_info(4), hidden_size=10, num_components=3), 3).double()
    samples = model.sample(4000)
    with torch.no_grad():
        log_alpha, mean, std = model.conditional_params(samples)
    cdf = (log_alpha.exp() * torch.special.ndtr((samples[:, :, None] - mean) / std)).sum(-1).numpy()
    for d in range(4):
        assert stats.kstest(cdf[:, d], "uniform").pvalue > 1e-3
    # The transformed coordinates are also uncorrelated (independence across dimensions).
    correlation = np.corrcoef(cdf.T) - np.eye(4)
    assert np.abs(correlation).max() < 0.06


def test_trained_on_a_known_gaussian():
    torch.manual_seed(4)
    mean = torch.tensor([1.0, -1.0])
    covariance = torch.tensor([[1.0, 0.4], [0.4, 0.25]])  # correlation 0.8
    truth = torch.distributions.MultivariateNormal(mean, covariance)
    train_x, test_x = truth.sample((4000,)), truth.sample((20000,))
    model = build_model("rnade", continuous_info(2), hidden_size=16, num_components=3)
    train = TrainConfig(lr=1e-2, batch_size=500)
    optimizers = model.configure_optimizers(train)
    for _ in range(40):
        for batch in train_x[torch.randperm(len(train_x))].split(500):
            model.training_step(batch, optimizers, train)
    with torch.no_grad():
        nll = -model.log_prob(test_x).mean().item()
    entropy = truth.entropy().item()
    assert entropy - 0.02 < nll < entropy + 0.05

    samples = model.sample(3000).double().numpy()
    assert stats.kstest(samples[:, 0], stats.norm(1.0, 1.0).cdf).pvalue > 1e-3
    # x2 | x1 ~ N(-1 + 0.4 (x1 - 1), 0.25 - 0.16): its PIT must be uniform too.
    conditional = stats.norm(-1.0 + 0.4 * (samples[:, 0] - 1.0), math.sqrt(0.25 - 0.16))
    assert stats.kstest(conditional.cdf(samples[:, 1]), "uniform").pvalue > 1e-3


def test_data_dependent_initialisation_runs_once():
    torch.manual_seed(5)
    model = build_model("rnade", continuous_info(3), hidden_size=8, num_components=4)
    x = torch.rand(50, 3) * 0.1 + 5.0
    train = TrainConfig(lr=1e-3)
    optimizers = model.configure_optimizers(train)
    assert not bool(model.initialized)
    model.training_step(x, optimizers, train)
    assert bool(model.initialized)
    means = model.output_bias[:, 4:8]
    assert torch.all((means > 5.0) & (means < 5.1))
    assert "initialized" in model.state_dict()
    before = model.output_bias.detach().clone()
    model.training_step(x + 10.0, optimizers, train)
    assert (model.output_bias - before).abs().max() < 0.01  # one Adam step, no re-initialisation


def test_loss_gradients_reach_every_parameter():
    torch.manual_seed(6)
    model = build_model("rnade", continuous_info(5), hidden_size=8, num_components=3)
    model.loss(torch.randn(20, 5)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_quick_config_learns_dequantized_digits():
    """Dequantized digits live in [0,1]^64, where the uniform density scores NLL 0: the quick
    model must be far better, and its samples must have the data's shape."""
    torch.manual_seed(7)
    data = load_dataset("digits", RNADE.quick_variant())
    model = build_model("rnade", data.info, **RNADE.quick_config(data.info))
    train = TrainConfig(**RNADE.quick_train(data.info))
    optimizers = model.configure_optimizers(train)
    for epoch in range(train.epochs):
        x = data.train_epoch(epoch)
        for batch in x[torch.randperm(len(x))].split(train.batch_size):
            model.training_step(batch, optimizers, train)
    with torch.no_grad():
        nll = -model.log_prob(data.split("test")).mean().item()
    assert nll < -30.0
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8) and torch.isfinite(samples).all()
