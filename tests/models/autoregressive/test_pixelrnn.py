"""Row LSTM (PixelRNN): autoregressive dependencies (autograd) incl. R -> G -> B, the triangular
receptive field, exact normalisation by enumeration, the cached row-by-row sampling path equal
to the full network, samples vs. the model's exact pmf (chi-square)."""

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
    flat_index,
    raster_order_index,
)
from dgmbench.models.autoregressive.layers.pixel_outputs import logits_per_channel
from dgmbench.models.autoregressive.pixelrnn import skew, unskew

TINY = {"hidden": 4, "num_layers": 2, "first_kernel": 3, "output_hidden": 8}


def info(shape, levels):
    value_type = "binary" if levels == 2 else "discrete"
    return DataInfo(name="toy", variant=value_type, shape=shape, value_type=value_type, num_levels=levels)


def model(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("row_lstm", info(shape, levels), **{**TINY, **overrides}).double()


def random_images(n, shape, levels, seed=0):
    return torch.randint(levels, (n, *shape), generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("shape, levels", [((1, 5, 5), 2), ((1, 4, 4), 5), ((3, 4, 4), 4)])
def test_output_depends_only_on_earlier_values(shape, levels):
    m = model(shape, levels)
    deps = dependency_matrix(m.logits, random_images(8, shape, levels), logits_per_channel(levels))
    order = raster_order_index(shape)
    assert deps[order[None, :] >= order[:, None]].abs().max() == 0


def test_colour_channels_follow_r_g_b_within_a_pixel():
    m = model((3, 3, 3), 4, hidden=12, output_hidden=24)  # wide enough that no ReLU kills a group
    deps = dependency_matrix(m.logits, random_images(16, (3, 3, 3), 4), 4).view(3, 3, 3, 3, 3, 3)
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.equal(deps[:, 1, 1, :, 1, 1] > 0, expected)


def test_receptive_field_is_the_triangle_above_the_pixel():
    # K_ss (k = 3) spreads the state one column per row, so d rows above pixel (r, c) the
    # rightmost visible column is c + d (Sec. 3.1: a triangular context); in the current row
    # the two masked 1x3 K_is layers and the 3x3 mask-A layer reach 3 pixels to the left.
    shape, r, c = (1, 7, 12), 6, 6
    deps = dependency_matrix(model(shape, 2).logits, random_images(8, shape, 2), 1).view(7, 12, 7, 12)
    seen = deps[r, c] > 0
    for d in range(1, 6):
        assert seen[r - d, c - d : c + d + 1].all()
        if c + d + 1 < 12:
            assert not seen[r - d, c + d + 1 :].any()
    assert torch.equal(seen[r], torch.arange(12).ge(c - 3) & torch.arange(12).lt(c))


@pytest.mark.parametrize("shape, levels", [((1, 3, 4), 2), ((3, 2, 2), 2), ((1, 2, 2), 4)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    with torch.no_grad():
        total = model(shape, levels).log_prob(enumerate_values(shape, levels).double()).exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_row_by_row_sampling_path_gives_the_full_networks_logits():
    shape = (2, 5, 6)
    m = model(shape, 3, num_layers=3, first_kernel=5)
    x = random_images(4, shape, 3)
    with torch.no_grad():
        full = m.logits(x)
        states = m.initial_states(4)
        for row in range(5):
            # the pixels of this row and below must not matter: scramble them
            scrambled = x.clone()
            scrambled[:, :, row + 1 :] = (
                random_images(4, (2, 5 - row - 1, 6), 3, seed=row + 1) if row < 4 else 0
            )
            row_logits, states = m.row_logits(scrambled, row, states)
            torch.testing.assert_close(row_logits, full[:, :, row])


def test_trained_model_samples_match_its_exact_distribution():
    pmf, counts = fit_known_distribution_and_sample(model(KNOWN_SHAPE, 2, output_hidden=16))
    assert 0.5 * (pmf - KNOWN_TARGET).abs().sum() < 0.05
    assert stats.chisquare(counts, counts.sum() * pmf / pmf.sum()).pvalue > 1e-3


def test_gradients_reach_every_parameter():
    m = model((3, 4, 4), 5)
    m.loss(random_images(6, (3, 4, 4), 5)).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_quick_config_on_digits_runs():
    cls = MODELS.get("row_lstm")
    dataset = load_dataset("digits", cls.quick_variant())
    m = build_model("row_lstm", dataset.info, **cls.quick_config(dataset.info))
    lp = m.log_prob(dataset.split("test")[:10])
    assert lp.shape == (10,) and (lp < 0).all()
    s = m.sample(3)
    assert s.shape == (3, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}


# --- Diagonal BiLSTM ----------------------------------------------------------------------
DIAGONAL_TINY = {"hidden": 4, "num_layers": 1, "first_kernel": 3, "output_hidden": 8}


def diagonal(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("diagonal_bilstm", info(shape, levels), **{**DIAGONAL_TINY, **overrides}).double()


def test_skew_shifts_row_i_right_by_i_and_unskew_inverts_it():
    x = torch.arange(2 * 3 * 4, dtype=torch.float64).view(1, 2, 3, 4)
    skewed = skew(x)
    assert skewed.shape == (1, 2, 3, 6)
    for i in range(3):
        assert torch.equal(skewed[0, :, i, i : i + 4], x[0, :, i])
        assert skewed[0, :, i, :i].abs().sum() == 0 and skewed[0, :, i, i + 4 :].abs().sum() == 0
    assert torch.equal(unskew(skewed, 4), x)


@pytest.mark.parametrize("shape, levels", [((1, 5, 6), 2), ((1, 4, 4), 5), ((3, 3, 4), 4)])
def test_diagonal_bilstm_sees_the_whole_past_but_one_pixel(shape, levels):
    # One layer already sees every earlier value except one: the last pixel of the row
    # above, (r-1, W-1). The mirrored pass reaches row r only through features of row r-1,
    # which (mask A) never see that pixel; so only the first layer's kernel, reaching
    # first_kernel // 2 = 1 column to the right, brings it to the pixels near the right edge.
    m = diagonal(shape, levels, hidden=6, output_hidden=16)
    deps = dependency_matrix(m.logits, random_images(16, shape, levels), logits_per_channel(levels))
    order = raster_order_index(shape)
    assert deps[order[None, :] >= order[:, None]].abs().max() == 0
    if shape[0] == 1:  # (with colour, a ReLU may switch a one-unit channel group off)
        _, height, width = shape
        expected = order[None, :] < order[:, None]
        for row in range(1, height):
            for col in range(width - 2):
                expected[row * width + col, (row - 1) * width + width - 1] = False
        assert torch.equal(deps > 0, expected)


def test_diagonal_bilstm_colour_channels_follow_r_g_b():
    m = diagonal((3, 3, 3), 4, hidden=12, output_hidden=24)
    deps = dependency_matrix(m.logits, random_images(16, (3, 3, 3), 4), 4).view(3, 3, 3, 3, 3, 3)
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.equal(deps[:, 1, 1, :, 1, 1] > 0, expected)


@pytest.mark.parametrize("shape, levels", [((1, 3, 4), 2), ((3, 2, 2), 2), ((1, 2, 2), 4)])
def test_diagonal_bilstm_probabilities_sum_to_one(shape, levels):
    with torch.no_grad():
        total = (
            diagonal(shape, levels, num_layers=2)
            .log_prob(enumerate_values(shape, levels).double())
            .exp()
            .sum()
        )
    assert abs(total.item() - 1) < 1e-5


def test_diagonal_bilstm_samples_match_its_exact_distribution():
    shape, levels = (1, 2, 3), 2
    m = diagonal(shape, levels)
    images = enumerate_values(shape, levels).double()
    with torch.no_grad():
        pmf = m.log_prob(images).exp()
    torch.manual_seed(7)
    counts = torch.bincount(flat_index(m.sample(6000), levels), minlength=64).double()
    assert stats.chisquare(counts, 6000 * pmf / pmf.sum()).pvalue > 1e-3


def test_diagonal_bilstm_gradients_reach_every_parameter_and_quick_config_runs():
    m = diagonal((3, 4, 4), 5, num_layers=2)
    m.loss(random_images(6, (3, 4, 4), 5)).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    cls = MODELS.get("diagonal_bilstm")
    dataset = load_dataset("digits", cls.quick_variant())
    quick = build_model("diagonal_bilstm", dataset.info, **cls.quick_config(dataset.info))
    assert (quick.log_prob(dataset.split("test")[:5]) < 0).all()
    assert quick.sample(2).shape == (2, 1, 8, 8)
