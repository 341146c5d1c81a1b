"""FID / KID / IS: equal to torch-fidelity's own calculate_metrics on identical inputs, FID equal
to the closed-form Fréchet distance of Gaussians (scipy sqrtm, float64), exactly 0 for a set
against itself even with fewer samples than feature dimensions, independent of batch size,
and the registered metric records its protocol, caches reference features and is seeded."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
from threadpoolctl import threadpool_limits
from torch_fidelity.metric_fid import (
    fid_features_to_statistics,
    fid_statistics_to_metric,
)

from dgmbench.data import load_dataset
from dgmbench.data.base import DataInfo, Dataset
from dgmbench.metrics import METRICS, EvalContext, evaluate, fidelity
from dgmbench.metrics.features import UInt8Images, extract_features
from dgmbench.metrics.fidelity import (
    fid_from_features,
    fidelity_metrics,
    frechet_distance,
    resolve_extractor,
    to_uint8,
)
from dgmbench.models.base import GenerativeModel

REL = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # On an oversubscribed CPU, multi-threaded OpenBLAS spins and small matrix ops take seconds.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits/17level")
    return data, to_uint8(data.split("train"), data.info), to_uint8(data.split("test"), data.info)


def by_name(values):
    return {v.name: v for v in values}


# --- uint8 conversion ---------------------------------------------------------------------------
def test_uint8_conversion_rules():
    info = lambda **kw: DataInfo(name="t", variant="v", shape=(1, 1, 4), **kw)
    binary = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    assert to_uint8(binary, info(value_type="binary", num_levels=2)).flatten().tolist() == [0, 255, 255, 0]
    levels = torch.tensor([[[[0.0, 1.0, 8.0, 16.0]]]])
    assert to_uint8(levels, info(value_type="discrete", num_levels=17)).flatten().tolist() == [0, 16, 128, 255]
    continuous = torch.tensor([[[[-0.3, 0.25, 0.999, 1.7]]]])
    assert to_uint8(continuous, info(value_type="continuous")).flatten().tolist() == [0, 64, 255, 255]
    assert to_uint8(levels, info(value_type="discrete", num_levels=17)).dtype == torch.uint8
    with pytest.raises(ValueError, match="non-finite"):
        to_uint8(torch.tensor([[[[0.0, math.nan, 0.0, 0.0]]]]), info(value_type="continuous"))


def test_dequantized_images_convert_back_to_exactly_the_discrete_images(digits):
    """Ground truth: the 17level variant holds the levels the dequantized variant was made from."""
    _, _, test_levels = digits
    dequantized = load_dataset("digits/dequantized")
    assert torch.equal(to_uint8(dequantized.split("test"), dequantized.info), test_levels)


# --- agreement with torch-fidelity --------------------------------------------------------------
def test_equal_to_torch_fidelity_calculate_metrics(digits):
    _, train, test = digits
    ours = by_name(fidelity_metrics(train, test, "digits-cnn", kid_subsets=20, kid_subset_size=180))
    theirs = torch_fidelity.calculate_metrics(
        input1=UInt8Images(train), input2=UInt8Images(test), feature_extractor="digits-cnn",
        isc=True, fid=True, kid=True, kid_subsets=20, kid_subset_size=180,
        cuda=False, cache=False, save_cpu_ram=True, verbose=False,
    )
    assert ours["fid"].value == pytest.approx(theirs["frechet_inception_distance"], rel=REL)
    assert ours["kid"].value == pytest.approx(theirs["kernel_inception_distance_mean"], rel=REL)
    assert ours["kid"].stderr == pytest.approx(theirs["kernel_inception_distance_std"], rel=REL)
    assert ours["is"].value == pytest.approx(theirs["inception_score_mean"], rel=REL)
    assert ours["is"].stderr == pytest.approx(theirs["inception_score_std"], rel=REL)


# --- the Fréchet distance -----------------------------------------------------------------------
def closed_form_fid(mu1, sigma1, mu2, sigma2) -> float:
    """Independent reference: Heusel et al. eq. 6 with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean.real))


def random_gaussian(d: int, rng: np.random.Generator):
    a = rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_equals_scipy_closed_form():
    rng = np.random.default_rng(0)
    for d in (1, 3, 20):
        (mu1, sigma1), (mu2, sigma2) = random_gaussian(d, rng), random_gaussian(d, rng)
        assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(
            closed_form_fid(mu1, sigma1, mu2, sigma2), rel=1e-9
        )


