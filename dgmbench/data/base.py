"""What a dataset is, as far as models, trainers and metrics are concerned.

Value conventions (every loader follows them, every model relies on them):

* ``binary``      float tensor with values in {0., 1.}
* ``discrete``    float tensor of integer levels 0 .. num_levels-1 (e.g. 8-bit: 0..255)
* ``continuous``  float tensor of real values. Variants called ``dequantized`` are
                  (level + U(0,1)) / num_levels in [0, 1]; their ``dequantization_levels``
                  lets reports turn a density on [0,1]^D into a bits/dim bound on the
                  discrete data: bpd <= (nll + D log L) / (D log 2)  (Theis et al. 2016).

Splits are ``train``, ``valid`` and ``test``; images are (C, H, W), vectors (D,).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from dgmbench.registry import Registry, UnknownNameError, import_submodules

SPLITS = ("train", "valid", "test")
VALUE_TYPES = ("binary", "discrete", "continuous")


@dataclass(frozen=True)
class DataInfo:
    name: str  # registry name of the dataset, e.g. "binarized_mnist"
    variant: str  # e.g. "fixed", "dynamic", "8bit", "dequantized", "binary"
    shape: tuple[int, ...]  # per-example shape: (C, H, W) or (D,)
    value_type: str  # one of VALUE_TYPES
    num_levels: int | None = None  # 2 for binary, 17, 256; None for continuous
    num_classes: int | None = None  # labels available for conditioning / extractors
    dequantization_levels: int | None = None  # see module docstring
    dynamic_binarization: bool = False  # train split resampled every epoch

    def __post_init__(self):
        if self.value_type not in VALUE_TYPES:
            raise ValueError(f"value_type must be one of {VALUE_TYPES}, got {self.value_type!r}")

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def board(self) -> str:
        """Leaderboard key: results are only ever compared within one board, so fixed
        and dynamic binarization (or 8-bit and dequantized data) never share a table."""
        return f"{self.name}/{self.variant}"


@dataclass
class Dataset:
    """Tensors for the three splits plus how the training split changes per epoch."""

    info: DataInfo
    splits: dict[str, torch.Tensor]  # "train"/"valid"/"test" -> (N, *shape) float32
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # split -> (N,) int64
    # For dynamic binarization: epoch -> freshly sampled training set.
    resample_train: Callable[[int], torch.Tensor] | None = None
    description: str = ""

    def split(self, name: str) -> torch.Tensor:
        if name not in self.splits:
            raise UnknownNameError(f"unknown split {name!r}; valid splits: {', '.join(self.splits)}")
        return self.splits[name]

    def train_epoch(self, epoch: int) -> torch.Tensor:
        """The training data seen in `epoch` (resampled each epoch under dynamic binarization)."""
        if self.resample_train is not None:
            return self.resample_train(epoch)
        return self.splits["train"]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its variants and how to load each."""

    name: str
    variants: tuple[str, ...]  # the first is the default
    loader: Callable[[str], Dataset]  # variant -> Dataset
    description: str = ""
    source: str = ""  # canonical URL or "embedded"

    def load(self, variant: str | None = None) -> Dataset:
        variant = variant or self.variants[0]
        if variant not in self.variants:
            raise UnknownNameError(
                f"dataset {self.name!r} has no variant {variant!r}; valid variants: "
                f"{', '.join(self.variants)}"
            )
        return self.loader(variant)


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset", loader=lambda: import_submodules("dgmbench.data")
)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec)


def load_dataset(name: str, variant: str | None = None) -> Dataset:
    """Load dataset `name` (optionally as "name/variant" or with `variant`)."""
    if "/" in name and variant is None:
        name, variant = name.split("/", 1)
    return DATASETS.get(name).load(variant)
