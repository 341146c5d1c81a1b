"""Stacked MNIST (dgmbench.data.stacked_mnist) and its mode-coverage scoring
(dgmbench.metrics.mode_coverage): construction checked against the MNIST files image by
image, and the scorer against samplers whose answer is known (real stacks: all modes, KL
the value implied by the classifier's digit marginal; one repeated image: 1 mode, KL
exactly log 1000)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgmbench.data import load_dataset
from dgmbench.data import stacked_mnist
from dgmbench.data.base import DATASETS, DataInfo, Dataset
from dgmbench.metrics.base import EvalContext, evaluate
from dgmbench.metrics.mode_coverage import STACKED_MNIST_SAMPLES, stacked_mnist_modes

SMALL = {"train": 40, "valid": 12, "test": 30}


class ImageSampler(torch.nn.Module):
    """A 'model' whose samples are the rows of a fixed tensor (repeated cyclically)."""

    def __init__(self, images: torch.Tensor, info: DataInfo):
        super().__init__()
        self.images, self.info, self.device = images, info, torch.device("cpu")
        self.drawn = 0

    def sample(self, n: int) -> torch.Tensor:
        index = (self.drawn + torch.arange(n)) % len(self.images)
        self.drawn += n
        return self.images[index]


def _board_info(variant: str = "continuous") -> DataInfo:
    return DataInfo(name="stacked_mnist", variant=variant, shape=(3, 28, 28), value_type="continuous",
                    num_classes=1000)


def _placeholder_dataset(info: DataInfo) -> Dataset:
    """The scorer needs only the board's name and the model's samples."""
    return Dataset(info, {split: torch.zeros(1, *info.shape) for split in ("train", "valid", "test")})


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist/8bit")


@pytest.fixture
def small_board(monkeypatch):
    monkeypatch.setattr(stacked_mnist, "SPLIT_SIZES", SMALL)
    return lambda variant: load_dataset(f"stacked_mnist/{variant}")


def test_registered_with_the_documented_protocol():
    spec = DATASETS.get("stacked_mnist")
    assert spec.variants == ("continuous", "8bit") and spec.source
    assert stacked_mnist.SPLIT_SIZES == {"train": 128_000, "valid": 10_000, "test": 26_000}  # PacGAN's sizes
    assert STACKED_MNIST_SAMPLES == 26_000  # PacGAN's num_test_sample


def test_stack_digits_by_hand():
    """Channel c of stack i is image index[i, c]; the mode is 100 d_R + 10 d_G + d_B."""
    levels = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 2, 2), np.uint8)  # image k = k
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 0])
    images, modes = stacked_mnist.stack_digits(levels, labels, 500, seed=7)
    assert images.shape == (500, 3, 2, 2) and images.dtype == np.uint8
    index = images[:, :, 0, 0].astype(np.int64)  # which image went into each channel
    assert (images == index[:, :, None, None]).all()
    assert np.array_equal(modes, labels[index[:, 0]] * 100 + labels[index[:, 1]] * 10 + labels[index[:, 2]])
    again, _ = stacked_mnist.stack_digits(levels, labels, 500, seed=7)
    assert np.array_equal(images, again)
    assert not np.array_equal(images, stacked_mnist.stack_digits(levels, labels, 500, seed=8)[0])
    # independent uniform draws: every image in every channel, no channel copying another
    assert all(len(np.unique(index[:, c])) == 10 for c in range(3))
    assert (index[:, 0] != index[:, 1]).mean() > 0.8


def test_board_is_built_from_the_right_mnist_split(small_board, mnist):
    """Each channel is a whole image of the matching MNIST split (test stacks only from test
    images), the label is the digit triple, the values are level / 255, and loading twice
    gives the same data."""
    board, levels8 = small_board("continuous"), small_board("8bit")
    assert board.info == _board_info() and board.info.dequantization_levels is None
    assert levels8.info.value_type == "discrete" and levels8.info.num_levels == 256
    for split, size in SMALL.items():
        x = board.split(split)
        assert x.shape == (size, 3, 28, 28)
        assert torch.equal(x * 255, levels8.split(split))  # exact: level / 255 * 255 rounds back in float32
        assert torch.equal(x, load_dataset("stacked_mnist/continuous").split(split))
        source = mnist.split(split).to(torch.uint8).flatten(1).numpy()  # (N, 784) levels of the MNIST split
        where = {row.tobytes(): i for i, row in enumerate(source)}
        channels = levels8.split(split).to(torch.uint8).reshape(size * 3, 784).numpy()
        found = [where.get(row.tobytes()) for row in channels]
        assert None not in found, f"a {split} channel is not an image of MNIST {split}"
        digits = mnist.labels[split][torch.tensor(found)].view(size, 3)
        assert torch.equal(board.labels[split], digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])


def test_one_repeated_image_scores_one_mode_and_log_1000():
    info = _board_info()
    image = torch.rand(1, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    ctx = EvalContext(settings={"mode_samples": 40})
    values = {v.name: v for v in evaluate(ImageSampler(image, info), _placeholder_dataset(info), ctx,
                                          only=["mode_coverage"])}
    assert set(values) == {"modes_captured", "mode_reverse_kl"}  # no high-quality fraction here
    assert values["modes_captured"].value == 1
    assert values["mode_reverse_kl"].value == pytest.approx(math.log(1000), abs=1e-12)
    assert values["mode_reverse_kl"].n == 40 and values["modes_captured"].protocol["modes"] == 1000


def test_modes_compose_the_per_channel_classifications(small_board):
    """The mode of a stack is 100 c(R) + 10 c(G) + c(B), c the classifier's digit for the
    channel alone; the 8bit variant is scored on the same images after scaling to [0, 1]."""
    board = small_board("continuous")
    x = board.split("test")
    per_channel = torch.stack([stacked_mnist_modes(x[:, [c, c, c]]) % 10 for c in range(3)], 1)  # channel alone
    modes = stacked_mnist_modes(x)
    assert torch.equal(modes, per_channel[:, 0] * 100 + per_channel[:, 1] * 10 + per_channel[:, 2])
    assert (modes == board.labels["test"]).float().mean() >= 0.8  # 30 stacks, 0.979^3 = 0.94 expected
    levels8 = small_board("8bit")
    ctx = EvalContext(settings={"mode_samples": len(x)})
    from_levels = {v.name: v.value for v in evaluate(ImageSampler(levels8.split("test"), levels8.info), levels8, ctx,
                                                     only=["mode_coverage"])}
    from_unit = {v.name: v.value for v in evaluate(ImageSampler(x, board.info), board, ctx, only=["mode_coverage"])}
    assert from_levels == from_unit and from_unit["modes_captured"] == len(torch.unique(modes))


@pytest.mark.slow  # ~2 min: 26,000 stacks x 3 channels through the float64 classifier
def test_real_stacks_capture_every_mode_with_the_kl_the_classifier_implies(mnist):
    """A 'sampler' returning the 26,000 real test stacks, scored as a model at the default
    protocol. Ground truth: the channels are independent draws from the 10,000 MNIST test
    images, so the classified modes follow m = r x r x r exactly, r the classifier's digit
    distribution over those images (measured here). Then:

    * modes captured: the rarest mode has probability >= min(r)^3 ~ 7e-4, i.e. ~18 expected
      hits in 26,000; P(some mode missed) <= 1000 exp(-18) ~ 2e-5, so all 1,000.
    * KL: 2N KL(q || u) is about a noncentral chi-square with K - 1 = 999 degrees of freedom
      and noncentrality 2N KL(m || u), KL(m || u) = 3 KL(r || u_10) (a product of three equal
      marginals): mean KL(m || u) + (K - 1) / (2N) = 0.0044 + 0.0192 = 0.024, sd 0.001.
      Measured: 1,000 modes, KL 0.0214 (the histogram of the true labels deviates the same
      way, 0.0220 against its expected 0.0244: the draw, not the classifier). From the
      accuracy a = 0.979 alone (no r): the classified marginal moves at most 1 - a of mass, so
      max r <= max p + 1 - a = 0.134 and KL(m || u) <= 3 log(10 max r) = 0.88 nats, the crude
      bound the tight value must also meet."""
    board = load_dataset("stacked_mnist/continuous")
    real = board.split("test")
    assert len(real) == STACKED_MNIST_SAMPLES
    values = {v.name: v.value for v in evaluate(ImageSampler(real, board.info), board, EvalContext(),
                                                only=["mode_coverage"])}
    from dgmbench.metrics.features import DomainFeatureExtractor

    classifier = DomainFeatureExtractor("mnist-cnn", ["logits"])  # the scorer's classifier, per grey image
    with torch.no_grad():
        digits = torch.cat([classifier(x)[0].argmax(1) for x in mnist.split("test").to(torch.uint8).split(1000)])
    r = torch.bincount(digits, minlength=10).double() / len(digits)
    kl_marginal = 3 * (r * (10 * r).log()).sum().item()
    bias = 999 / (2 * STACKED_MNIST_SAMPLES)
    assert values["modes_captured"] == 1000
    assert abs(values["mode_reverse_kl"] - (kl_marginal + bias)) < 0.006
    max_p = mnist.labels["test"].bincount().max().item() / 10_000
    assert values["mode_reverse_kl"] < 3 * math.log(10 * (max_p + 1 - 0.9794))
