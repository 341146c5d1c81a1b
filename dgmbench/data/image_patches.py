"""32x32 RGB patches of scikit-learn's two bundled photographs: the embedded colour-image
dataset (CIFAR-10-shaped, no download) for tests and quick runs of colour-image models.

``sklearn.datasets.load_sample_images`` ships ``china.jpg`` and ``flower.jpg``, each
427x640x3 uint8. Each is cut into the non-overlapping grid of 32x32 patches starting at its
top-left corner (13 rows x 20 columns; the bottom 11 pixel rows are dropped), giving 260
patches per photo, 520 in all, shaped (3, 32, 32). The label is the photo (0 china,
1 flower).

Split (fixed, documented): one permutation of the 520 patches drawn with numpy's
default_rng(0); the first 104 are test, the next 52 valid, the remaining 364 train.
Non-overlapping patches keep the splits pixel-disjoint (neighbouring patches are still
correlated, as in any photo-patch dataset).

Variants ``8bit`` (levels 0..255) and ``dequantized`` ((level + u) / 256), as for MNIST
(see dgmbench.data.mnist).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dgmbench.data.base import Dataset, DatasetSpec, register_dataset
from dgmbench.data.mnist import image_variant

PATCH = 32
N_TEST, N_VALID = 104, 52
PHOTOS = ("china.jpg", "flower.jpg")
DESCRIPTION = (
    "32x32 RGB patches (non-overlapping grid) of scikit-learn's china.jpg and flower.jpg "
    "(embedded, no download); 364/52/104 split"
)


def grid_patches(image: np.ndarray, size: int = PATCH) -> np.ndarray:
    """(H, W, C) image -> (rows * cols, C, size, size) non-overlapping patches, row-major."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    cropped = image[: rows * size, : cols * size]
    patches = cropped.reshape(rows, size, cols, size, image.shape[2])
    return patches.transpose(0, 2, 4, 1, 3).reshape(rows * cols, image.shape[2], size, size)


def patches_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """All patches (N, 3, 32, 32) uint8 in photo then grid order, and their photo index."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    by_name = dict(zip((Path(name).name for name in bunch.filenames), bunch.images, strict=True))
    per_photo = [grid_patches(by_name[name]) for name in PHOTOS]
    labels = np.concatenate([np.full(len(p), index, dtype=np.int64) for index, p in enumerate(per_photo)])
    return np.concatenate(per_photo), labels


def _load(variant: str) -> Dataset:
    patches, labels = patches_and_labels()
    order = np.random.default_rng(0).permutation(len(patches))
    index = {
        "train": order[N_TEST + N_VALID :],
        "valid": order[N_TEST : N_TEST + N_VALID],
        "test": order[:N_TEST],
    }
    return image_variant(
        "image_patches",
        variant,
        {split: patches[i] for split, i in index.items()},
        {split: labels[i] for split, i in index.items()},
        num_classes=len(PHOTOS),
        description=DESCRIPTION,
    )


register_dataset(
    DatasetSpec(
        name="image_patches",
        variants=("8bit", "dequantized"),
        loader=_load,
        description=DESCRIPTION,
        source="embedded (sklearn.datasets.load_sample_images)",
    )
)
