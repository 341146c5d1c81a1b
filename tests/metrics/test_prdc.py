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
import dgmbench.metrics.prdc as prdc_module
from dgmbench.metrics.prdc import (
    bounded_arithmetic,
    choose_arithmetic,
    knn_radii,
    knn_squared_radii,
    precision_recall_density_coverage,
)
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


@pytest.mark.parametrize("max_block_elements", [16, 97, 5_000, 2**24])
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


def test_knn_radii_deferred_candidates_and_intermediate_merges_match_sorting(monkeypatch):
    """Rows past the first row block get their later neighbours as deferred candidates (merged
    at the end, or early when they pile up): with blocks of 4 x 4 the first block bounds no
    list (k = 5 > 4), every pair is deferred and the early merge runs; radii stay exact."""
    import dgmbench.metrics.prdc as prdc

    merges = []
    original = prdc._merge_pending
    monkeypatch.setattr(prdc, "_merge_pending", lambda v, i, p: merges.append(len(p)) or original(v, i, p))
    points = np.random.default_rng(5).normal(size=(300, 5))
    radii = knn_radii(torch.from_numpy(points), (1, 3, 5), max_block_elements=16)
    assert len(merges) >= 2  # at least one early merge and the final one
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


# --- exactness: ties at the k-NN radius, integer and duplicated features -------------------------


