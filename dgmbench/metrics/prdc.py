"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage
(Naeem et al. 2020): sample quality and diversity from k-nearest-neighbour balls in a
feature space.

Let X_1..X_N be real features, Y_1..Y_M fake (generated) ones, and NND_k(Z_i) the
distance from Z_i to its k-th nearest neighbour within its own set, excluding itself.
B(Z_i, r) is the open ball of radius r around Z_i. Then

    precision = (1/M) sum_j 1[ exists i: Y_j in B(X_i, NND_k(X_i)) ]       (k = 3)
    recall    = (1/N) sum_i 1[ exists j: X_i in B(Y_j, NND_k(Y_j)) ]       (k = 3)
    density   = (1/kM) sum_j sum_i 1[ Y_j in B(X_i, NND_k(X_i)) ]          (k = 5)
    coverage  = (1/N) sum_i 1[ exists j: Y_j in B(X_i, NND_k(X_i)) ]       (k = 5)

(Kynkäänniemi et al. 2019, Sec. 2; Naeem et al. 2020, Sec. 3.) Precision asks
"is each fake sample on the real manifold", recall "is each real sample on the fake
manifold": a generator that only produces one mode of the data scores high precision
and low recall. Ball membership is strict (distance < radius), as in the reference
``prdc`` package (clovaai/generative-evaluation-prdc), whose results these match.

Pairwise distances are computed in row blocks of at most ``max_block_elements``
entries, so memory stays bounded for 10^4 x 10^4 feature sets, and in float64 because
the metrics are counts of distance-versus-radius comparisons, which float32
cancellation in ||x||^2 + ||y||^2 - 2 x.y can flip.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from dgmbench.data.base import Dataset
from dgmbench.metrics.base import EvalContext, MetricValue, model_samples, register_metric
from dgmbench.metrics.features import EXTRACTORS, extract_featuresdict, inception_weights_path, weights_sha256
from dgmbench.metrics.fidelity import conversion_rule, reference_cache_file, resolve_extractor, to_uint8
from dgmbench.metrics.prd import (
    KMEANS_BATCH_SIZE,
    NUM_ANGLES,
    NUM_CLUSTERS,
    NUM_RUNS,
    max_f_beta_pair,
    prd_from_features,
)

DEFAULT_MAX_BLOCK_ELEMENTS = 2**24  # 128 MiB of float64 distances per block

K_PRECISION_RECALL = 3  # Kynkäänniemi et al. 2019
K_DENSITY_COVERAGE = 5  # Naeem et al. 2020


