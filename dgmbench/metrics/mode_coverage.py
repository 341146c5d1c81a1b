"""Mode coverage on mixtures with known modes (Srivastava et al. 2017, VEEGAN, Sec. 5.1;
Lin et al. 2018, PacGAN, Table 1): how many of the modes a sampler reaches, how many of its
samples are near a mode, and how evenly it spreads them.

For the 2-D boards ``ring8`` (8 Gaussians, std 0.01, unit circle) and ``grid25`` (25
Gaussians, std 0.05, {-4, -2, 0, 2, 4}^2) of dgmbench.data.toy2d, each of N generated
samples (2,500 by default, as PacGAN) is assigned to its nearest mode; it is *high
quality* when that distance is below ``threshold`` (3) standard deviations. Then

    modes captured        = #{modes k with at least min_count (1) high-quality samples}
    high-quality fraction = #{high-quality samples} / N
    reverse KL            = KL(q || u) = sum_k q_k log(K q_k),

q the histogram of the high-quality samples over the K modes and u uniform (the true
mixture's weights): "reverse" because the model's distribution comes first. These follow
the evaluation code published with PacGAN (github.com/fjxmlzn/PacGAN, MetricLogger: mode
assignment by standardised distance, 3 sd, a mode counts when it holds any high-quality
sample). A sampler from the true mixture captures every mode with ~99% high-quality
samples (the chi-square(2) mass inside 3 sd is 1 - exp(-4.5) = 0.989) and a reverse KL near 0;
one collapsed on a single mode captures 1 mode with reverse KL log K.

:func:`histogram_scores` gives the same three numbers from mode labels assigned any other
way. :func:`stacked_mnist_scores` does so for stacked MNIST (Srivastava et al. 2017, Sec.
5.2; Lin et al. 2018, Table 2): each of the three channels of a 28x28 RGB sample is
classified by the committed MNIST domain classifier (``mnist-cnn``, dgmbench.metrics.
features), and the digit triple is one of 1,000 modes (modes captured: modes with at least
one sample; reverse KL of the mode histogram to uniform). On the ``stacked_mnist`` board
(dgmbench.data.stacked_mnist) the registered metric scores 26,000 samples by default, the
number PacGAN's and VEEGAN's stacked-MNIST code scores (``num_test_sample``), and reports
no high-quality fraction (every sample gets a mode).
"""
from __future__ import annotations

import math

import torch

from dgmbench.data.base import Dataset
from dgmbench.data.toy2d import MODE_MIXTURES, mixture_means
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, model_samples, register_metric

DEFAULT_SAMPLES = 2500  # PacGAN's evaluation batch (num_log_figure_sample)
DEFAULT_THRESHOLD = 3.0  # standard deviations
DEFAULT_MIN_COUNT = 1
STACKED_MNIST = "stacked_mnist"  # the board's dataset name (dgmbench.data.stacked_mnist)
STACKED_MNIST_SAMPLES = 26_000  # PacGAN's num_test_sample for stacked MNIST


def assign_modes(samples: torch.Tensor, means: torch.Tensor, std: float, threshold: float = DEFAULT_THRESHOLD):
    """(nearest mode index, high-quality mask) per sample, for isotropic modes of one std."""
    distance = torch.cdist(samples.double(), means.double()) / std  # (N, K), in standard deviations
    nearest_distance, nearest = distance.min(dim=1)
    return nearest, nearest_distance < threshold


def histogram_scores(counts: torch.Tensor, n_samples: int, min_count: int = DEFAULT_MIN_COUNT) -> dict[str, float]:
    """modes captured, high-quality fraction and reverse KL to uniform from per-mode counts
    of the high-quality samples (counts sum to at most n_samples)."""
    counts = counts.double()
    total = counts.sum().item()
    k = len(counts)
    if total > 0:
        q = counts / total
        nonzero = q > 0
        reverse_kl = (q[nonzero] * (q[nonzero] * k).log()).sum().item()
    else:  # no sample near any mode: the histogram, and its KL, do not exist
        reverse_kl = math.nan
    return {
        "modes_captured": int((counts >= min_count).sum().item()),
        "high_quality_fraction": total / n_samples,
        "mode_reverse_kl": reverse_kl,
    }


def mode_coverage(samples: torch.Tensor, means: torch.Tensor, std: float, threshold: float = DEFAULT_THRESHOLD,
                  min_count: int = DEFAULT_MIN_COUNT) -> dict[str, float]:
    nearest, high = assign_modes(samples, means, std, threshold)
    counts = torch.bincount(nearest[high], minlength=len(means))
    return histogram_scores(counts, len(samples), min_count)


STACKED_MNIST_MODES = 1000


