"""PixelCNN++: the discretized logistic mixture against scipy's logistic CDF and its
normalisation over all L values (L = 2, 17, 256, and jointly over coupled colour channels),
exact sampling from it (chi-square), whole-pixel autoregressive dependencies with no blind
spot (autograd), whole-model normalisation by enumeration, exact row-truncated sampling."""

import math

import pytest
import torch
from scipy import stats

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models import MODELS, build_model
from dgmbench.models.layers import discretized_logistic as dlm
from dgmbench.models.autoregressive.layers.checks import (
    dependency_matrix,
    enumerate_values,
    flat_index,
)

TINY = {"filters": 6, "nr_resnet": 1, "num_scales": 2, "num_mixtures": 2, "dropout": 0.0}


def info(shape, levels):
    value_type = "binary" if levels == 2 else "discrete"
    return DataInfo(name="toy", variant=value_type, shape=shape, value_type=value_type, num_levels=levels)


def model(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("pixelcnn_pp", info(shape, levels), **{**TINY, **overrides}).double()


def random_params(channels, mixtures, n=7, seed=0, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    return spread * torch.randn(
        n, dlm.num_parameters(channels, mixtures), 1, 1, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("levels", [2, 17, 256])
@pytest.mark.parametrize("spread", [0.5, 4.0])
def test_masses_of_all_levels_sum_to_one(levels, spread):
    params = random_params(1, 3, spread=spread)
    values = torch.arange(levels, dtype=torch.float64).view(levels, 1, 1, 1)
    log_p = torch.stack([dlm.log_prob(params, v.expand(len(params), 1, 1, 1), levels, 3) for v in values])
    torch.testing.assert_close(log_p.exp().sum(0), torch.ones(len(params), 1, 1, dtype=torch.float64))


def test_mass_of_a_bin_matches_scipy_logistic_cdf():
    levels, mixtures = 17, 3
    params = random_params(1, mixtures, n=1, seed=3)[0, :, 0, 0]
    weights = torch.softmax(params[:mixtures], 0).numpy()
    means, log_scales = params[mixtures : 2 * mixtures].numpy(), params[2 * mixtures :].clamp(min=-7).numpy()
    half = 1 / (levels - 1)
    for level in [0, 1, 8, 15, 16]:
        x = -1 + 2 * level / (levels - 1)
        upper = math.inf if level == levels - 1 else x + half
        lower = -math.inf if level == 0 else x - half
        expected = sum(
            w * (stats.logistic.cdf(upper, m, math.exp(s)) - stats.logistic.cdf(lower, m, math.exp(s)))
            for w, m, s in zip(weights, means, log_scales)
        )
        got = dlm.log_prob(
            params.view(1, -1, 1, 1),
            torch.full((1, 1, 1, 1), float(level), dtype=torch.float64),
            levels,
            mixtures,
        )
        assert got.exp().item() == pytest.approx(expected, rel=1e-9)


def test_coupled_colour_channels_normalise_jointly_and_match_the_chain_rule():
    levels, mixtures = 5, 2
    params = random_params(3, mixtures, n=4, seed=1)
    pixels = enumerate_values((3, 1, 1), levels).double()  # 125 colours
    log_p = torch.stack(
        [dlm.log_prob(params, p.expand(4, 3, 1, 1), levels, mixtures)[:, 0, 0] for p in pixels]
    )
    torch.testing.assert_close(log_p.exp().sum(0), torch.ones(4, dtype=torch.float64))
    # single component: the G mean moves with R by tanh(coefficient) (Eq. 3), checked with scipy
    one = random_params(3, 1, n=1, seed=2)[0, :, 0, 0]
    mean_g, log_scale_g, alpha = one[2].item(), max(one[5].item(), -7), math.tanh(one[7].item())
    red, green = 3, 1
    x_r, x_g = -1 + 2 * red / 4, -1 + 2 * green / 4
    p_g_given_r = stats.logistic.cdf(
        x_g + 0.25, mean_g + alpha * x_r, math.exp(log_scale_g)
    ) - stats.logistic.cdf(x_g - 0.25, mean_g + alpha * x_r, math.exp(log_scale_g))
    joint_rg = [
        dlm.log_prob(
            one.view(1, -1, 1, 1), torch.tensor([[[[red]], [[green]], [[b]]]], dtype=torch.float64), 5, 1
        )
        .exp()
        .item()
        for b in range(5)
    ]
    marginal_r = sum(
        dlm.log_prob(
            one.view(1, -1, 1, 1), torch.tensor([[[[red]], [[g]], [[b]]]], dtype=torch.float64), 5, 1
        )
        .exp()
        .item()
        for g in range(5)
        for b in range(5)
    )
    assert sum(joint_rg) / marginal_r == pytest.approx(p_g_given_r, rel=1e-9)


def test_mixture_samples_follow_the_exact_masses():
    levels, mixtures = 3, 2
    params = random_params(3, mixtures, n=1, seed=4, spread=1.0)
    pixels = enumerate_values((3, 1, 1), levels).double()
    pmf = torch.cat(
        [dlm.log_prob(params, p.view(1, 3, 1, 1), levels, mixtures).exp().view(1) for p in pixels]
    )
    torch.manual_seed(0)
    draws = dlm.sample(params.expand(20000, -1, -1, -1), 3, levels, mixtures)
    counts = torch.bincount(flat_index(draws, levels), minlength=27).double()
    assert stats.chisquare(counts, 20000 * pmf / pmf.sum()).pvalue > 1e-3


@pytest.mark.parametrize("shape, scales", [((1, 4, 4), 2), ((3, 4, 4), 3)])
def test_pixel_parameters_see_exactly_the_earlier_pixels(shape, scales):
    channels, height, width = shape
    m = model(shape, 5, num_scales=scales, filters=8)
    x = torch.randint(5, (8, *shape), generator=torch.Generator().manual_seed(0)).double()
    deps = dependency_matrix(lambda z: m.mixture_params(z).sum(1, keepdim=True), x, 1)
    per_pixel = deps.view(height * width, channels, height * width).sum(1)  # [output pixel, input pixel]
    index = torch.arange(height * width)
    assert per_pixel[index[None, :] >= index[:, None]].max() == 0  # no pixel sees itself or the future
    assert per_pixel[index[None, :] < index[:, None]].min() > 0  # and no blind spot


@pytest.mark.parametrize("shape, levels, scales", [((1, 2, 2), 3, 2), ((3, 1, 2), 2, 1), ((1, 3, 4), 2, 1)])
def test_probabilities_of_all_images_sum_to_one(shape, levels, scales):
    m = model(shape, levels, num_scales=scales)
    with torch.no_grad():
        total = m.log_prob(enumerate_values(shape, levels).double()).exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_row_truncated_network_gives_the_full_networks_parameters():
    m = model((2, 8, 8), 4, num_scales=3)
    x = torch.randint(4, (3, 2, 8, 8), generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        full = m.mixture_params(x)
        for row in range(8):
            visible = min(8, -(-(row + 1) // 4) * 4)
            torch.testing.assert_close(m.mixture_params(x[:, :, :visible])[:, :, row], full[:, :, row])


def test_model_samples_match_its_exact_distribution():
    shape, levels = (1, 2, 2), 3
    m = model(shape, levels, num_scales=2)
    images = enumerate_values(shape, levels).double()
    with torch.no_grad():
        pmf = m.log_prob(images).exp()
    torch.manual_seed(5)
    counts = torch.bincount(flat_index(m.sample(6000), levels), minlength=81).double()
    assert stats.chisquare(counts, 6000 * pmf / pmf.sum()).pvalue > 1e-3


def test_training_fits_a_known_distribution():
    shape, levels = (1, 2, 2), 2
    target = torch.tensor([8, 1, 1, 1, 1, 4, 1, 1, 1, 1, 6, 1, 1, 1, 1, 8], dtype=torch.float64)
    target /= target.sum()
    images = enumerate_values(shape, levels).double()
    m = model(shape, levels, num_scales=1, filters=8)
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    for _ in range(150):
        opt.zero_grad()
        (-(m.log_prob(images) * target).sum()).backward()
        opt.step()
    with torch.no_grad():
        pmf = m.log_prob(images).exp()
    assert 0.5 * (pmf - target).abs().sum() < 0.05


def test_gradients_reach_every_parameter():
    m = model((3, 4, 4), 6)
    m.loss(torch.randint(6, (5, 3, 4, 4)).double()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_quick_config_on_digits_runs():
    cls = MODELS.get("pixelcnn_pp")
    dataset = load_dataset("digits", cls.quick_variant())
    m = build_model("pixelcnn_pp", dataset.info, **cls.quick_config(dataset.info))
    lp = m.log_prob(dataset.split("test")[:10])
    assert lp.shape == (10,) and (lp < 0).all()
    s = m.sample(3)
    assert s.shape == (3, 1, 8, 8) and set(s.unique().tolist()) <= set(range(17))


def test_runs_on_8bit_colour_patches():
    dataset = load_dataset("image_patches/8bit")
    assert dataset.info.shape == (3, 32, 32) and dataset.info.num_levels == 256
    torch.manual_seed(0)
    m = build_model("pixelcnn_pp", dataset.info, **{**TINY, "num_scales": 3})
    x = dataset.split("test")[:4]
    loss = m.loss(x)
    loss.backward()
    bits_per_dim = loss.item() / (3 * 32 * 32 * math.log(2))
    assert math.isfinite(bits_per_dim) and 0 < bits_per_dim < 12
