"""Precision/recall (k=3) and density/coverage (k=5) against a plain numpy/scipy
implementation of the definitions, and on digits generators whose behaviour is known."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from dgmbench.data import load_dataset
from dgmbench.data.base import DataInfo, Dataset
from dgmbench.metrics.base import METRICS, EvalContext
from dgmbench.metrics.features import EXTRACTORS, file_sha256
from dgmbench.metrics.prdc import knn_radii, precision_recall_density_coverage
from dgmbench.models.base import GenerativeModel


def brute_force_prdc(real, fake, k_pr, k_dc):
    """The definitions of Kynkäänniemi et al. 2019 and Naeem et al. 2020, written out."""
    real_real, fake_fake, real_fake = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    # column 0 of each sorted row is the point itself (distance 0)
    real_radius_pr = np.sort(real_real, axis=1)[:, k_pr]
    real_radius_dc = np.sort(real_real, axis=1)[:, k_dc]
    fake_radius_pr = np.sort(fake_fake, axis=1)[:, k_pr]
    precision = np.mean([any(real_fake[i, j] < real_radius_pr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(real_fake[i, j] < fake_radius_pr[j] for j in range(len(fake))) for i in range(len(real))])
    density = sum(
        real_fake[i, j] < real_radius_dc[i] for i in range(len(real)) for j in range(len(fake))
    ) / (k_dc * len(fake))
    coverage = np.mean([real_fake[i].min() < real_radius_dc[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("max_block_elements", [1, 97, 5_000, 2**24])
@pytest.mark.parametrize("n_real,n_fake,dim,shift", [(120, 90, 8, 0.4), (60, 150, 12, 0.5), (80, 80, 3, 1.0)])
def test_matches_brute_force(n_real, n_fake, dim, shift, max_block_elements):
    rng = np.random.default_rng(n_real + dim)
    real = rng.normal(size=(n_real, dim))
    fake = 1.3 * rng.normal(size=(n_fake, dim)) + shift
    expected = brute_force_prdc(real, fake, k_pr=3, k_dc=5)
    got = precision_recall_density_coverage(
        torch.from_numpy(real), torch.from_numpy(fake), max_block_elements=max_block_elements
    )
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name
    # the case must be informative: none of the metrics saturated
    assert 0.05 < min(got["precision"], got["recall"], got["coverage"])
    assert max(got["precision"], got["recall"], got["coverage"]) < 1


@pytest.mark.parametrize("max_block_elements", [1_000, 2**24])
def test_matches_reference_prdc_package(max_block_elements):
    """Against the authors' own package (clovaai/generative-evaluation-prdc, PyPI `prdc`),
    which uses one k for all four metrics: k=3 for precision/recall, k=5 for density/coverage."""
    reference_prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(11)
    real, fake = rng.normal(size=(300, 64)), 1.1 * rng.normal(size=(250, 64)) + 0.1
    with_k3 = reference_prdc.compute_prdc(real, fake, nearest_k=3)
    with_k5 = reference_prdc.compute_prdc(real, fake, nearest_k=5)
    got = precision_recall_density_coverage(
        torch.from_numpy(real), torch.from_numpy(fake), max_block_elements=max_block_elements
    )
    assert got["precision"] == pytest.approx(with_k3["precision"], abs=1e-12)
    assert got["recall"] == pytest.approx(with_k3["recall"], abs=1e-12)
    assert got["density"] == pytest.approx(with_k5["density"], abs=1e-12)
    assert got["coverage"] == pytest.approx(with_k5["coverage"], abs=1e-12)


@pytest.mark.parametrize("k_pr,k_dc", [(1, 2), (4, 7)])
def test_other_k_match_brute_force(k_pr, k_dc):
    rng = np.random.default_rng(k_pr)
    real, fake = rng.normal(size=(70, 5)), rng.normal(size=(50, 5)) + 0.5
    got = precision_recall_density_coverage(
        torch.from_numpy(real), torch.from_numpy(fake), k_pr, k_dc, max_block_elements=300
    )
    expected = brute_force_prdc(real, fake, k_pr, k_dc)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name


def test_knn_radii_exclude_self_and_match_sorting():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 6))
    radii = knn_radii(torch.from_numpy(points), (1, 3, 5), max_block_elements=50)
    distances = cdist(points, points)
    np.fill_diagonal(distances, np.inf)
    for k in (1, 3, 5):
        np.testing.assert_allclose(radii[k].numpy(), np.sort(distances, axis=1)[:, k - 1], rtol=1e-12)


def test_identical_inputs_are_perfect():
    features = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    got = precision_recall_density_coverage(features, features.clone(), max_block_elements=10_000)
    assert got["precision"] == 1.0 and got["recall"] == 1.0 and got["coverage"] == 1.0


def test_fake_from_one_real_cluster_has_high_precision_low_recall():
    """Real data: two far-apart clusters; fake: points of one of them. Every fake point is
    on the real manifold (precision 1), half of the real data is not covered (recall 1/2)."""
    generator = torch.Generator().manual_seed(1)
    cluster_a = torch.randn(150, 4, generator=generator)
    cluster_b = torch.randn(150, 4, generator=generator) + 50.0
    real = torch.cat([cluster_a, cluster_b])
    fake = cluster_a[:100]
    got = precision_recall_density_coverage(real, fake)
    assert got["precision"] == 1.0
    assert got["recall"] <= 0.5
    assert got["coverage"] <= 0.5
    swapped = precision_recall_density_coverage(fake, real)  # roles reversed: the other way round
    assert swapped["recall"] == 1.0 and swapped["precision"] <= 0.5


def test_float32_input_same_result_and_input_not_modified():
    rng = np.random.default_rng(5)
    real32 = torch.from_numpy(rng.normal(size=(100, 10)).astype(np.float32))
    fake32 = torch.from_numpy(rng.normal(size=(100, 10)).astype(np.float32)) + 0.3
    before = real32.clone()
    got = precision_recall_density_coverage(real32, fake32)
    assert torch.equal(real32, before)
    expected = brute_force_prdc(real32.double().numpy(), fake32.double().numpy(), 3, 5)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-6)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="nearest neighbours"):
        precision_recall_density_coverage(torch.randn(5, 2), torch.randn(20, 2))
    with pytest.raises(ValueError, match="features"):
        precision_recall_density_coverage(torch.randn(20, 2), torch.randn(20, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(6)
    real, fake = torch.from_numpy(rng.normal(size=(300, 20))), torch.from_numpy(rng.normal(size=(250, 20)) + 0.2)
    cpu = precision_recall_density_coverage(real, fake, max_block_elements=10_000)
    cuda = precision_recall_density_coverage(real.cuda(), fake.cuda(), max_block_elements=10_000)
    for name in cpu:
        assert cuda[name] == pytest.approx(cpu[name], abs=1e-6)


@pytest.mark.parametrize("variant", ["binary", "17level"])
def test_mode_collapse_on_digits_has_low_recall_and_coverage(variant):
    """A generator that only emits one class (real training images of that class) against
    one that emits held-out images of every class, both scored against the test split,
    on pixels so that the test does not depend on a trained feature extractor."""
    data = load_dataset("digits", variant)
    train, labels = data.split("train").flatten(1), data.labels["train"]
    reference = data.split("test").flatten(1)
    honest = precision_recall_density_coverage(reference, data.split("valid").flatten(1)[:100])
    assert honest["recall"] > 0.8 and honest["coverage"] > 0.5 and honest["precision"] > 0.8
    for digit in (0, 3, 7):
        collapsed = precision_recall_density_coverage(reference, train[labels == digit][:100])
        assert collapsed["precision"] > 0.7  # real images: still on the data manifold
        assert collapsed["recall"] < 0.3 and collapsed["coverage"] < 0.3
        assert collapsed["recall"] < honest["recall"] - 0.5


# --- the registered metric -----------------------------------------------------------------------


class ReplayModel(GenerativeModel):
    """A 'generator' that returns rows of a fixed bank of examples, drawn with replacement
    from the global RNG: a stand-in whose sample distribution is known exactly."""

    Config = dict
    family = "test"
    value_types = ("binary", "discrete", "continuous")

    def __init__(self, bank, info):
        super().__init__({}, info)
        self.register_buffer("bank", bank)

    def sample(self, n):
        return self.bank[torch.randint(len(self.bank), (n,), device=self.bank.device)]

    def loss(self, x):
        return x.sum() * 0.0


def quick_context(**settings):
    return EvalContext(split="test", batch_size=100, quick=True, seed=0, settings=settings)


def by_name(values):
    return {value.name: value for value in values}


def test_registered_prdc_on_pixels_detects_mode_collapse():
    data = load_dataset("digits", "17level")
    metric = METRICS.get("prdc")
    train, labels = data.split("train"), data.labels["train"]
    honest = by_name(metric(ReplayModel(data.split("valid"), data.info), data, quick_context(prdc_extractor="pixels")))
    collapsed = by_name(metric(ReplayModel(train[labels == 4], data.info), data, quick_context(prdc_extractor="pixels")))
    assert set(honest) == {"precision", "recall", "density", "coverage", "prd_f8", "prd_f1_8"}
    for value in honest.values():
        assert value.n == 360 and value.higher_is_better and value.kind == "score"
        assert value.protocol["n_real"] == value.protocol["n_fake"] == 360
        assert value.protocol["split"] == "test" and value.protocol["extractor"].startswith("pixels")
    assert honest["precision"].protocol["k"] == 3 and honest["coverage"].protocol["k"] == 5
    assert honest["prd_f8"].protocol["num_clusters"] == 20 and honest["prd_f8"].protocol["num_runs"] == 10
    for name in ("recall", "coverage", "prd_f8"):
        assert collapsed[name].value < honest[name].value - 0.4, name
    assert collapsed["precision"].value > 0.7


def test_registered_prdc_matches_feature_level_function_on_the_same_samples():
    data = load_dataset("digits", "binary")
    model = ReplayModel(data.split("train"), data.info)
    ctx = quick_context(prdc_extractor="pixels", prdc_samples=200)
    values = by_name(METRICS.get("prdc")(model, data, ctx))
    torch.manual_seed(ctx.seed)
    samples = model.sample(100)
    samples = torch.cat([samples, model.sample(100)])  # batches of ctx.batch_size, same stream
    direct = precision_recall_density_coverage(data.split("test")[:200].flatten(1), samples.flatten(1))
    for name, value in direct.items():
        assert values[name].value == pytest.approx(value, abs=1e-12)


def test_registered_prdc_on_vector_data_uses_coordinates():
    generator = torch.Generator().manual_seed(0)
    info = DataInfo(name="toy", variant="continuous", shape=(2,), value_type="continuous")
    data = Dataset(info, {s: torch.randn(300, 2, generator=generator) for s in ("train", "valid", "test")})
    values = by_name(METRICS.get("prdc")(ReplayModel(data.split("valid"), info), data, quick_context()))
    assert values["precision"].protocol["extractor"] == "identity (raw vectors)"
    assert values["recall"].value > 0.8 and values["precision"].value > 0.8


def _domain_weights_ready():
    spec = EXTRACTORS.get("digits-cnn")
    return spec.weights_file.exists() and file_sha256(spec.weights_file) == spec.sha256


@pytest.mark.skipif(not _domain_weights_ready(), reason="digits-cnn weights not committed yet")
def test_registered_prdc_on_domain_features_detects_mode_collapse():
    data = load_dataset("digits", "binary")
    metric = METRICS.get("prdc")
    train, labels = data.split("train"), data.labels["train"]
    honest = by_name(metric(ReplayModel(data.split("valid"), data.info), data, quick_context(prdc_samples=200)))
    collapsed = by_name(metric(ReplayModel(train[labels == 4], data.info), data, quick_context(prdc_samples=200)))
    protocol = honest["precision"].protocol
    assert protocol["extractor"] == "digits-cnn" and len(protocol["extractor_sha256"]) == 64
    for name in ("recall", "coverage", "prd_f8"):
        assert collapsed[name].value < honest[name].value - 0.4, name
