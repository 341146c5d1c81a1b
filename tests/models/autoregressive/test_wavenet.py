"""WaveNet over flattened images: causal dependencies in sequence order and the exact
receptive field (perturbing each input), raster/RGB flattening, exact normalisation by enumeration, the
queue-based fast generation equal to the full network step by step, samples vs. the model's
exact pmf (chi-square)."""

import pytest
import torch
from scipy import stats

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models import MODELS, build_model
from dgmbench.models.autoregressive.layers.checks import (
    KNOWN_SHAPE,
    KNOWN_TARGET,
    enumerate_values,
    fit_known_distribution_and_sample,
    perturbation_dependencies,
    raster_order_index,
)
from dgmbench.models.autoregressive.layers.pixel_outputs import logits_per_channel

TINY = {"residual_channels": 6, "skip_channels": 8, "dilation_cycle": 3, "num_stacks": 1, "output_hidden": 8}


def info(shape, levels):
    value_type = "binary" if levels == 2 else "discrete"
    return DataInfo(name="toy", variant=value_type, shape=shape, value_type=value_type, num_levels=levels)


def model(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("wavenet", info(shape, levels), **{**TINY, **overrides}).double()


def random_images(n, shape, levels, seed=0):
    return torch.randint(levels, (n, *shape), generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("levels", [2, 4])
def test_each_step_sees_exactly_its_receptive_field_of_earlier_steps(levels):
    # dilations 1, 2, 4 plus the kernel-2 input convolution: 2 + 7 = 9 previous elements
    length = 16
    m = model((1, 1, length), levels)
    assert m.receptive_field == 9
    seq = random_images(8, (1, length), levels)
    deps = perturbation_dependencies(
        lambda s: m.sequence_logits(s[:, 0]), seq, levels, logits_per_channel(levels)
    )
    t = torch.arange(length)
    visible = (t[None, :] < t[:, None]) & (t[None, :] >= t[:, None] - 9)  # [output step, input step]
    assert torch.equal(deps > 1e-10, visible)


def test_images_are_flattened_in_raster_order_with_rgb_inside_a_pixel():
    shape = (3, 3, 4)
    m = model(shape, 3, dilation_cycle=5)
    deps = perturbation_dependencies(m.logits, random_images(8, shape, 3), 3, 3)
    order = raster_order_index(shape)
    assert deps[order[None, :] >= order[:, None]].max() < 1e-10
    # the element right before (previous channel, or last channel of the previous pixel) matters
    previous = order[None, :] == order[:, None] - 1
    assert (deps[previous] > 1e-6).all()
    x = random_images(2, shape, 3)
    assert torch.equal(m.from_sequence(m.to_sequence(x)), x)


@pytest.mark.parametrize("shape, levels", [((1, 3, 4), 2), ((3, 2, 2), 2), ((1, 2, 3), 3)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    with torch.no_grad():
        total = model(shape, levels).log_prob(enumerate_values(shape, levels).double()).exp().sum()
    assert abs(total.item() - 1) < 1e-5


@pytest.mark.parametrize("levels", [2, 5])
def test_fast_generation_gives_the_full_networks_logits(levels):
    shape = (2, 3, 5)
    m = model(shape, levels, num_stacks=2)
    seq = m.to_sequence(random_images(4, shape, levels))
    _, step_logits = m.generate(4, forced=seq)
    with torch.no_grad():
        torch.testing.assert_close(step_logits, m.sequence_logits(seq))


def test_trained_model_samples_match_its_exact_distribution():
    pmf, counts = fit_known_distribution_and_sample(model(KNOWN_SHAPE, 2, output_hidden=16))
    assert 0.5 * (pmf - KNOWN_TARGET).abs().sum() < 0.05
    assert stats.chisquare(counts, counts.sum() * pmf / pmf.sum()).pvalue > 1e-3


def test_gradients_reach_every_parameter():
    m = model((1, 4, 4), 5)
    m.loss(random_images(6, (1, 4, 4), 5)).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_quick_config_on_digits_covers_the_whole_image():
    cls = MODELS.get("wavenet")
    dataset = load_dataset("digits", cls.quick_variant())
    m = build_model("wavenet", dataset.info, **cls.quick_config(dataset.info))
    assert m.receptive_field >= dataset.info.dim
    lp = m.log_prob(dataset.split("test")[:10])
    assert lp.shape == (10,) and (lp < 0).all()
    s = m.sample(3)
    assert s.shape == (3, 1, 8, 8) and set(s.unique().tolist()) <= set(range(17))
