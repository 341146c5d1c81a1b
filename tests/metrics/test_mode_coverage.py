"""Mode coverage (VEEGAN / PacGAN protocol) against samplers whose answer is known: the true
mixture, a collapsed sampler, hand-counted histograms and the chi-square(2) tail."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import load_dataset
from dgmbench.data.toy2d import MODE_MIXTURES, SAMPLERS, log_density_mode_mixture, mixture_means
from dgmbench.metrics.base import EvalContext, evaluate
from dgmbench.metrics.mode_coverage import assign_modes, histogram_scores, mode_coverage

INSIDE_3SD = 1 - math.exp(-4.5)  # P(chi^2_2 < 9): a 2-D isotropic Gaussian within 3 sd


class FixedSampler(torch.nn.Module):
    """A 'model' that samples from a given function of (n, generator)."""

    def __init__(self, draw):
        super().__init__()
        self.draw = draw
        self.generator = torch.Generator().manual_seed(0)
        self.device = torch.device("cpu")

    def sample(self, n):
        return self.draw(n, self.generator)


def test_boards_match_the_published_protocol():
    ring, grid = mixture_means("ring8"), mixture_means("grid25")
    assert torch.allclose(ring.norm(dim=1), torch.ones(8)) and MODE_MIXTURES["ring8"][1] == 0.01
    assert sorted(set(grid[:, 0].tolist())) == [-4, -2, 0, 2, 4] and len(grid) == 25
    assert MODE_MIXTURES["grid25"][1] == 0.05


@pytest.mark.parametrize("board", ["ring8", "grid25"])
def test_true_mixture_captures_every_mode(board):
    means, std = mixture_means(board), MODE_MIXTURES[board][1]
    x = SAMPLERS[board](2500, torch.Generator().manual_seed(1))
    scores = mode_coverage(x, means, std)
    assert scores["modes_captured"] == len(means)
    assert abs(scores["high_quality_fraction"] - INSIDE_3SD) < 0.01  # 5 binomial sd
    assert 0 <= scores["mode_reverse_kl"] < 0.03  # E ~ (K - 1) / 2N = 0.005 for the grid


def test_high_quality_fraction_is_the_chi_square_tail():
    x = SAMPLERS["grid25"](200_000, torch.Generator().manual_seed(2))
    scores = mode_coverage(x, mixture_means("grid25"), 0.05)
    sd = math.sqrt(INSIDE_3SD * (1 - INSIDE_3SD) / 200_000)
    assert abs(scores["high_quality_fraction"] - INSIDE_3SD) < 4 * sd


@pytest.mark.parametrize("board", ["ring8", "grid25"])
def test_collapsed_sampler_scores_one_mode(board):
    means, std = mixture_means(board), MODE_MIXTURES[board][1]
    x = means[3] + std * torch.randn(2500, 2, generator=torch.Generator().manual_seed(3))
    scores = mode_coverage(x, means, std)
    assert scores["modes_captured"] == 1
    assert scores["mode_reverse_kl"] == pytest.approx(math.log(len(means)))
    assert scores["high_quality_fraction"] > 0.97


def test_histogram_scores_by_hand():
    scores = histogram_scores(torch.tensor([2, 1, 1, 0]), n_samples=5)
    assert scores == {"modes_captured": 3, "high_quality_fraction": 0.8,
                      "mode_reverse_kl": pytest.approx(0.5 * math.log(2))}
    assert histogram_scores(torch.tensor([2, 1, 1, 0]), 5, min_count=2)["modes_captured"] == 1
    assert math.isnan(histogram_scores(torch.zeros(4), 5)["mode_reverse_kl"])


def test_far_points_are_not_high_quality_and_go_to_the_nearest_mode():
    means = mixture_means("grid25")
    x = torch.tensor([[0.0, 0.149], [0.0, 0.151], [3.0, 3.0], [-4.1, 4.0]])
    nearest, high = assign_modes(x, means, 0.05)
    assert high.tolist() == [True, False, False, True]
    assert torch.equal(means[nearest[0]], torch.tensor([0.0, 0.0]))
    assert torch.equal(means[nearest[3]], torch.tensor([-4.0, 4.0]))


def test_metric_through_evaluate_and_only_on_mixture_boards():
    dataset = load_dataset("grid25")
    model = FixedSampler(SAMPLERS["grid25"])
    values = {v.name: v for v in evaluate(model, dataset, EvalContext(), only=["mode_coverage"])}
    assert values["modes_captured"].value == 25 and values["modes_captured"].n == 2500
    assert values["high_quality_fraction"].protocol["threshold_sd"] == 3.0
    collapsed = FixedSampler(lambda n, g: torch.zeros(n, 2))
    ctx = EvalContext(settings={"mode_samples": 100})
    values = {v.name: v.value for v in evaluate(collapsed, dataset, ctx, only=["mode_coverage"])}
    assert values == {"modes_captured": 1, "high_quality_fraction": 1.0, "mode_reverse_kl": pytest.approx(math.log(25))}
    assert evaluate(model, load_dataset("eight_gaussians"), EvalContext(), only=["mode_coverage"]) == []


def test_mixture_density_against_scipy():
    from scipy.stats import multivariate_normal

    x = SAMPLERS["ring8"](50, torch.Generator().manual_seed(4)).double()
    means = mixture_means("ring8", dtype=torch.float64)
    expected = sum(multivariate_normal(m.numpy(), 0.01**2 * torch.eye(2).numpy()).pdf(x.numpy()) for m in means) / 8
    assert torch.allclose(log_density_mode_mixture("ring8", x), torch.from_numpy(expected).log(), atol=1e-8)


@pytest.fixture(scope="module")
def mnist_test():
    dataset = load_dataset("mnist/8bit")
    return dataset.split("test") / 255.0, dataset.labels["test"]


def test_stacked_mnist_recovers_the_digit_triples(mnist_test):
    """Three real test digits per sample: the classifier (97.9% per digit) finds the true
    triple for ~94% of samples; 150 samples of the uniform 1,000 modes reach about
    1000 (1 - exp(-0.15)) = 139 distinct modes (sd ~3)."""
    from dgmbench.metrics.mode_coverage import stacked_mnist_modes, stacked_mnist_scores

    images, labels = mnist_test
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, len(images), (150, 3), generator=g)
    stacked = images[index].squeeze(2)  # (150, 3, 28, 28)
    true_modes = labels[index[:, 0]] * 100 + labels[index[:, 1]] * 10 + labels[index[:, 2]]
    modes = stacked_mnist_modes(stacked)
    assert (modes == true_modes).float().mean() > 0.9
    scores = stacked_mnist_scores(stacked)
    assert 125 <= scores["modes_captured"] <= 150
    collapsed = stacked_mnist_scores(stacked[:1].repeat(20, 1, 1, 1))
    assert collapsed["modes_captured"] == 1 and collapsed["mode_reverse_kl"] == pytest.approx(math.log(1000))
    with pytest.raises(ValueError, match="28, 28"):
        stacked_mnist_modes(torch.zeros(2, 1, 28, 28))