def test_frechet_distance_of_singular_commuting_covariances():
    """Diagonal covariances (zeros included): FID = |mu1-mu2|^2 + sum (sqrt a - sqrt b)^2."""
    a, b = np.array([0.0, 1.0, 4.0, 0.0]), np.array([0.0, 9.0, 1.0, 2.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 0.0, 2.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_fid_of_gaussian_samples_matches_closed_form_within_sampling_error():
    rng = np.random.default_rng(1)
    d, n = 3, 20_000
    (mu1, sigma1), (mu2, sigma2) = random_gaussian(d, rng), random_gaussian(d, rng)
    truth = closed_form_fid(mu1, sigma1, mu2, sigma2)
    x = torch.from_numpy(rng.multivariate_normal(mu1, sigma1, size=n))
    y = torch.from_numpy(rng.multivariate_normal(mu2, sigma2, size=n))
    # The estimate's standard deviation here, measured over 200 repetitions, is 0.024 (truth
    # 2.846, mean estimate 2.8457: the O(d/n) bias is negligible); 0.12 is 5 standard deviations.
    assert fid_from_features(x, y) == pytest.approx(truth, abs=0.12)
    # ... and a clearly different distribution is far outside that tolerance
    assert abs(fid_from_features(x, y + 0.5) - truth) > 0.5


def test_agrees_with_torch_fidelity_fid_from_statistics_when_n_exceeds_d():
    rng = np.random.default_rng(2)
    x, y = torch.from_numpy(rng.normal(size=(500, 30))), torch.from_numpy(rng.normal(size=(400, 30)) * 1.3 + 0.2)
    stats_x, stats_y = fid_features_to_statistics(x), fid_features_to_statistics(y)
    theirs = fid_statistics_to_metric(stats_x, stats_y, verbose=False)["frechet_inception_distance"]
    assert fid_from_features(x, y) == pytest.approx(theirs, rel=1e-9)


@pytest.mark.parametrize("n", [2, 10, 49, 200])
def test_fid_of_a_set_against_itself_is_zero_also_with_fewer_samples_than_dimensions(n):
    """torch-fidelity's sqrt(eigvals(S1 S2)) gives errors of ~1e-4 here at n < d; ours is exact."""
    rng = np.random.default_rng(n)
    x = torch.from_numpy(rng.normal(size=(n, 50)) * 3 + 1)
    value = fid_from_features(x, x)
    assert isinstance(value, float) and math.isfinite(value)
    assert abs(value) < 1e-9


def test_fid_of_digits_against_themselves_is_zero_at_n_below_feature_dim(digits):
    _, _, test = digits
    for n in (20, 100):  # below the 128 penultimate features
        values = by_name(fidelity_metrics(test[:n], test[:n], "digits-cnn", kid_subsets=5))
        assert isinstance(values["fid"].value, float)
        assert abs(values["fid"].value) < 1e-6


def test_fid_does_not_depend_on_batch_size(digits):
    _, train, test = digits
    big = by_name(fidelity_metrics(train[:300], test, "digits-cnn", batch_size=500, kid_subsets=10))
    small = by_name(fidelity_metrics(train[:300], test, "digits-cnn", batch_size=7, kid_subsets=10))
    for name in ("fid", "kid", "is"):
        assert small[name].value == pytest.approx(big[name].value, rel=REL)


def test_domain_fid_separates_data_from_noise(digits):
    _, train, test = digits
    data = by_name(fidelity_metrics(train, test, "digits-cnn", kid_subsets=10))
    noise = torch.randint(0, 256, test.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    junk = by_name(fidelity_metrics(noise, test, "digits-cnn", kid_subsets=10))
    assert data["fid"].value < 10  # measured: 4.06
    assert junk["fid"].value > 100  # measured: 253
    assert junk["kid"].value > 10 * abs(data["kid"].value)
    # IS of the digits classifier: near 10 classes for real digits, far less for noise
    assert data["is"].value > 9 and junk["is"].value < 5
    assert data["is"].higher_is_better and not data["fid"].higher_is_better


def test_protocol_is_recorded(digits):
    _, train, test = digits
    values = by_name(fidelity_metrics(train[:200], test, "digits-cnn", kid_subsets=10))
    for value in values.values():
        protocol = value.protocol
        assert protocol["extractor"] == "digits-cnn"
        assert len(protocol["weights_sha256"]) == 64
        assert protocol["n_generated"] == 200 and protocol["n_reference"] == 360
        assert protocol["precision"] == "float64 statistics"
        assert "resize" in protocol and "layer" in protocol
    assert values["fid"].protocol["layer"] == "penultimate"
    assert values["kid"].protocol["kid_subset_size"] == 100 and values["kid"].protocol["kid_subsets"] == 10
    assert values["is"].protocol["layer"] == "logits"
    assert "domain classifier" in values["is"].protocol["classifier"]


# --- the registered metric ----------------------------------------------------------------------
@dataclass
class _Config:
    pass


class ResamplesData(GenerativeModel):
    """A 'model' whose samples are random training images: FID against test must be small."""

    Config = _Config
    family = "test"
    value_types = ("binary", "discrete", "continuous")

    def __init__(self, dataset: Dataset):
        super().__init__(_Config(), dataset.info)
        self.register_buffer("training_images", dataset.split("train").clone())
        self.sample_calls = 0

    def sample(self, n):
        self.sample_calls += 1
        return self.training_images[torch.randint(len(self.training_images), (n,), device=self.training_images.device)]

    def loss(self, x):
        return torch.zeros(())


def test_metric_is_registered_and_applies_to_image_datasets_only():
    metric = METRICS.get("sample_quality_fidelity")
    digits = load_dataset("digits/binary")
    assert metric.applies(ResamplesData(digits), digits)
    moons = load_dataset("two_moons")
    assert not metric.applies(None, moons)


def test_rgb_images_without_inception_enabled_give_no_values_and_draw_no_samples():
    patches = load_dataset("image_patches/8bit")
    model = ResamplesData(patches)
    metric = METRICS.get("sample_quality_fidelity")
    assert metric.applies(model, patches)
    assert metric(model, patches, EvalContext(quick=True)) == []
    assert model.sample_calls == 0
    assert resolve_extractor(patches.info, EvalContext(settings={"inception": True})) == "inception-v3-compat"
    assert resolve_extractor(patches.info, EvalContext(settings={"fid_extractor": "digits-cnn"})) == "digits-cnn"


def test_quick_evaluation_records_fid_kid_is_and_is_seeded(tmp_path):
    data = load_dataset("digits/binary")
    model = ResamplesData(data)
    ctx = EvalContext(quick=True, workdir=str(tmp_path), seed=3)
    state = torch.get_rng_state()
    first = by_name(evaluate(model, data, ctx, only=["sample_quality_fidelity"]))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
    assert set(first) == {"fid", "kid", "is"}
    assert first["fid"].n == 360 and first["fid"].protocol["n_reference"] == 360
    assert first["fid"].protocol["reference_split"] == "test"
    assert first["fid"].protocol["board"] == "digits/binary"
    assert first["fid"].value < 10  # resampled training digits look like test digits
    again = by_name(evaluate(model, data, ctx, only=["sample_quality_fidelity"]))
    assert {k: v.value for k, v in again.items()} == {k: v.value for k, v in first.items()}
    other_seed = by_name(evaluate(model, data, EvalContext(quick=True, seed=4), only=["sample_quality_fidelity"]))
    assert other_seed["fid"].value != first["fid"].value


def test_reference_features_are_cached_per_board_and_reused(tmp_path, monkeypatch):
    calls = []
    real_extract = fidelity.extract_featuresdict

    def counting_extract(images, *args, **kwargs):
        calls.append(len(images))
        return real_extract(images, *args, **kwargs)

    monkeypatch.setattr(fidelity, "extract_featuresdict", counting_extract)
    metric = METRICS.get("sample_quality_fidelity")
    ctx = EvalContext(quick=True, workdir=str(tmp_path), settings={"fid_samples": 50, "kid_subsets": 5})
    binary = load_dataset("digits/binary")
    first = by_name(metric(ResamplesData(binary), binary, ctx))
    assert calls == [50, 360]  # samples, then the reference
    second = by_name(metric(ResamplesData(binary), binary, ctx))
    assert calls == [50, 360, 50]  # the reference came from the cache
    assert second["fid"].value == first["fid"].value
    levels = load_dataset("digits/17level")
    metric(ResamplesData(levels), levels, ctx)
    assert calls[-2:] == [50, 360]  # another board: another cache entry
    cached = sorted(p.name for p in (tmp_path / "fidelity_cache").iterdir())
    assert len(cached) == 2 and cached[0].startswith("digits-17level-test-n360") and "digits-cnn" in cached[0]


def test_extract_features_api_for_other_metrics(digits):
    _, _, test = digits
    features = extract_features(test[:10], "digits-cnn", batch_size=4, device="cpu")
    assert features.shape == (10, 128) and features.dtype == torch.float64


@pytest.mark.slow
@pytest.mark.parametrize("board, extractor", [("mnist/8bit", "mnist-cnn"), ("fashion_mnist/8bit", "fashion_mnist-cnn")])
def test_mnist_domain_fid_separates_data_from_noise(board, extractor):
    data = load_dataset(board)
    train = to_uint8(data.split("train")[:1000], data.info)
    test = to_uint8(data.split("test")[:1000], data.info)
    noise = torch.randint(0, 256, test.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real = by_name(fidelity_metrics(train, test, extractor, kid_subsets=10))
    junk = by_name(fidelity_metrics(noise, test, extractor, kid_subsets=10))
    assert real["fid"].value < 20 and junk["fid"].value > 10 * real["fid"].value
