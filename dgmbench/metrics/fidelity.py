"""Sample quality: FID, KID and IS through torch-fidelity, with a pinned, recorded protocol.

Likelihoods say nothing about implicit models, so every image model is also scored on its
samples. A sample-quality number is only comparable when its protocol is: which feature
extractor (name + sha256 of its weights) and layer, how images were resized and converted,
how many generated and reference images, which reference split, the KID subsets and the float
precision. All of it goes into ``MetricValue.protocol``.

Inputs. Model samples and reference images are turned into uint8 images (N, C, H, W):

* binary {0, 1}                    -> {0, 255}
* discrete levels 0..L-1           -> round(level * 255 / (L - 1))
* continuous, dequantized from L levels ((level + u) / L, see dgmbench.data.base)
                                   -> level = min(floor(x * L), L - 1), then as discrete, so the
                                      reference images are exactly the discrete data (not data
                                      plus dequantization noise) and a model is not scored on
                                      reproducing uniform noise
* other continuous values in [0,1] -> round(clamp(x, 0, 1) * 255)

Grey images are repeated to 3 channels for Inception (which resizes to 299x299 itself with
torch-fidelity's TF1-compatible bilinear interpolation); domain extractors take the native
grey images unchanged (see dgmbench.metrics.features).

Computation. Features come from torch-fidelity's extractors and batching; they are cast to
float64 before any statistic (domain extractors already run in float64, so nothing depends on
the batch size). Then, from the same torch-fidelity functions ``calculate_metrics`` uses:

* IS  = exp E_x KL(p(y|x) || p(y))       (Salimans et al. 2016), torch-fidelity's
        ``isc_features_to_metric`` on the extractor's logits, mean and std over ``isc_splits``.
        With a domain extractor this is the IS *of that domain classifier* (10 classes, max 10),
        not the Inception Score: the protocol says which classifier.
* KID = unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3   (Binkowski et al. 2018),
        torch-fidelity's ``kid_features_to_metric``: mean and std over ``kid_subsets`` random
        subsets of ``kid_subset_size``.
* FID = ||mu_g - mu_r||^2 + tr(S_g) + tr(S_r) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2)
        (Heusel et al. 2017, eq. 6), mean and covariance from torch-fidelity's
        ``fid_features_to_statistics`` in float64. The trace term is computed as the nuclear
        norm (sum of singular values) of S_g^1/2 S_r^1/2, whose Gram matrix is the matrix under
        the root, with the PSD square roots from a symmetric eigendecomposition. torch-fidelity
        (like TTUR) takes sqrt(eigvals(S_g S_r)) instead, which turns round-off in the zero
        eigenvalues into errors of size sqrt(eps): at n < d the FID of a set against itself came
        out as -1e-4 with 128 features; here it is 0 to ~1e-12. For n > d the two agree to
        1e-9 relative (tested).

Reference features are cached on disk (``torch.save``, loaded with ``weights_only=True``),
keyed by board, split, count, the sha256 of the reference uint8 bytes, extractor name and
weights hash; generated samples are never cached.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import torch
import torch_fidelity
from torch_fidelity.metric_fid import fid_features_to_statistics
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from dgmbench.data.base import DataInfo, Dataset
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, model_samples, register_metric
from dgmbench.train.checkpoint import load_tensor_file
from dgmbench.metrics.features import (
    DOMAIN_EXTRACTOR_FOR_DATASET,
    EXTRACTORS,
    INCEPTION,
    extract_featuresdict,
    inception_weights_path,
    weights_sha256,
)

KID_SUBSET_SIZE = 1000  # torch-fidelity's default, used whenever there are enough samples
CACHE_FORMAT = 1  # bump when the uint8 conversion or the cached content changes


# --- uint8 conversion -------------------------------------------------------------------------
def to_uint8(x: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Model samples or data (N, C, H, W) in `info`'s value convention -> uint8 images on the CPU."""
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"non-finite values in images for {info.board}: cannot score them")
    if info.value_type == "binary":
        return (x.clamp(0, 1).round() * 255).to(torch.uint8)
    if info.value_type == "continuous" and info.dequantization_levels:
        levels = info.dequantization_levels
        return _levels_to_uint8(torch.floor(x.clamp(0, 1) * levels).clamp(max=levels - 1), levels)
    if info.value_type == "discrete":
        return _levels_to_uint8(x.round().clamp(0, info.num_levels - 1), info.num_levels)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _levels_to_uint8(levels: torch.Tensor, num_levels: int) -> torch.Tensor:
    return (levels * (255 / (num_levels - 1))).round().to(torch.uint8)