@torch.no_grad()
def stacked_mnist_modes(images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The mode (100 d_R + 10 d_G + d_B) of each (N, 3, 28, 28) image in [0, 1], the digits
    d classified per channel by the MNIST domain classifier on 8-bit levels."""
    from dgmbench.metrics.features import DomainFeatureExtractor

    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 28, 28):
        raise ValueError(f"stacked MNIST samples are (N, 3, 28, 28) images, got {tuple(images.shape)}")
    classifier = DomainFeatureExtractor("mnist-cnn", ["logits"])
    channels = (images.clamp(0, 1) * 255).round().to(torch.uint8).reshape(-1, 1, 28, 28)
    digits = torch.cat([classifier(chunk)[0].argmax(1) for chunk in channels.split(batch_size)])
    digits = digits.view(len(images), 3)
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def stacked_mnist_scores(images: torch.Tensor, min_count: int = DEFAULT_MIN_COUNT) -> dict[str, float]:
    """modes captured (of 1,000) and reverse KL to uniform; every sample counts."""
    counts = torch.bincount(stacked_mnist_modes(images), minlength=STACKED_MNIST_MODES)
    scores = histogram_scores(counts, len(images), min_count)
    del scores["high_quality_fraction"]  # every sample is assigned a mode: not defined here
    return scores


class ModeCoverage:
    name = "mode_coverage"
    settings = {
        "mode_samples": Setting(int, f"generated samples scored (default, as PacGAN: {DEFAULT_SAMPLES} on "
                                f"ring8/grid25, {STACKED_MNIST_SAMPLES} on stacked_mnist)", minimum=1),
        "mode_threshold": Setting(float, f"high-quality radius in standard deviations (default {DEFAULT_THRESHOLD:g})",
                                  greater_than=0),
        "mode_min_count": Setting(int, f"samples (on ring8/grid25: high-quality ones) a mode needs to count as "
                                  f"captured (default {DEFAULT_MIN_COUNT})", minimum=1),
    }

    def applies(self, model, dataset: Dataset) -> bool:
        board = dataset.info.name
        return (board in MODE_MIXTURES or board == STACKED_MNIST) and callable(getattr(model, "sample", None))

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        if dataset.info.name == STACKED_MNIST:
            return self._stacked_mnist(model, dataset, ctx)
        n = int(ctx.setting("mode_samples", DEFAULT_SAMPLES))
        threshold = float(ctx.setting("mode_threshold", DEFAULT_THRESHOLD))
        min_count = int(ctx.setting("mode_min_count", DEFAULT_MIN_COUNT))
        board = dataset.info.name
        means, std = mixture_means(board), MODE_MIXTURES[board][1]
        scores = mode_coverage(model_samples(model, n, ctx), means, std, threshold, min_count)
        protocol = {
            "samples": n, "modes": len(means), "mode_std": std, "threshold_sd": threshold,
            "min_count": min_count, "seed": ctx.seed,
            "definition": "nearest mode by standardised distance; PacGAN (Lin et al. 2018) evaluation code",
        }
        return [
            MetricValue("modes_captured", scores["modes_captured"], "modes", n, kind="score",
                        higher_is_better=True, protocol=protocol),
            MetricValue("high_quality_fraction", scores["high_quality_fraction"], "", n, kind="score",
                        higher_is_better=True, protocol=protocol),
            MetricValue("mode_reverse_kl", scores["mode_reverse_kl"], "nats", n, kind="estimate",
                        protocol=protocol),
        ]

    def _stacked_mnist(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        info = dataset.info
        n = int(ctx.setting("mode_samples", STACKED_MNIST_SAMPLES))
        min_count = int(ctx.setting("mode_min_count", DEFAULT_MIN_COUNT))
        samples = model_samples(model, n, ctx)
        if info.value_type == "discrete":  # the 8bit variant: levels -> [0, 1]
            samples = samples / (info.num_levels - 1)
        scores = stacked_mnist_scores(samples, min_count)
        protocol = {
            "samples": n, "modes": STACKED_MNIST_MODES, "min_count": min_count, "seed": ctx.seed,
            "classifier": "mnist-cnn domain extractor (dgmbench.metrics.features), argmax per channel",
            "definition": "mode = 100 d_R + 10 d_G + d_B; captured: >= min_count samples; "
                          "KL(q || uniform) of the mode histogram; VEEGAN/PacGAN stacked-MNIST protocol",
        }
        return [
            MetricValue("modes_captured", scores["modes_captured"], "modes", n, kind="score",
                        higher_is_better=True, protocol=protocol),
            MetricValue("mode_reverse_kl", scores["mode_reverse_kl"], "nats", n, kind="estimate",
                        protocol=protocol),
        ]


register_metric(ModeCoverage())
