"""Memorisation check: nearest-neighbour distances against scipy, and digits generators
that copy the training set (must be flagged) or sample unseen data (must not be)."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from test_prdc import ReplayModel, quick_context

from dgmbench.data import load_dataset
from dgmbench.metrics.base import METRICS
from dgmbench.metrics.memorization import memorization_check, nearest_neighbour_distances


@pytest.mark.parametrize("max_block_elements", [1, 64, 2**24])
def test_nearest_neighbour_distances_match_scipy(max_block_elements):
    rng = np.random.default_rng(0)
    queries, reference = rng.normal(size=(23, 7)), rng.normal(size=(31, 7))
    got = nearest_neighbour_distances(torch.from_numpy(queries), torch.from_numpy(reference), max_block_elements)
    np.testing.assert_allclose(got.numpy(), cdist(queries, reference).min(axis=1), rtol=1e-12)


def test_exact_copies_have_distance_exactly_zero():
    reference = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 100
    copies = reference[[3, 17, 42]]
    assert torch.equal(nearest_neighbour_distances(copies, reference), torch.zeros(3, dtype=torch.float64))


def test_ratio_and_copy_fraction_on_a_hand_made_example():
    """1-D points: train {0, 10}, held-out {4, 20}; samples 0 (a copy), 3, 12.
    r = d_train / d_heldout = 0/4, 3/1, 2/8 -> median 0.25. Queries 5 and 18: r = 5/1, 8/2
    -> median 4.5, so the calibrated ratio is 0.25 / 4.5. The copy distance is 0.1 times
    the median held-out -> train distance (4 and 10 -> 7): 0.7, so one sample in three copies."""
    column = lambda *values: torch.tensor(values, dtype=torch.float64)[:, None]
    result = memorization_check(column(0, 3, 12), column(0, 10), column(4, 20), queries=column(5, 18))
    assert result.raw_median_ratio == pytest.approx(0.25)
    assert result.reference_median_ratio == pytest.approx(4.5)
    assert result.memorization_ratio == pytest.approx(0.25 / 4.5)
    assert result.copy_distance == pytest.approx(0.7)
    assert result.copy_fraction == pytest.approx(1 / 3)
    assert result.copy_fraction_reference == 0.0
    uncalibrated = memorization_check(column(0, 3, 12), column(0, 10), column(4, 20))
    assert uncalibrated.memorization_ratio == pytest.approx(0.25) and uncalibrated.reference_median_ratio is None


def test_sample_equal_to_train_and_heldout_counts_as_ratio_one():
    column = lambda *values: torch.tensor(values, dtype=torch.float64)[:, None]
    result = memorization_check(column(1, 1, 1), column(1, 5), column(1, 9))
    assert result.raw_median_ratio == 1.0


@pytest.mark.parametrize("variant", ["binary", "17level", "dequantized"])
def test_digits_copier_is_flagged_and_honest_sampler_is_not(variant):
    data = load_dataset("digits", variant)
    train, valid, test = (data.split(s).flatten(1) for s in ("train", "valid", "test"))
    queries, unseen = test[:180], test[180:]  # disjoint halves of the test split
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:180]]

    copier = memorization_check(copies, train, valid, queries)
    assert copier.memorization_ratio < 0.05
    assert copier.copy_fraction == 1.0

    honest = memorization_check(unseen, train, valid, queries)
    assert 0.8 < honest.memorization_ratio < 1.25
    assert honest.copy_fraction < 0.1  # binarised digits do have a few chance duplicates
    assert honest.copy_fraction <= honest.copy_fraction_reference + 0.05
    # uncalibrated, size bias: the 1,257 training images are nearer than the 180 held-out ones
    assert honest.raw_median_ratio < honest.memorization_ratio


# --- the registered metric -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["binary", "dequantized"])
def test_registered_memorization_flags_a_copier(variant):
    data = load_dataset("digits", variant)
    metric = METRICS.get("memorization")
    copier = {v.name: v for v in metric(ReplayModel(data.split("train"), data.info), data, quick_context())}
    assert copier["memorization_ratio"].value < 0.05 and copier["copy_fraction"].value == 1.0
    protocol = copier["copy_fraction"].protocol
    assert protocol["heldout_split"] == "valid" and protocol["calibration_split"] == "test"
    assert protocol["n_samples"] == 360 and protocol["n_train"] == 1257 and protocol["n_heldout"] == 180
    # a generator of unseen data: the calibration split itself, resampled with replacement
    unseen = {v.name: v for v in metric(ReplayModel(data.split("test"), data.info), data, quick_context())}
    assert 0.8 < unseen["memorization_ratio"].value < 1.25
    assert unseen["copy_fraction"].value < 0.1


def test_memorization_does_not_apply_to_translators():
    """A translator samples translations of validation sources: the ratio would not measure copying."""
    from dgmbench.data import load_dataset
    from dgmbench.metrics.memorization import Memorization
    from dgmbench.models import build_model

    dataset = load_dataset("digits_translation/invert_aligned")
    model = build_model("pix2pix", dataset.info)
    assert not Memorization().applies(model, dataset)
