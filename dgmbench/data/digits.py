"""scikit-learn's bundled 8x8 digits (1,797 images, 17 grey levels 0..16): the embedded
default dataset, needing no download.

Split (fixed, documented): one permutation drawn with numpy's default_rng(0); the first
360 images are test, the next 180 valid, the remaining 1,257 train.

Variants:
* ``binary``      pixel >= 8 (half intensity) -> 1, 64 binary pixels
* ``17level``     the raw levels 0..16 (discrete, 17 levels)
* ``dequantized`` (level + u) / 17, u ~ U(0,1): continuous in [0,1]; fresh noise for the
                  training split every epoch, fixed seeded noise for valid/test.
"""
from __future__ import annotations

import numpy as np
import torch

from dgmbench.data.base import DataInfo, Dataset, DatasetSpec, register_dataset

N_TEST, N_VALID = 360, 180
LEVELS = 17


def _levels() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1)  # (N,1,8,8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(images)))
    index = {
        "train": order[N_TEST + N_VALID :],
        "valid": order[N_TEST : N_TEST + N_VALID],
        "test": order[:N_TEST],
    }
    return (
        {s: images[i] for s, i in index.items()},
        {s: labels[i] for s, i in index.items()},
    )


def dequantize(levels: torch.Tensor, num_levels: int, seed: int) -> torch.Tensor:
    """(level + u) / num_levels with u ~ U(0,1), inside the level's bin: floor(x * L) == level.

    In float32, level + u rounds up to level + 1 when u is within an ulp of 1 (for 8-bit
    data about one pixel in 2^16), and division by L=17 can round across a bin edge; such
    values are moved one ulp back into their bin so that the discrete data is recoverable
    and every value lies in [0, 1)."""
    levels = levels.float()
    x = torch.rand(levels.shape, generator=torch.Generator().manual_seed(seed))
    x.add_(levels).div_(num_levels)  # in place: this runs on every epoch of 50k images
    outside = torch.floor(x * num_levels) != levels
    if outside.any():
        stray, level = x[outside], levels[outside]
        for _ in range(4):  # one ulp per step; one step is enough for rounding errors
            bin_index = torch.floor(stray * num_levels)
            toward = torch.where(bin_index > level, torch.zeros_like(stray), torch.ones_like(stray))
            stray = torch.where(bin_index == level, stray, torch.nextafter(stray, toward))
        x[outside] = stray
    return x


def _load(variant: str) -> Dataset:
    levels, labels = _levels()
    common = dict(name="digits", variant=variant, shape=(1, 8, 8), num_classes=10)
    if variant == "binary":
        info = DataInfo(value_type="binary", num_levels=2, **common)
        return Dataset(info, {s: (x >= 8).float() for s, x in levels.items()}, labels)
    if variant == "17level":
        info = DataInfo(value_type="discrete", num_levels=LEVELS, **common)
        return Dataset(info, levels, labels)
    if variant == "dequantized":
        info = DataInfo(value_type="continuous", dequantization_levels=LEVELS, **common)
        splits = {s: dequantize(x, LEVELS, seed) for (s, x), seed in zip(levels.items(), (0, 1, 2))}
        train = levels["train"]
        return Dataset(
            info, splits, labels, resample_train=lambda epoch: dequantize(train, LEVELS, 1000 + epoch)
        )
    raise AssertionError(variant)  # DatasetSpec.load has already validated the variant


register_dataset(
    DatasetSpec(
        name="digits",
        variants=("binary", "17level", "dequantized"),
        loader=_load,
        description="scikit-learn 8x8 digits (embedded, no download); 1257/180/360 split",
        source="embedded (sklearn.datasets.load_digits)",
    )
)