def conversion_rule(info: DataInfo) -> str:
    if info.value_type == "binary":
        return "binary {0,1} -> {0,255}"
    if info.value_type == "continuous" and info.dequantization_levels:
        levels = info.dequantization_levels
        return f"dequantized: level = min(floor(x*{levels}), {levels - 1}); round(level*255/{levels - 1})"
    if info.value_type == "discrete":
        return f"round(level*255/{info.num_levels - 1})"
    return "round(clamp(x,0,1)*255)"


# --- the Fréchet distance ---------------------------------------------------------------------
def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2), in float64.

    tr((S2^1/2 S1 S2^1/2)^1/2) = ||S1^1/2 S2^1/2||_* (nuclear norm): singular values are
    accurate to eps * ||S||, while square roots of eigenvalues of S1 S2 turn round-off
    around zero eigenvalues into errors of order sqrt(eps) (or complex numbers)."""
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    trace_sqrt = np.linalg.svd(_psd_sqrt(sigma1) @ _psd_sqrt(sigma2), compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid_from_features(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """FID between two feature sets (n_i, d): torch-fidelity's float64 statistics, stable trace term."""
    stats1 = fid_features_to_statistics(features1.detach().cpu().to(torch.float64))
    stats2 = fid_features_to_statistics(features2.detach().cpu().to(torch.float64))
    return frechet_distance(stats1["mu"], stats1["sigma"], stats2["mu"], stats2["sigma"])


