"""PixelCNN: autoregressive masks (autograd), the blind spot, exact normalisation by
enumeration, crop-restricted sampling equal to the full network, samples vs. the model's
exact pmf (chi-square)."""

import pytest
import torch
from scipy import stats

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models import build_model
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

TINY = {"hidden": 4, "num_blocks": 2, "first_kernel": 3, "output_hidden": 8}


def info(shape, levels):
    value_type = "binary" if levels == 2 else "discrete"
    return DataInfo(name="toy", variant=value_type, shape=shape, value_type=value_type, num_levels=levels)


def model(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("pixelcnn", info(shape, levels), **{**TINY, **overrides}).double()


def random_images(n, shape, levels, seed=0):
    return torch.randint(levels, (n, *shape), generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("shape, levels", [((1, 5, 5), 2), ((1, 4, 4), 5), ((3, 4, 4), 4)])
def test_output_depends_only_on_earlier_values(shape, levels):
    m = model(shape, levels)
    deps = dependency_matrix(m.logits, random_images(8, shape, levels), logits_per_channel(levels))
    order = raster_order_index(shape)
    later_or_same = order[None, :] >= order[:, None]  # [output, input]
    assert deps[later_or_same].abs().max() == 0
    # and the model does use the past: the left and upper neighbours always matter
    c, h, w = shape
    grid = deps.view(c, h, w, c, h, w)
    assert (grid[:, :, 1:, :, :, :-1].diagonal(0, 1, 4).diagonal(0, 1, 3) > 0).all()  # left
    assert (grid[:, 1:, :, :, :-1, :].diagonal(0, 1, 4).diagonal(0, 1, 3) > 0).all()  # above


def test_colour_channels_follow_r_g_b_within_a_pixel():
    # wider than TINY so that no channel group is a single unit that a ReLU may switch off
    shape = (3, 3, 3)
    m = model(shape, 4, hidden=12, output_hidden=24)
    deps = dependency_matrix(m.logits, random_images(16, shape, 4), 4).view(3, 3, 3, 3, 3, 3)
    at_pixel = deps[:, 1, 1, :, 1, 1]  # [output channel, input channel] at pixel (1, 1)
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.equal(at_pixel > 0, expected)


def test_stacked_masked_convolutions_have_a_blind_spot():
    # first layer 3x3 mask A + two 3x3 mask-B layers: every layer reaches one row up and one
    # column right, so (r-1, c+2) is earlier in raster order and inside the 3-pixel reach,
    # yet invisible to (r, c); (r-2, c+2) is reached along the diagonal.
    shape = (1, 8, 8)
    m = model(shape, 2, residual=False)
    deps = dependency_matrix(m.logits, random_images(8, shape, 2), 1).view(8, 8, 8, 8)
    seen_by_centre = deps[4, 4]
    assert seen_by_centre[3, 6] == 0 and seen_by_centre[3, 7] == 0 and seen_by_centre[2, 7] == 0
    assert seen_by_centre[2, 6] > 0 and seen_by_centre[3, 5] > 0 and seen_by_centre[1, 7] > 0
    # the residual architecture has the same blind spot
    deps = dependency_matrix(model(shape, 2).logits, random_images(8, shape, 2), 1).view(8, 8, 8, 8)
    assert deps[4, 4, 3, 6] == 0 and deps[4, 4, 2, 6] > 0


@pytest.mark.parametrize("shape, levels", [((1, 3, 4), 2), ((3, 2, 2), 2), ((1, 2, 2), 4), ((2, 1, 2), 3)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    m = model(shape, levels)
    with torch.no_grad():
        total = m.log_prob(enumerate_values(shape, levels).double()).exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_cropped_network_gives_the_full_networks_logits():
    shape = (2, 6, 7)
    m = model(shape, 3, num_blocks=3)
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
    # A known distribution over 2x2 binary images; a trained PixelCNN gets close to it, and
    # its samples follow the model's own enumerated pmf (chi-square, seeded: no flakes).
    pmf, counts = fit_known_distribution_and_sample(model(KNOWN_SHAPE, 2, output_hidden=16))
    assert 0.5 * (pmf - KNOWN_TARGET).abs().sum() < 0.05
    assert stats.chisquare(counts, counts.sum() * pmf / pmf.sum()).pvalue > 1e-3


def test_gradients_reach_every_parameter():
    m = model((1, 4, 4), 5)
    m.loss(random_images(6, (1, 4, 4), 5)).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_quick_config_on_digits_runs():
    dataset = load_dataset("digits/binary")
    cls = type(build_model("pixelcnn", dataset.info, hidden=2, num_blocks=0, output_hidden=2))
    m = build_model("pixelcnn", dataset.info, **cls.quick_config(dataset.info))
    x = dataset.split("test")[:10]
    lp = m.log_prob(x)
    assert lp.shape == (10,) and (lp < 0).all()
    s = m.sample(3)
    assert s.shape == (3, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
