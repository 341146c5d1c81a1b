"""Parzen-window log-likelihood against scipy's Gaussian mixture densities."""
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm
from test_prdc import ReplayModel, quick_context

from dgmbench.data import load_dataset
from dgmbench.metrics.base import METRICS
from dgmbench.metrics.parzen import SIGMA_GRID, parzen_log_density, parzen_window_ll


def scipy_parzen(x, centres, sigma):
    """log (1/n) sum_j N(x; mu_j, sigma^2 I), one scipy Gaussian per kernel centre."""
    dim = centres.shape[1]
    per_kernel = np.stack([multivariate_normal(mu, sigma**2 * np.eye(dim)).logpdf(x) for mu in centres])
    return logsumexp(per_kernel, axis=0) - math.log(len(centres))


def scipy_parzen_factorised(x, centres, sigma):
    """The same through scipy's univariate normal: an isotropic Gaussian is a product over
    dimensions (cheaper than one multivariate_normal per centre in 64 dimensions)."""
    per_kernel = norm.logpdf(x[:, None, :], loc=centres[None, :, :], scale=sigma).sum(axis=2)
    return logsumexp(per_kernel, axis=1) - math.log(len(centres))


@pytest.mark.parametrize("max_block_elements", [1, 50, 2**24])
def test_matches_scipy_mixture(max_block_elements):
    rng = np.random.default_rng(0)
    centres, x = rng.uniform(size=(25, 4)), rng.uniform(size=(9, 4))
    sigmas = [0.05, 0.2, 1.0]
    got = parzen_log_density(torch.from_numpy(x), torch.from_numpy(centres), sigmas, max_block_elements)
    assert got.shape == (9, 3) and got.dtype == torch.float64
    for column, sigma in enumerate(sigmas):
        np.testing.assert_allclose(got[:, column].numpy(), scipy_parzen(x, centres, sigma), rtol=1e-10, atol=1e-10)


def test_image_shaped_and_float32_inputs_are_flattened():
    rng = np.random.default_rng(1)
    centres = rng.uniform(size=(30, 1, 2, 3)).astype(np.float32)
    x = rng.uniform(size=(5, 1, 2, 3)).astype(np.float32)
    got = parzen_log_density(torch.from_numpy(x), torch.from_numpy(centres), [0.3])[:, 0]
    expected = scipy_parzen(x.reshape(5, -1).astype(np.float64), centres.reshape(30, -1).astype(np.float64), 0.3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_protocol_selects_sigma_on_validation_and_reports_test_mean_and_stderr():
    rng = np.random.default_rng(2)
    samples, valid, test = rng.uniform(size=(40, 3)), rng.uniform(size=(15, 3)), rng.uniform(size=(12, 3))
    result = parzen_window_ll(torch.from_numpy(samples), torch.from_numpy(valid), torch.from_numpy(test))
    validation_means = [scipy_parzen(valid, samples, s).mean() for s in SIGMA_GRID]
    np.testing.assert_allclose(result.validation_means, validation_means, rtol=1e-10)
    assert result.sigma == pytest.approx(SIGMA_GRID[int(np.argmax(validation_means))])
    assert len(SIGMA_GRID) == 10 and SIGMA_GRID[0] == pytest.approx(0.1) and SIGMA_GRID[-1] == pytest.approx(1.0)
    per_example = scipy_parzen(test, samples, result.sigma)
    assert result.mean == pytest.approx(per_example.mean(), rel=1e-10)
    assert result.stderr == pytest.approx(per_example.std(ddof=1) / math.sqrt(len(test)), rel=1e-8)


def test_approaches_true_log_density_of_a_gaussian():
    """With plenty of samples and a well-chosen sigma the estimate is close to the true
    mean log-density (the kernel widens the Gaussian a little, so only roughly)."""
    generator = torch.Generator().manual_seed(0)
    dim = 2
    samples = torch.randn(2000, dim, generator=generator, dtype=torch.float64)
    valid = torch.randn(300, dim, generator=generator, dtype=torch.float64)
    test = torch.randn(500, dim, generator=generator, dtype=torch.float64)
    result = parzen_window_ll(samples, valid, test, sigmas=np.logspace(-1.5, 0, 10))
    true_mean = multivariate_normal(np.zeros(dim), np.eye(dim)).logpdf(test.numpy()).mean()
    assert result.mean == pytest.approx(true_mean, abs=0.05)  # measured: 0.003
    assert 0.1 < result.sigma < 0.6  # not an end of the grid
    # and a needlessly narrow kernel is worse, as it should be
    narrow = parzen_log_density(test, samples, [0.03]).mean().item()
    assert narrow < result.mean - 0.1


# --- the registered metric -----------------------------------------------------------------------


def test_registered_parzen_ll_follows_the_protocol_on_scaled_data():
    data = load_dataset("digits", "17level")
    model = ReplayModel(data.split("train"), data.info)
    ctx = quick_context(parzen_samples=150)
    (value,) = METRICS.get("parzen_ll")(model, data, ctx)
    assert value.name == "parzen_ll" and value.unit == "nats" and value.kind == "estimate"
    assert value.higher_is_better and value.n == 360
    protocol = value.protocol
    assert "Theis" in protocol["caveat"] and protocol["n_samples"] == 150
    assert protocol["sigma"] in protocol["sigma_grid"] and protocol["sigma_split"] == "valid"
    assert protocol["data_scale"].startswith("levels / 16")
    # the same samples (seeded, in batches of ctx.batch_size), scaled by hand, through scipy
    torch.manual_seed(ctx.seed)
    samples = torch.cat([model.sample(100), model.sample(50)]).flatten(1).double().numpy() / 16
    test = data.split("test").flatten(1).double().numpy() / 16
    expected = scipy_parzen_factorised(test, samples, protocol["sigma"])
    assert value.value == pytest.approx(expected.mean(), rel=1e-9)
    assert value.stderr == pytest.approx(expected.std(ddof=1) / math.sqrt(len(test)), rel=1e-6)