# --- the three metrics from uint8 images --------------------------------------------------------
def default_kid_subset_size(n_generated: int, n_reference: int) -> int:
    """torch-fidelity's 1000 when both sets have >= 2000 images, else half the smaller set
    (so that subsets differ and the reported std is not trivially zero)."""
    return min(KID_SUBSET_SIZE, min(n_generated, n_reference) // 2)


def fidelity_metrics(
    samples_uint8: torch.Tensor,
    reference_uint8: torch.Tensor,
    extractor: str,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    kid_subsets: int = 100,
    kid_subset_size: int | None = None,
    isc_splits: int = 10,
    rng_seed: int = 2020,
    weights_path: str | None = None,
    allow_download: bool = False,
    reference_cache: str | None = None,
    protocol: dict[str, Any] | None = None,
) -> list[MetricValue]:
    """FID, KID and IS of uint8 images (N, C, H, W) against uint8 reference images.

    `extractor` is a name in dgmbench.metrics.features.EXTRACTORS (also registered with
    torch-fidelity); `weights_path`/`allow_download` only matter for Inception.
    `reference_cache`: a file where the reference features are stored/reused (the caller keys
    it, see `reference_cache_file`). `protocol` entries are added to every value's protocol.
    Values use torch-fidelity's conventions: input1 = samples, input2 = reference,
    `rng_seed` for the KID subsets and the IS shuffle."""
    spec = EXTRACTORS.get(extractor)
    n_generated, n_reference = len(samples_uint8), len(reference_uint8)
    if kid_subset_size is None:
        kid_subset_size = default_kid_subset_size(n_generated, n_reference)
    if spec.is_domain:
        sha = spec.sha256
    else:
        weights_path = inception_weights_path(weights_path, allow_download)
        sha = weights_sha256(extractor, weights_path)
    common = {"batch_size": batch_size, "device": device, "weights_path": weights_path}

    layers = list(dict.fromkeys([spec.fid_layer, spec.isc_layer]))
    generated = extract_featuresdict(samples_uint8, extractor, layers, **common)
    reference = _cached(
        reference_cache, lambda: extract_featuresdict(reference_uint8, extractor, [spec.fid_layer], **common)
    )[spec.fid_layer]
    if len(reference) != n_reference:
        raise ValueError(f"reference cache {reference_cache} holds {len(reference)} images, not {n_reference}")

    fid = fid_from_features(generated[spec.fid_layer], reference)
    kid = kid_features_to_metric(
        generated[spec.fid_layer], reference,
        kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, rng_seed=rng_seed, verbose=False,
    )
    isc = isc_features_to_metric(generated[spec.isc_layer], isc_splits, True, rng_seed)

    base = {
        "extractor": extractor,
        "weights_sha256": sha,
        "resize": spec.resize,
        "n_generated": n_generated,
        "n_reference": n_reference,
        "precision": "float64 statistics",
        "library": f"torch-fidelity {torch_fidelity.__version__}",
        "rng_seed": rng_seed,
        **(protocol or {}),
    }
    distance = {**base, "layer": spec.fid_layer, "feature_dim": spec.feature_dim}
    return [
        MetricValue(
            "fid", fid, n=n_generated, kind="score",
            protocol={**distance, "trace_sqrt": "nuclear norm of S_g^1/2 S_r^1/2 (eigh PSD roots)"},
        ),
        MetricValue(
            "kid", kid["kernel_inception_distance_mean"], n=n_generated, kind="score",
            stderr=kid["kernel_inception_distance_std"],
            protocol={
                **distance, "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size,
                "kernel": "polynomial (x.y/d + 1)^3", "stderr": "std over KID subsets (torch-fidelity)",
            },
        ),
        MetricValue(
            "is", isc["inception_score_mean"], n=n_generated, kind="score", higher_is_better=True,
            stderr=isc["inception_score_std"],
            protocol={
                **base, "layer": spec.isc_layer, "isc_splits": isc_splits,
                "classifier": (
                    f"{extractor} domain classifier logits ({spec.num_classes} classes): "
                    "not comparable with Inception Scores"
                    if spec.is_domain else "Inception-v3 (1008-way logits_unbiased)"
                ),
                "stderr": "std over IS splits (torch-fidelity)",
            },
        ),
    ]


def reference_cache_file(
    cache_dir: str, info: DataInfo, split: str, reference_uint8: torch.Tensor, extractor: str, sha: str
) -> str:
    """A cache path naming everything the reference features depend on, including a hash of
    the reference images themselves (so a changed loader can never hit a stale entry)."""
    data_hash = hashlib.sha256(reference_uint8.contiguous().numpy().tobytes()).hexdigest()[:16]
    name = (
        f"{info.name}-{info.variant}-{split}-n{len(reference_uint8)}-data{data_hash}"
        f"-{extractor}-{sha[:16]}-v{CACHE_FORMAT}.pt"
    )
    return os.path.join(cache_dir, name)


def _cached(path: str | None, compute):
    if path is None:
        return compute()
    if os.path.exists(path):
        return load_tensor_file(path, what="feature cache file")
    value = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    torch.save(value, partial)
    os.replace(partial, path)  # atomic: concurrent runs never read half a file
    return value


# --- the registered metric ------------------------------------------------------------------------
def _inception_eligible(info: DataInfo) -> bool:
    return info.is_image and info.shape[0] == 3 and min(info.shape[1:]) >= 32


def resolve_extractor(info: DataInfo, ctx: EvalContext) -> str | None:
    """Which extractor scores this dataset: ctx setting 'fid_extractor' if given, else the
    dataset's domain extractor, else Inception for RGB images of 32x32 or more when it is
    enabled (setting 'inception': True allows torch-fidelity's download; setting
    'inception_weights': a local weights file). None: nothing applicable or Inception disabled."""
    explicit = ctx.setting("fid_extractor", None)
    if explicit is not None:
        EXTRACTORS.get(explicit)  # unknown names fail with the list of valid ones
        return explicit
    if info.name in DOMAIN_EXTRACTOR_FOR_DATASET:
        return DOMAIN_EXTRACTOR_FOR_DATASET[info.name]
    if _inception_eligible(info) and (ctx.setting("inception", False) or ctx.setting("inception_weights", None)):
        return INCEPTION
    return None


@torch.no_grad()
def model_samples_uint8(model, n: int, ctx: EvalContext) -> torch.Tensor:
    """n samples of `model` as uint8 images (the evaluation's shared, seeded samples)."""
    return to_uint8(model_samples(model, n, ctx), model.info)


class SampleQualityFidelity:
    """FID / KID / IS of a model's samples against a reference split (default: test).

    Settings (ctx.setting): fid_samples (10000; quick: the reference split's size, at most
    1000), fid_reference_split ("test"), fid_reference_samples (the whole split),
    fid_extractor, inception, inception_weights, kid_subsets (100), kid_subset_size,
    isc_splits (10), fidelity_cache_dir (default: <workdir>/fidelity_cache; no cache without
    a workdir)."""

    name = "sample_quality_fidelity"
    settings = {
        "fid_samples": Setting(int, "model samples (10000; quick: the reference split's size, at most 1000)", minimum=2),
        "fid_reference_split": Setting(str, "reference split", choices=("train", "valid", "test")),
        "fid_reference_samples": Setting(int, "reference examples (the whole split)", minimum=2),
        "fid_extractor": Setting(str, "feature extractor name (default: the dataset's domain classifier)",
                                 optional=True),
        "inception": Setting(bool, "score colour images >= 32 px with Inception (downloads the weights)"),
        "inception_weights": Setting(str, "path to local Inception weights", optional=True),
        "kid_subsets": Setting(int, "KID subsets", minimum=1),
        "kid_subset_size": Setting(int, "KID subset size (default: min(1000, n))", minimum=2, optional=True),
        "isc_splits": Setting(int, "Inception-score splits", minimum=1),
        "fidelity_cache_dir": Setting(str, "reference-feature cache directory", optional=True),
    }

    def applies(self, model, dataset: Dataset) -> bool:
        # whether Inception is enabled is a ctx setting: __call__ returns [] when it is not
        info = dataset.info
        return info.is_image and (info.name in DOMAIN_EXTRACTOR_FOR_DATASET or _inception_eligible(info))

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        info = dataset.info
        extractor = resolve_extractor(info, ctx)
        if extractor is None:
            return []
        split = ctx.setting("fid_reference_split", "test")
        available = len(dataset.split(split))
        n_reference = min(ctx.setting("fid_reference_samples", available), available)
        n_generated = ctx.setting("fid_samples", min(1000, available) if ctx.quick else 10000)

        reference = to_uint8(dataset.split(split)[:n_reference], info)
        samples = model_samples_uint8(model, n_generated, ctx)
        if samples.shape[1:] != reference.shape[1:]:
            raise ValueError(f"samples have shape {tuple(samples.shape[1:])}, data {tuple(reference.shape[1:])}")

        weights_path = None
        if extractor == INCEPTION:
            weights_path = inception_weights_path(
                ctx.setting("inception_weights", None), allow_download=bool(ctx.setting("inception", False))
            )
        cache_dir = ctx.setting("fidelity_cache_dir", None)
        if cache_dir is None and ctx.workdir is not None:
            cache_dir = os.path.join(ctx.workdir, "fidelity_cache")
        cache = None
        if cache_dir is not None:
            sha = weights_sha256(extractor, weights_path)
            cache = reference_cache_file(cache_dir, info, split, reference, extractor, sha)

        return fidelity_metrics(
            samples, reference, extractor,
            batch_size=ctx.batch_size,
            device=ctx.device,
            kid_subsets=ctx.setting("kid_subsets", 100),
            kid_subset_size=ctx.setting("kid_subset_size", None),
            isc_splits=ctx.setting("isc_splits", 10),
            weights_path=weights_path,
            reference_cache=cache,
            protocol={
                "board": info.board,
                "reference_split": split,
                "reference_images": f"first {n_reference} of the {split} split",
                "conversion": conversion_rule(info),
                "sample_seed": ctx.seed,
            },
        )


register_metric(SampleQualityFidelity())
