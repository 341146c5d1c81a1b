"""Gated PixelCNN: autoregressive masks (autograd), no blind spot (every earlier pixel in the
receptive field is seen), exact normalisation by enumeration (also for the class-conditional
model and its uniform-prior marginal), crop-restricted sampling, samples vs. exact pmf."""

import math

import pytest
import torch
from scipy import stats

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models import MODELS, build_model
from dgmbench.models.autoregressive.layers.checks import (
    KNOWN_SHAPE,
    KNOWN_TARGET,
    dependency_matrix,
    enumerate_values,
    fit_known_distribution_and_sample,
    raster_order_index,
)
from dgmbench.models.autoregressive.layers.masked_conv import receptive_reach
from dgmbench.models.autoregressive.layers.pixel_outputs import logits_per_channel

TINY = {"hidden": 4, "num_layers": 2, "first_kernel": 3, "output_hidden": 8}


def info(shape, levels, num_classes=None):
    value_type = "binary" if levels == 2 else "discrete"
    return DataInfo(
        name="toy",
        variant=value_type,
        shape=shape,
        value_type=value_type,
        num_levels=levels,
        num_classes=num_classes,
    )


def model(shape, levels, seed=0, num_classes=None, **overrides):
    torch.manual_seed(seed)
    return build_model("gated_pixelcnn", info(shape, levels, num_classes), **{**TINY, **overrides}).double()


def random_images(n, shape, levels, seed=0):
    return torch.randint(levels, (n, *shape), generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("shape, levels", [((1, 5, 5), 2), ((1, 4, 4), 5), ((3, 4, 4), 4)])
def test_output_depends_only_on_earlier_values(shape, levels):
    m = model(shape, levels)
    deps = dependency_matrix(m.logits, random_images(8, shape, levels), logits_per_channel(levels))
    order = raster_order_index(shape)
    assert deps[order[None, :] >= order[:, None]].abs().max() == 0


def test_colour_channels_follow_r_g_b_within_a_pixel():
    # wider than TINY so that no channel group is a single unit that a ReLU may switch off
    m = model((3, 3, 3), 4, hidden=12, output_hidden=24)
    deps = dependency_matrix(m.logits, random_images(16, (3, 3, 3), 4), 4).view(3, 3, 3, 3, 3, 3)
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.equal(deps[:, 1, 1, :, 1, 1] > 0, expected)


def test_no_blind_spot():
    # 3x3 kernels, first layer + 2 gated layers: the vertical stack reaches 3 rows up and 3
    # columns either side, the horizontal stack 3 pixels left. Output (4, 4) must see every
    # earlier pixel of that region, (3, 6) included (PixelCNN's blind spot), and nothing else.
    shape = (1, 8, 8)
    deps = dependency_matrix(model(shape, 2).logits, random_images(8, shape, 2), 1).view(8, 8, 8, 8)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:4, 1:8] = True
    expected[4, 1:4] = True
    assert torch.equal(deps[4, 4] > 0, expected)
    assert deps[4, 4, 3, 6] > 0


@pytest.mark.parametrize("shape, levels", [((1, 3, 4), 2), ((3, 2, 2), 2), ((1, 2, 2), 4)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    with torch.no_grad():
        total = model(shape, levels).log_prob(enumerate_values(shape, levels).double()).exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_conditional_model_normalises_per_class_and_marginal_is_the_uniform_mixture():
    shape, levels, classes = (1, 2, 3), 2, 3
    m = model(shape, levels, num_classes=classes, conditional=True)
    images = enumerate_values(shape, levels).double()
    with torch.no_grad():
        per_class = torch.stack(
            [m.log_prob(images, torch.full((len(images),), k)) for k in range(classes)], dim=1
        )
        marginal = m.log_prob(images)
    torch.testing.assert_close(per_class.exp().sum(0), torch.ones(classes, dtype=torch.float64))
    assert abs(marginal.exp().sum().item() - 1) < 1e-5
    torch.testing.assert_close(marginal, per_class.exp().mean(1).log())
    # the label matters
    assert (per_class[:, 0] - per_class[:, 1]).abs().max() > 1e-3
    assert m.sample(5).shape == (5, *shape)
    assert m.sample(2, torch.tensor([0, 2])).shape == (2, *shape)


def test_cropped_network_gives_the_full_networks_logits():
    shape = (2, 6, 7)
    m = model(shape, 3, num_layers=3)
    x = random_images(4, shape, 3)
    up, left, right = receptive_reach(m)
    with torch.no_grad():
        full = m.logits(x)
        for row in range(6):
            for col in range(7):
                top, lo = max(0, row - up), max(0, col - left)
                crop = m.logits(x[:, :, top : row + 1, lo : col + right + 1])
                torch.testing.assert_close(crop[:, :, row - top, col - lo], full[:, :, row, col])


def test_trained_model_samples_match_its_exact_distribution():
    pmf, counts = fit_known_distribution_and_sample(model(KNOWN_SHAPE, 2, output_hidden=16))
    assert 0.5 * (pmf - KNOWN_TARGET).abs().sum() < 0.05
    assert stats.chisquare(counts, counts.sum() * pmf / pmf.sum()).pvalue > 1e-3


def test_gradients_reach_every_parameter():
    m = model((1, 4, 4), 5, num_classes=2, conditional=True)
    m.loss(random_images(6, (1, 4, 4), 5), torch.tensor([0, 1, 0, 1, 1, 0])).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_quick_config_on_digits_runs():
    cls = MODELS.get("gated_pixelcnn")
    dataset = load_dataset("digits", cls.quick_variant())
    m = build_model("gated_pixelcnn", dataset.info, **cls.quick_config(dataset.info))
    lp = m.log_prob(dataset.split("test")[:10])
    assert lp.shape == (10,) and (lp < 0).all() and (lp > -64 * math.log(17) - 50).all()
    s = m.sample(3)
    assert s.shape == (3, 1, 8, 8) and set(s.unique().tolist()) <= set(range(17))