def numpy_brute_force_counts(real, fake, k_pr, k_dc, closed=False):
    """An independent ground truth: every pairwise distance as np.linalg.norm of the float64
    difference, radii by sorting each row without the point itself (by index), and the four
    counts behind precision, recall, density and coverage."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    inside = np.less_equal if closed else np.less

    def radii(points, k):
        distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
        np.fill_diagonal(distances, np.inf)
        return np.sort(distances, axis=1)[:, k - 1]

    real_fake = np.linalg.norm(real[:, None, :] - fake[None, :, :], axis=-1)
    real_pr, real_dc, fake_pr = radii(real, k_pr), radii(real, k_dc), radii(fake, k_pr)
    return {
        "precision": int(inside(real_fake, real_pr[:, None]).any(0).sum()),
        "recall": int(inside(real_fake, fake_pr[None, :]).any(1).sum()),
        "density": int(inside(real_fake, real_dc[:, None]).sum()),
        "coverage": int(inside(real_fake, real_dc[:, None]).any(1).sum()),
    }


def as_values(counts, n_real, n_fake, k_dc):
    """Counts to metric values, computed the way the implementation divides."""
    return {
        "precision": counts["precision"] / n_fake,
        "recall": counts["recall"] / n_real,
        "density": counts["density"] / (k_dc * n_fake),
        "coverage": counts["coverage"] / n_real,
    }


def assert_exactly(got, counts, n_real, n_fake, k_dc):
    assert got == as_values(counts, n_real, n_fake, k_dc)  # equal floats, not approximately


def test_issue_8_binary_example_matches_prdc_package_and_brute_force():
    """Issue 8: 300 x 20 binary features, k = 3. Centring before the norm expansion flipped
    ties at the radius (old code: precision 0.823, density 0.637; right: 0.700, 0.426)."""
    reference_prdc = pytest.importorskip("prdc")
    generator = torch.Generator().manual_seed(0)
    real = (torch.rand(300, 20, generator=generator) < 0.3).double()
    fake = (torch.rand(300, 20, generator=generator) < 0.35).double()
    got = precision_recall_density_coverage(real, fake, 3, 3)
    counts = numpy_brute_force_counts(real.numpy(), fake.numpy(), 3, 3)
    assert_exactly(got, counts, 300, 300, 3)
    assert got["precision"] == 0.7 and got["density"] * 900 == pytest.approx(383, abs=1e-9)
    package = reference_prdc.compute_prdc(real.numpy(), fake.numpy(), nearest_k=3)
    assert_same_as_package(got, package, n_fake=300, k=3)


def assert_same_as_package(got, package, n_fake, k):
    for name in ("precision", "recall", "coverage"):  # means of booleans: bit-identical
        assert got[name] == float(package[name]), name
    # the package divides twice; the count of ball memberships must be the same integer
    ours, theirs = got["density"] * k * n_fake, float(package["density"]) * k * n_fake
    assert round(ours) == round(theirs) and abs(ours - round(ours)) < 1e-6 and abs(theirs - round(theirs)) < 1e-6


def integer_grid_case(seed):
    """Small random features on an integer grid with many exact ties and duplicated rows:
    binary or 0..L levels, some rows repeated, some fake rows copied from the real set."""
    rng = np.random.default_rng(seed)
    levels = int(rng.choice([1, 1, 2, 3, 16]))
    dim = int(rng.integers(1, 7))
    n_real, n_fake = int(rng.integers(8, 40)), int(rng.integers(8, 40))
    real = rng.integers(0, levels + 1, size=(n_real, dim)).astype(np.float64)
    fake = rng.integers(0, levels + 1, size=(n_fake, dim)).astype(np.float64)
    real[rng.random(n_real) < 0.2] = real[0]  # duplicates of one row
    copied = rng.random(n_fake) < 0.3
    fake[copied] = real[rng.integers(0, n_real, size=int(copied.sum()))]  # fakes that are real points
    if seed % 3 == 0:
        real, fake = real * 0.25 - 1.0, fake * 0.25 - 1.0  # dyadic, negative: still exact arithmetic
    k_pr, k_dc = int(rng.integers(1, 4)), int(rng.integers(1, 6))
    k_dc = min(k_dc, n_real - 1, n_fake - 1)
    k_pr = min(k_pr, k_dc)
    return real, fake, k_pr, k_dc


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("seed", range(30))
def test_random_integer_grids_equal_brute_force_exactly(seed, closed):
    real, fake, k_pr, k_dc = integer_grid_case(seed)
    got = precision_recall_density_coverage(
        torch.from_numpy(real), torch.from_numpy(fake), k_pr, k_dc, max_block_elements=64, closed_balls=closed
    )
    assert_exactly(got, numpy_brute_force_counts(real, fake, k_pr, k_dc, closed), len(real), len(fake), k_dc)


@pytest.mark.parametrize("seed", range(0, 30, 3))
def test_random_integer_grids_equal_prdc_package(seed):
    """The package uses one k for all four values and open balls."""
    reference_prdc = pytest.importorskip("prdc")
    real, fake, _, k = integer_grid_case(seed)
    got = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k, k)
    assert_same_as_package(got, reference_prdc.compute_prdc(real, fake, nearest_k=k), len(fake), k)


@pytest.mark.parametrize("seed", range(12))
def test_float32_error_bound_path_decides_integer_ties_exactly(seed, monkeypatch):
    """The same grids through the float32 products with the rounding margin (forced, as for
    non-integer features): every tie falls inside the margin and is re-decided exactly,
    including rows with more tied neighbours than are kept (their full row is recomputed)."""
    monkeypatch.setattr(
        prdc_module, "choose_arithmetic", lambda *sets: bounded_arithmetic(sets[0].mean(0), torch.float32)
    )
    real, fake, k_pr, k_dc = integer_grid_case(seed)
    for closed in (False, True):
        got = precision_recall_density_coverage(
            torch.from_numpy(real), torch.from_numpy(fake), k_pr, k_dc, max_block_elements=100, closed_balls=closed
        )
        assert_exactly(got, numpy_brute_force_counts(real, fake, k_pr, k_dc, closed), len(real), len(fake), k_dc)


def test_many_tied_neighbours_force_full_row_recheck(monkeypatch):
    """40 copies of each of 3 points: every k-NN radius has far more ties than neighbours
    kept, on the float32 path (all rows recomputed) and on the exact path."""
    base = torch.tensor([[0.1, 0.3], [0.7, -0.2], [5.0, 5.0]], dtype=torch.float64)
    real = base.repeat(40, 1)
    fake = torch.cat([base[:2].repeat(10, 1), base[:1] + 1e-3])
    expected = numpy_brute_force_counts(real.numpy(), fake.numpy(), 3, 5)
    assert_exactly(precision_recall_density_coverage(real, fake), expected, len(real), len(fake), 5)
    radii = knn_squared_radii(real, (3, 5), bounded_arithmetic(real.mean(0), torch.float32), max_block_elements=50)
    assert torch.equal(radii[5].exact(), torch.zeros(len(real), dtype=torch.float64))


def test_ties_with_non_integer_features_are_exact():
    """Gaussian features where fake points are copies of real points' 3rd and 5th nearest
    neighbours, so real-fake distances equal the radii exactly: open and closed balls must
    differ, each equal to brute force (float32 products + exact re-check of the margin)."""
    rng = np.random.default_rng(4)
    real = rng.normal(size=(150, 24))
    distances = np.linalg.norm(real[:, None] - real[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    order = np.argsort(distances, axis=1)
    fake = np.concatenate([real[order[:60, 2]], real[order[60:120, 4]], rng.normal(size=(40, 24))])
    assert not choose_arithmetic(torch.from_numpy(real), torch.from_numpy(fake)).exact
    results = {}
    for closed in (False, True):
        got = precision_recall_density_coverage(
            torch.from_numpy(real), torch.from_numpy(fake), max_block_elements=3000, closed_balls=closed
        )
        assert_exactly(got, numpy_brute_force_counts(real, fake, 3, 5, closed), len(real), len(fake), 5)
        results[closed] = got
    assert results[True]["density"] > results[False]["density"]


@pytest.mark.parametrize("magnitude", [1e-30, 1e-3, 1e5, 1e30])
def test_tiny_and_huge_features_equal_brute_force(magnitude):
    """Scale-free: the float32 products run on features scaled by a power of two to at most
    1 (float32 alone would underflow at 1e-30 and overflow at 1e30); an offset far larger
    than the spread stresses the centring."""
    rng = np.random.default_rng(8)
    real = rng.normal(size=(90, 10)) * magnitude + 3 * magnitude
    fake = rng.normal(size=(70, 10)) * magnitude * 1.2 + 3.3 * magnitude
    got = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), max_block_elements=2000)
    assert_exactly(got, numpy_brute_force_counts(real, fake, 3, 5), 90, 70, 5)
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1


@pytest.mark.parametrize("closed", [False, True])
def test_identical_and_all_equal_inputs(closed):
    generator = torch.Generator().manual_seed(2)
    binary = (torch.rand(50, 6, generator=generator) < 0.5).double()
    for real, fake in ((binary, binary.clone()), (torch.ones(20, 3), torch.ones(15, 3))):
        got = precision_recall_density_coverage(real, fake, closed_balls=closed)
        expected = numpy_brute_force_counts(real.numpy(), fake.numpy(), 3, 5, closed)
        assert_exactly(got, expected, len(real), len(fake), 5)
    # all points equal: every radius is 0, so open balls hold nothing and closed ones everything
    assert got["precision"] == (1.0 if closed else 0.0)


def test_exact_arithmetic_is_chosen_for_integer_and_dyadic_features():
    binary = torch.randint(0, 2, (30, 784)).double()
    assert choose_arithmetic(binary).exact and choose_arithmetic(binary).dtype == torch.float32
    levels = torch.randint(0, 17, (30, 64)).double() / 16  # 17-level pixels scaled to [0, 1]
    assert choose_arithmetic(levels).exact and choose_arithmetic(levels).scale == 16
    bytes_ = torch.randint(0, 256, (30, 784)).double()  # 4 d 255^2 > 2^24: exact in float64
    assert choose_arithmetic(bytes_).exact and choose_arithmetic(bytes_).dtype == torch.float64
    assert not choose_arithmetic(bytes_ / 255).exact
    assert not choose_arithmetic(torch.randn(30, 8, dtype=torch.float64)).exact


@pytest.mark.parametrize("which", ["real", "fake"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features_are_refused_naming_the_set(which, bad):
    features = {"real": torch.randn(30, 4), "fake": torch.randn(30, 4)}
    features[which][7, 2] = bad
    kind = "NaN" if bad != bad else "Inf"
    with pytest.raises(ValueError, match=f"{which} features contain {kind} in 1 of 30 rows"):
        precision_recall_density_coverage(features["real"], features["fake"])


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
