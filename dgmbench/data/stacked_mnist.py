"""Stacked MNIST (Metz et al. 2017, Sec. 3.3.1; Srivastava et al. 2017, VEEGAN, Sec. 5.2;
Lin et al. 2018, PacGAN, Sec. 5.2): 28x28 RGB images whose red, green and blue channels are
three MNIST digits drawn independently, so the data has 10^3 = 1,000 modes (digit triples).
A generator's mode coverage is scored by classifying each channel (dgmbench.metrics.
mode_coverage, metric ``mode_coverage``: modes captured of 1,000 and the KL of the mode
histogram to uniform).

Construction (deterministic): each split draws (n, 3) indices uniformly, with replacement,
from one split of ``mnist`` (dgmbench.data.mnist) with a seeded torch.Generator (seed 0 /
1 / 2 for train / valid / test), and stacks the three images as channels R, G, B:

=========  ==========================================  ========  ====
split      drawn from                                  size      seed
=========  ==========================================  ========  ====
train      MNIST train (first 50,000 training images)  128,000   0
valid      MNIST valid (last 10,000 training images)    10,000   1
test       the 10,000 MNIST test images                 26,000   2
=========  ==========================================  ========  ====

128,000 training images is PacGAN's ``num_training_sample``; 26,000 is the number of
generated samples PacGAN and VEEGAN score, so the test split is a real-data "sampler" of
exactly the scored size. PacGAN's code draws its training stacks from all 70,000 MNIST
images; here the splits never share a digit image, so the test split is held out.

Labels: the mode 100 d_R + 10 d_G + d_B of each image (0..999) from the MNIST labels, so
``num_classes`` is 1,000. Variants:

* ``continuous``  level / 255 in [0, 1], no noise: exactly the input of the VEEGAN/PacGAN
                  DCGAN code, and what the GANs train on. Not a density board: without
                  dequantization a continuous density on these values is unbounded, so no
                  likelihood from it means anything (no ``dequantization_levels``).
* ``8bit``        the levels 0..255 (discrete, 256 levels), by dgmbench.data.mnist.image_variant.

No ``dequantized`` variant: fresh dequantization noise every epoch would cost another
1.2 GB and ~10 passes over it per epoch for a board that only scores samples. Memory: the
train split is 128,000 x 2,352 float32 values, 1.2 GB.
"""
from __future__ import annotations

import numpy as np
import torch

from dgmbench.data.base import DataInfo, Dataset, DatasetSpec, register_dataset
from dgmbench.data.mnist import MNIST_FILES, MNIST_URL, _load_idx_dataset, image_variant

SPLIT_SIZES = {"train": 128_000, "valid": 10_000, "test": 26_000}
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}
CHANNELS = 3  # digits per image: R, G, B
MODES = 10**CHANNELS
VARIANTS = ("continuous", "8bit")
EIGHT_BIT_MAX = 255
DESCRIPTION = (
    "Stacked MNIST: three independent MNIST digits as the R, G, B channels (1,000 modes); "
    "128,000 / 10,000 / 26,000 stacks drawn (seeds 0 / 1 / 2) from MNIST train / valid / test"
)


def stack_digits(levels: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n stacked images (n, 3, H, W) uint8 and their modes (n,) from grey images (N, 1, H, W)
    and digit labels (N,): channel c of image i is levels[index[i, c]], index drawn uniformly
    with replacement from a torch.Generator seeded with `seed`."""
    index = torch.randint(0, len(levels), (n, CHANNELS), generator=torch.Generator().manual_seed(seed)).numpy()
    images = levels[index, 0]  # (n, 3, H, W): fancy indexing drops the grey channel axis
    digits = labels[index].astype(np.int64)
    modes = digits @ (10 ** np.arange(CHANNELS - 1, -1, -1))  # 100 d_R + 10 d_G + d_B
    return images, modes


def _load(variant: str) -> Dataset:
    mnist_levels, mnist_labels = _load_idx_dataset("mnist", MNIST_FILES)
    levels, labels = {}, {}
    for split, size in SPLIT_SIZES.items():
        levels[split], labels[split] = stack_digits(mnist_levels[split], mnist_labels[split], size, SPLIT_SEEDS[split])
    if variant == "8bit":
        return image_variant("stacked_mnist", variant, levels, labels, num_classes=MODES, description=DESCRIPTION)
    info = DataInfo(name="stacked_mnist", variant=variant, shape=(CHANNELS, 28, 28), value_type="continuous",
                    num_classes=MODES)
    splits = {split: torch.from_numpy(x).float().div_(EIGHT_BIT_MAX) for split, x in levels.items()}
    return Dataset(info, splits, {split: torch.from_numpy(y) for split, y in labels.items()}, description=DESCRIPTION)


register_dataset(
    DatasetSpec(
        name="stacked_mnist",
        variants=VARIANTS,
        loader=_load,
        description=DESCRIPTION,
        source=MNIST_URL,
    )
)
