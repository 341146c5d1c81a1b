"""Image-to-image translation tasks whose true mapping is known: a source image x and its
image T(x) under a fixed transform, so a translator G is scored against the truth T(x),
not only by eye (pix2pix, Isola et al. 2017; CycleGAN, Zhu et al. 2017).

Every example is one image holding a pair side by side, source on the left and target on
the right, (C, H, 2W), as pix2pix's own datasets store their A|B pairs; :func:`split_pair`
and :func:`join_pair` convert. The pair keeps every image tool (sample grids, Parzen,
memorization) working on the joint of (source, translation).

Datasets (``<source>_translation``), binary sources:

* ``digits_translation``  the embedded 8x8 ``digits/binary`` (1257/180/360 split).
* ``mnist_translation``   ``binarized_mnist/fixed`` (Larochelle & Murray 2011, 50k/10k/10k).

Variants ``<transform>_<pairing>``; transforms, each a bijection with a known inverse:

* ``invert``   x -> 1 - x (a "colour" transform: foreground and background swap).
* ``rot90``    rotation by 90 degrees counter-clockwise (``torch.rot90`` on (H, W)).
* ``permute``  a fixed pixel permutation (seeded, the same for every image): no local
               structure survives, so a convolutional translator has to learn it globally.

Pairings (valid and test are always aligned: the target half is the truth T(x)):

* ``aligned``    train rows are (x, T(x)): paired supervision (pix2pix).
* ``unaligned``  the training split is shuffled once (seed 0) and halved; a row is
                 (a_i, T(b_i)) with a from the first half and b from the second, so no
                 image is ever seen in both domains (CycleGAN's unpaired setting). It has
                 half as many rows as the aligned training split.

Labels are the source image's class (the left half's) where the source has labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dgmbench.data.base import DataInfo, Dataset, DatasetSpec, load_dataset, register_dataset

TRANSFORMS = ("invert", "rot90", "permute")
PAIRINGS = ("aligned", "unaligned")
VARIANTS = tuple(f"{t}_{p}" for t in TRANSFORMS for p in PAIRINGS)
# translation dataset name -> the single-domain dataset (name/variant) its images come from
SOURCES = {"digits_translation": "digits/binary", "mnist_translation": "binarized_mnist/fixed"}
PERMUTATION_SEED = 0
UNALIGNED_SEED = 0


def split_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(source, target) halves of pair images (..., C, H, 2W)."""
    width = x.shape[-1] // 2
    return x[..., :width], x[..., width:]


def join_pair(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pair images (..., C, H, 2W): source left, target right."""
    return torch.cat([source, target], dim=-1)


def pixel_permutation(height: int, width: int) -> torch.Tensor:
    """The fixed permutation of H*W pixel positions used by the ``permute`` transform."""
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


@dataclass(frozen=True)
class Transform:
    """A known bijection on images (..., C, H, W) and its inverse."""

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    inverse: Callable[[torch.Tensor], torch.Tensor]


def make_transform(name: str, height: int, width: int) -> Transform:
    if name == "invert":
        return Transform(name, lambda x: 1 - x, lambda y: 1 - y)
    if name == "rot90":
        if height != width:
            raise ValueError(f"rot90 needs square images, got {height}x{width}")
        return Transform(name, lambda x: torch.rot90(x, 1, dims=(-2, -1)), lambda y: torch.rot90(y, -1, dims=(-2, -1)))
    if name == "permute":
        order = pixel_permutation(height, width)
        inverse_order = torch.argsort(order)

        def permute(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return x.flatten(-2)[..., index.to(x.device)].unflatten(-1, (height, width))

        return Transform(name, lambda x: permute(x, order), lambda y: permute(y, inverse_order))
    raise ValueError(f"transform {name!r} is not one of {', '.join(TRANSFORMS)}")


def is_translation(info: DataInfo) -> bool:
    """Whether `info` describes a translation dataset of this module (pairs side by side)."""
    return info.name in SOURCES and info.variant in VARIANTS


def task_of(info: DataInfo) -> tuple[Transform, str]:
    """The transform and the pairing of a translation dataset."""
    if not is_translation(info):
        raise ValueError(
            f"{info.board} is not a translation dataset; use one of "
            f"{', '.join(f'{n}/<variant>' for n in SOURCES)} with variants {', '.join(VARIANTS)}"
        )
    transform, pairing = info.variant.rsplit("_", 1)
    height, width = info.shape[1], info.shape[2] // 2
    return make_transform(transform, height, width), pairing


def _load(name: str, variant: str) -> Dataset:
    source = load_dataset(SOURCES[name])
    transform_name, pairing = variant.rsplit("_", 1)
    channels, height, width = source.info.shape
    transform = make_transform(transform_name, height, width)
    splits = {split: join_pair(x, transform.forward(x)) for split, x in source.splits.items()}
    labels = dict(source.labels)
    if pairing == "unaligned":
        train = source.splits["train"]
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(UNALIGNED_SEED))
        half = len(train) // 2
        a, b = order[:half], order[half : 2 * half]
        splits["train"] = join_pair(train[a], transform.forward(train[b]))
        if "train" in labels:
            labels["train"] = labels["train"][a]
    info = DataInfo(
        name=name, variant=variant, shape=(channels, height, 2 * width), value_type=source.info.value_type,
        num_levels=source.info.num_levels, num_classes=source.info.num_classes,
    )
    description = (f"{source.info.board} (left) and its {transform_name} (right), {pairing} training pairs; "
                   "valid/test aligned")
    return Dataset(info, splits, labels, description=description)


for _name, _source in SOURCES.items():
    register_dataset(
        DatasetSpec(
            name=_name,
            variants=VARIANTS,
            loader=lambda variant, _name=_name: _load(_name, variant),
            description=f"translation pairs from {_source}: source | T(source), T in {', '.join(TRANSFORMS)}",
            source=f"derived from {_source}",
        )
    )