def pairwise_distance_blocks(
    x: torch.Tensor, y: torch.Tensor, max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, stop, ||x[start:stop, None] - y[None]||) block by block.

    x and y should already be in the working dtype (float64) and on the same device.
    """
    y_squared_norms = (y * y).sum(1)
    rows = max(1, max_block_elements // max(1, len(y)))
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        squared = (block * block).sum(1, keepdim=True) + y_squared_norms - 2.0 * (block @ y.T)
        yield start, start + len(block), squared.clamp_min_(0.0).sqrt_()


def knn_radii(
    features: torch.Tensor, ks: tuple[int, ...], max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS
) -> dict[int, torch.Tensor]:
    """Distance from each row to its k-th nearest other row, for every k in ks."""
    n, largest_k = len(features), max(ks)
    if largest_k >= n:
        raise ValueError(f"k={largest_k} nearest neighbours need more than {largest_k} points, got {n}")
    smallest = torch.empty(n, largest_k, dtype=features.dtype, device=features.device)
    for start, stop, distances in pairwise_distance_blocks(features, features, max_block_elements):
        rows = torch.arange(stop - start, device=features.device)
        distances[rows, rows + start] = float("inf")  # exclude self
        smallest[start:stop] = torch.topk(distances, largest_k, dim=1, largest=False, sorted=True).values
    return {k: smallest[:, k - 1] for k in ks}


@torch.no_grad()
def precision_recall_density_coverage(
    real: torch.Tensor,
    fake: torch.Tensor,
    k_precision_recall: int = K_PRECISION_RECALL,
    k_density_coverage: int = K_DENSITY_COVERAGE,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """The four manifold metrics of real (N, d) against fake (M, d) features.

    One pass over the real-real, fake-fake and real-fake distance blocks each; works on
    whichever device the features are on.
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need (N, d) and (M, d) features, got {tuple(real.shape)} and {tuple(fake.shape)}")
    # Distances are translation invariant; centring shrinks the norms that cancel in
    # ||x||^2 + ||y||^2 - 2 x.y.
    centre = real.to(dtype).mean(0)
    real = real.to(dtype) - centre
    fake = fake.to(device=real.device, dtype=dtype) - centre

    real_radii = knn_radii(real, (k_precision_recall, k_density_coverage), max_block_elements)
    fake_radii = knn_radii(fake, (k_precision_recall,), max_block_elements)[k_precision_recall]
    real_radii_pr, real_radii_dc = real_radii[k_precision_recall], real_radii[k_density_coverage]

    fake_in_real_manifold = torch.zeros(len(fake), dtype=torch.bool, device=real.device)
    real_in_fake_manifold = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    real_ball_covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    ball_memberships = torch.zeros((), dtype=torch.float64, device=real.device)
    for start, stop, distances in pairwise_distance_blocks(real, fake, max_block_elements):
        fake_in_real_manifold |= (distances < real_radii_pr[start:stop, None]).any(0)
        real_in_fake_manifold[start:stop] = (distances < fake_radii[None, :]).any(1)
        in_dc_ball = distances < real_radii_dc[start:stop, None]
        ball_memberships += in_dc_ball.sum(dtype=torch.float64)
        real_ball_covered[start:stop] = in_dc_ball.any(1)

    return {
        "precision": fake_in_real_manifold.double().mean().item(),
        "recall": real_in_fake_manifold.double().mean().item(),
        "density": (ball_memberships / (k_density_coverage * len(fake))).item(),
        "coverage": real_ball_covered.double().mean().item(),
    }


# --- registered metric: model samples vs the reference split, in a feature space ----------------
# Images are converted and features extracted exactly as for FID/KID (dgmbench.metrics.fidelity):
# same uint8 conversion, same extractor choice, same seeded samples, same reference cache.
PIXELS = "pixels"  # setting prdc_extractor="pixels": flattened [0, 1] pixels, no network
IDENTITY = "identity"  # vector data: the coordinates themselves


def unit_scale(x: torch.Tensor, info) -> torch.Tensor:
    """Data or samples on the scale the sample metrics use: discrete levels / (L - 1) in
    [0, 1]; binary and dequantized values as they are (already in [0, 1]); vectors unchanged."""
    if info.value_type == "discrete":
        return x / (info.num_levels - 1)
    return x


def _extractor_for(dataset: Dataset, ctx: EvalContext) -> str | None:
    if not dataset.info.is_image:
        return IDENTITY
    explicit = ctx.setting("prdc_extractor", None)
    return explicit if explicit is not None else resolve_extractor(dataset.info, ctx)


def _features(x: torch.Tensor, dataset: Dataset, extractor: str, ctx: EvalContext, cache_split: str | None = None):
    """(n, d) float64 features of data or samples x, and what identifies the feature space.
    cache_split: x is the first len(x) examples of that split; reuse/store their features."""
    info = dataset.info
    if extractor == IDENTITY:
        return x.flatten(1).double(), {"extractor": "identity (raw vectors)"}
    if extractor == PIXELS:
        return unit_scale(x, info).flatten(1).double(), {"extractor": "pixels scaled to [0, 1]"}
    spec = EXTRACTORS.get(extractor)
    weights = None
    if not spec.is_domain:
        weights = inception_weights_path(ctx.setting("inception_weights", None), bool(ctx.setting("inception", False)))
    sha = weights_sha256(extractor, weights)
    images = to_uint8(x, info)

    def compute():
        return extract_featuresdict(
            images, extractor, [spec.fid_layer], batch_size=ctx.batch_size, device=ctx.device, weights_path=weights
        )

    cache_dir = ctx.setting("fidelity_cache_dir", None)
    if cache_dir is None and ctx.workdir is not None:
        cache_dir = os.path.join(ctx.workdir, "fidelity_cache")
    if cache_split is None or cache_dir is None:
        features = compute()
    else:  # the file FID's reference features live in, in the same format
        path = reference_cache_file(cache_dir, info, cache_split, images, extractor, sha)
        if os.path.exists(path):
            features = torch.load(path, map_location="cpu", weights_only=True)
        else:
            features = compute()
            os.makedirs(cache_dir, exist_ok=True)
            partial = f"{path}.{os.getpid()}.tmp"
            torch.save(features, partial)
            os.replace(partial, path)
    protocol = {
        "extractor": extractor,
        "extractor_sha256": sha,
        "layer": spec.fid_layer,
        "feature_dim": spec.feature_dim,
        "conversion": conversion_rule(info),
    }
    return features[spec.fid_layer].double(), protocol


