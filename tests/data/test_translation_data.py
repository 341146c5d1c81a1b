"""Translation datasets (dgmbench.data.translation): the target half is the stated
transform of the source half, checked against independent numpy implementations; every
transform's inverse undoes it; unaligned training domains come from disjoint halves of the
training split (every training image is used at most once, in one domain only)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from dgmbench.data import DATASETS, load_dataset
from dgmbench.data.base import DataInfo
from dgmbench.data.download import DataFileError, MissingDataError
from dgmbench.data.translation import (
    VARIANTS,
    is_translation,
    join_pair,
    make_transform,
    pixel_permutation,
    split_pair,
    task_of,
)


def numpy_truth(name: str, images: np.ndarray) -> np.ndarray:
    """The transform written independently, one image at a time with numpy."""
    out = []
    for image in images[:, 0]:
        if name == "invert":
            out.append(1.0 - image)
        elif name == "rot90":
            out.append(np.rot90(image, 1))  # counter-clockwise, as documented
        else:
            order = pixel_permutation(*image.shape).numpy()
            out.append(np.take(image.reshape(-1), order).reshape(image.shape))
    return np.stack(out)[:, None]


def test_registered_with_every_variant():
    assert DATASETS.get("digits_translation").variants == VARIANTS
    assert "mnist_translation" in DATASETS.names()
    assert VARIANTS[0] == "invert_aligned" and len(VARIANTS) == 6


@pytest.mark.parametrize("transform", ["invert", "rot90", "permute"])
def test_aligned_pairs_hold_the_true_transform(transform):
    data = load_dataset(f"digits_translation/{transform}_aligned")
    digits = load_dataset("digits/binary")
    assert data.info.shape == (1, 8, 16) and data.info.value_type == "binary" and is_translation(data.info)
    for split in ("train", "valid", "test"):
        source, target = split_pair(data.split(split))
        assert torch.equal(source, digits.split(split))
        np.testing.assert_array_equal(target.numpy(), numpy_truth(transform, source.numpy()))
        assert torch.equal(data.labels[split], digits.labels[split])
    truth, pairing = task_of(data.info)
    assert truth.name == transform and pairing == "aligned"


@pytest.mark.parametrize("transform", ["invert", "rot90", "permute"])
def test_inverse_undoes_forward_and_is_not_the_identity(transform):
    x = torch.rand(5, 1, 6, 6)
    t = make_transform(transform, 6, 6)
    assert torch.equal(t.inverse(t.forward(x)), x) and torch.equal(t.forward(t.inverse(x)), x)
    assert not torch.equal(t.forward(x), x)


def test_permutation_is_a_fixed_bijection():
    order = pixel_permutation(8, 8)
    assert sorted(order.tolist()) == list(range(64)) and torch.equal(order, pixel_permutation(8, 8))
    assert (order != torch.arange(64)).sum() > 50


def _keys(images: torch.Tensor) -> Counter:
    return Counter(image.numpy().tobytes() for image in images)


@pytest.mark.parametrize("transform", ["invert", "permute"])
def test_unaligned_domains_come_from_disjoint_halves(transform):
    data = load_dataset(f"digits_translation/{transform}_unaligned")
    train = load_dataset("digits/binary").split("train")
    source, target = split_pair(data.split("train"))
    assert len(source) == len(train) // 2
    back = make_transform(transform, 8, 8).inverse(target)
    used = _keys(source) + _keys(back)
    available = _keys(train)
    # every row's two images are distinct training images: each one used at most once overall
    assert sum(used.values()) == 2 * (len(train) // 2)
    assert all(used[key] <= available[key] for key in used)
    # the rows are not pairs: (almost) no row's target is the transform of its own source
    assert (back == source).flatten(1).all(1).float().mean() < 0.05
    # evaluation splits stay aligned, so translations are scored against the truth
    for split in ("valid", "test"):
        s, t = split_pair(data.split(split))
        assert torch.equal(make_transform(transform, 8, 8).forward(s), t)


def test_pair_helpers_round_trip():
    a, b = torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4)
    joined = join_pair(a, b)
    assert joined.shape == (3, 2, 4, 8)
    left, right = split_pair(joined)
    assert torch.equal(left, a) and torch.equal(right, b)


def test_bad_names_fail_with_the_valid_ones():
    with pytest.raises(LookupError, match="invert_aligned"):
        load_dataset("digits_translation/flip_aligned")
    with pytest.raises(ValueError, match="not a translation dataset"):
        task_of(DataInfo(name="digits", variant="binary", shape=(1, 8, 8), value_type="binary"))
    with pytest.raises(ValueError, match="not one of"):
        make_transform("flip", 8, 8)


@pytest.mark.slow
def test_mnist_pairs_from_the_fixed_binarization():
    """mnist_translation: 28x28 pairs from binarized_mnist/fixed (about 10 s to parse)."""
    try:
        data = load_dataset("mnist_translation/rot90_unaligned")
    except (DataFileError, MissingDataError) as err:  # no offline copy: nothing to check here
        pytest.skip(f"binarized_mnist not available: {err}")
    assert data.info.shape == (1, 28, 56) and data.info.value_type == "binary"
    assert {s: len(x) for s, x in data.splits.items()} == {"train": 25_000, "valid": 10_000, "test": 10_000}
    source, target = split_pair(data.split("test")[:50])
    np.testing.assert_array_equal(target.numpy(), numpy_truth("rot90", source.numpy()))