class PrecisionRecallDensityCoverage:
    """precision / recall (k=3), density / coverage (k=5) and PRD F_8 / F_1/8 of model
    samples against the first n examples of the evaluation split, on the FID features of
    the dataset (its domain classifier, Inception for colour images when enabled) or on
    the raw coordinates of vector data. Settings: prdc_samples (n; 10000, quick 1000,
    at most the split's size), prdc_extractor (an extractor name or "pixels")."""

    name = "prdc"

    def applies(self, model, dataset: Dataset) -> bool:
        return callable(getattr(model, "sample", None))

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        extractor = _extractor_for(dataset, ctx)
        if extractor is None:  # colour images with Inception not enabled: as FID, nothing
            return []
        split = ctx.setting("prdc_reference_split", ctx.split)
        available = len(dataset.split(split))
        # Equal real and fake counts: PRD requires it, and the k-NN radii of both sides are
        # then on the same scale (Naeem et al. 2020 use equal sizes throughout).
        n = min(available, int(ctx.setting("prdc_samples", 1000 if ctx.quick else 10_000)))
        real, feature_protocol = _features(dataset.split(split)[:n], dataset, extractor, ctx, split)
        fake, _ = _features(model_samples(model, n, ctx), dataset, extractor, ctx)

        manifold = precision_recall_density_coverage(real.to(ctx.device), fake.to(ctx.device))
        protocol = {
            **feature_protocol,
            "board": dataset.info.board,
            "split": split,
            "reference": f"first {n} of the {split} split",
            "n_real": n,
            "n_fake": n,
            "sample_seed": ctx.seed,
        }
        knn = {
            "distance": "euclidean, float64",
            "ball_membership": "strict (distance < k-NN radius, self excluded), as the reference prdc package",
        }
        values = [
            MetricValue(
                name=name, value=manifold[name], n=n, kind="score", higher_is_better=True,
                protocol={**protocol, **knn, "k": k, "citation": citation},
            )
            for name, k, citation in (
                ("precision", K_PRECISION_RECALL, "Kynkäänniemi et al. 2019"),
                ("recall", K_PRECISION_RECALL, "Kynkäänniemi et al. 2019"),
                ("density", K_DENSITY_COVERAGE, "Naeem et al. 2020"),
                ("coverage", K_DENSITY_COVERAGE, "Naeem et al. 2020"),
            )
        ]
        precision, recall = prd_from_features(fake.cpu().numpy(), real.cpu().numpy(), seed=ctx.seed)
        f8, f1_8 = max_f_beta_pair(precision, recall, beta=8)
        prd_protocol = {
            **protocol,
            "citation": "Sajjadi et al. 2018",
            "num_clusters": NUM_CLUSTERS,
            "num_angles": NUM_ANGLES,
            "num_runs": NUM_RUNS,
            "clustering": f"sklearn MiniBatchKMeans(n_init=10, batch_size={KMEANS_BATCH_SIZE}) of real + fake",
            "kmeans_seeds": [ctx.seed + run for run in range(NUM_RUNS)],
        }
        values += [
            MetricValue(
                name="prd_f8", value=f8, n=n, kind="score", higher_is_better=True,
                protocol={**prd_protocol, "summary": "max F_8 over the PRD curve (recall-like)"},
            ),
            MetricValue(
                name="prd_f1_8", value=f1_8, n=n, kind="score", higher_is_better=True,
                protocol={**prd_protocol, "summary": "max F_1/8 over the PRD curve (precision-like)"},
            ),
        ]
        return values


register_metric(PrecisionRecallDensityCoverage())
