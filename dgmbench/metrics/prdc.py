"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage
(Naeem et al. 2020): sample quality and diversity from k-nearest-neighbour balls in a
feature space.

Let X_1..X_N be real features, Y_1..Y_M fake (generated) ones, and NND_k(Z_i) the
distance from Z_i to its k-th nearest neighbour within its own set, excluding itself
(duplicates of Z_i count, at distance 0). B(Z_i, r) is the ball of radius r around Z_i.

    precision = (1/M) sum_j 1[ exists i: Y_j in B(X_i, NND_k(X_i)) ]       (k = 3)
    recall    = (1/N) sum_i 1[ exists j: X_i in B(Y_j, NND_k(Y_j)) ]       (k = 3)
    density   = (1/kM) sum_j sum_i 1[ Y_j in B(X_i, NND_k(X_i)) ]          (k = 5)
    coverage  = (1/N) sum_i 1[ exists j: Y_j in B(X_i, NND_k(X_i)) ]       (k = 5)

(Kynkäänniemi et al. 2019, Sec. 2 and Eq. 1; Naeem et al. 2020, Sec. 3.)
Precision asks "is each fake sample on the real manifold", recall "is each real sample on
the fake manifold": a generator that only produces one mode of the data scores high
precision and low recall.

Ties. On binary or integer-valued features many distances equal a k-NN radius exactly, so
whether the ball is open or closed changes the numbers. The default is the open ball
(distance < radius), as in the authors' ``prdc`` package (clovaai/generative-evaluation-prdc,
``compute_prdc``), whose results these equal; ``closed_balls=True`` gives distance <= radius,
the convention of Kynkäänniemi et al.'s Eq. 1 and their code.

Exact results, fast. Every decision is a comparison of two squared distances, and each is
decided as the float64 distances sum_t (x_t - y_t)^2, computed directly from the features,
decide it; on integer and dyadic features these have no rounding at all, so ties are ties:

* Features that are integers after scaling by a power of two (binary, integer pixels,
  levels / 2^j), with 4 d max|x|^2 <= 2^24 (float32) or 2^53 (float64), are compared in
  that arithmetic, in which ||x||^2 + ||y||^2 - 2 x.y is then computed without any rounding.
* Other features are centred on the real mean and the matrix products run in float32.
  For a pair (x, y) with float32 squared norms n_x, n_y the computed squared distance is
  within E = c (n_x + n_y) of the exact one, with

      c = 1.01 (2 gamma_{d+2} + 5 u + 8 (d + 2) u64),   gamma_m = m u / (1 - m u),

  u = 2^-24 and u64 = 2^-53: gamma_{d+2} (2|x||y| + n_x + n_y) <= 2 gamma_{d+2} (n_x + n_y)
  bounds the rounding of the d + 2 term dot product [x, n_x, 1].[-2y, 1, n_y], whatever its
  summation order (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Eq. 3.5);
  5u covers rounding the centred features and their norms to float32, and the last term the
  float64 direct re-computation below. (The features are first scaled by a power of two to
  at most 1 in magnitude, so nothing overflows; an absolute 16 (d + 2) x the smallest normal
  number covers values that underflow.) A comparison whose computed value lies within
  E (plus the radius's own E) of a radius is re-decided on float64 distances
  sum_t (x_t - y_t)^2 of the original features; a k-th-nearest-neighbour radius is the
  computed value of the neighbour that is k-th for certain, or, when several neighbours are
  within 2E of the k-th, decided from their float64 distances. On 10,000 x 10,000 Gaussian
  features of dimension 2,048 about 4 * 10^4 of the 3 * 10^8 distances are re-computed.
  With reduced-precision float32 products enabled (TF32 or bfloat16 through
  ``torch.set_float32_matmul_precision``), the products run in float64 with u = 2^-53.

Symmetric real-real and fake-fake products are computed once per pair of blocks, both
triangles' k-NN lists updated from one product; every block holds at most
``max_block_elements`` entries, so memory stays bounded for 10^5 points. Works on any device.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from dgmbench.data.base import Dataset
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, model_samples, register_metric
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
from dgmbench.train.checkpoint import load_tensor_file

DEFAULT_MAX_BLOCK_ELEMENTS = 2**24  # entries of one block of distances (64 MiB in float32, 128 MiB in float64)

K_PRECISION_RECALL = 3  # Kynkäänniemi et al. 2019
K_DENSITY_COVERAGE = 5  # Naeem et al. 2020

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
FLOAT64_UNIT_ROUNDOFF = 2.0**-53
SYMMETRIC_BLOCK_SIDE = 1024  # real-real / fake-fake blocks of at most n / 8: the wasted half-diagonal <= 1/8
GATHER_ELEMENTS = 2**19  # pairs per step of the exact re-computation: temporaries stay in cache
SPARE_NEIGHBOURS = 8  # neighbours kept beyond the k-th: room for near-ties, re-checked exactly
OPERAND_ALIGNMENT = 16  # operand rows padded with zeros to a multiple of this many entries


def nonzero_pairs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the True entries of a 2-D mask, in row-major order. On the CPU through
    numpy's flatnonzero, about 13x faster than torch's nonzero on sparse masks (measured on
    1677 x 10000 with 0.2% set, 1 thread)."""
    if mask.device.type != "cpu":
        found = mask.nonzero()
        return found[:, 0], found[:, 1]
    flat = torch.from_numpy(np.flatnonzero(mask.contiguous().numpy()))
    width = mask.shape[1]
    return flat // width, flat % width


def pairwise_distance_blocks(
    x: torch.Tensor, y: torch.Tensor, max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, stop, ||x[start:stop, None] - y[None]||) block by block, in x's dtype
    (approximate: the ||x||^2 + ||y||^2 - 2 x.y expansion; for exact comparisons use
    precision_recall_density_coverage's machinery). x and y on the same device."""
    y_squared_norms = (y * y).sum(1)
    rows = max(1, max_block_elements // max(1, len(y)))
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        squared = (block * block).sum(1, keepdim=True) + y_squared_norms - 2.0 * (block @ y.T)
        yield start, start + len(block), squared.clamp_min_(0.0).sqrt_()


# --- exact comparisons of distances --------------------------------------------------------------


def checked_features(features: torch.Tensor, name: str) -> torch.Tensor:
    """features as a float64 (n, d) tensor; a one-line ValueError for anything else."""
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{name} features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(f"{name} features must be a 2-D (n, d) tensor, got shape {tuple(features.shape)}")
    if features.is_complex():
        raise ValueError(f"{name} features must be real numbers, got {features.dtype}")
    features = features.to(torch.float64)
    if not math.isfinite(features.sum()) and not bool((finite := torch.isfinite(features)).all()):
        bad_rows = (~finite).any(1).nonzero().flatten()
        kinds = " and ".join(
            kind for kind, present in (("NaN", features.isnan().any()), ("Inf", features.isinf().any())) if present
        )
        raise ValueError(
            f"{name} features contain {kinds} in {len(bad_rows)} of {len(features)} rows "
            f"(first: row {int(bad_rows[0])}); PRDC needs finite features: drop or fix those rows"
        )
    return features


def _ieee_float32_products(device: torch.device) -> bool:
    """Whether float32 matrix products on `device` round like IEEE float32 (no TF32/bfloat16)."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    if device.type == "cuda":
        backend = torch.backends.cuda.matmul
    else:
        backend = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    return getattr(backend, "fp32_precision", "none") in ("none", "ieee")


@dataclass(frozen=True)
class Arithmetic:
    """How approximate squared distances are computed, and how far off they can be:
    products in `dtype` of features times `scale` (a power of two) minus `centre`; the
    computed squared distance of (x, y) is within error(n_x + n_y) of
    scale^2 ||x - y||^2 (0: exact)."""

    dtype: torch.dtype
    scale: float
    centre: torch.Tensor | None
    relative_error: float
    absolute_error: float = 0.0  # products that underflow (flushed to zero at worst)

    @property
    def exact(self) -> bool:
        return self.relative_error == 0.0 and self.absolute_error == 0.0

    def error(self, squared_norms: torch.Tensor) -> torch.Tensor:
        """Bound on |computed - exact| scaled squared distance, given n_x + n_y."""
        return self.relative_error * squared_norms + self.absolute_error


def _is_integral(values: torch.Tensor, scale: float) -> bool:
    scaled = values * scale  # exact: scale is a power of two >= 1
    return bool(torch.equal(scaled, scaled.round()))


def choose_arithmetic(*feature_sets: torch.Tensor) -> Arithmetic:
    """Exact integer arithmetic where the (float64) features allow it, else float32 with an
    error bound (float64 when float32 products are not IEEE)."""
    device, dim = feature_sets[0].device, feature_sets[0].shape[1]
    dtype = torch.float32 if _ieee_float32_products(device) else torch.float64
    largest = max(max(float(f.max()), -float(f.min())) if f.numel() else 0.0 for f in feature_sets)
    if largest == 0.0:
        return Arithmetic(dtype, 1.0, None, 0.0)
    # 4 d max|x|^2 <= 2^53 bounds every partial sum of [x, n_x, 1].[-2y, 1, n_y]: all exact
    most_bits = min(64, math.floor(math.log2(math.sqrt(2.0**53 / (4 * dim)) / largest)))

    def integral(bits: int, sets=feature_sets) -> bool:
        return all(_is_integral(f, 2.0**bits) for f in sets)

    # (the first row rejects most continuous features without a pass over all of them)
    if most_bits >= 0 and integral(most_bits, [f[:1] for f in feature_sets]) and integral(most_bits):
        low, high = 0, most_bits  # the fewest fractional bits that make every value an integer
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if integral(middle) else (middle + 1, high)
        scale = 2.0**low
        fits_float32 = dtype == torch.float32 and 4 * dim * (largest * scale) ** 2 <= 2.0**24
        return Arithmetic(torch.float32 if fits_float32 else torch.float64, scale, None, 0.0)
    # features scaled to at most 1 in magnitude (a power of two: exact), centred values to 2
    return bounded_arithmetic(feature_sets[0].mean(0), dtype, 2.0 ** -math.ceil(math.log2(largest)))


def bounded_arithmetic(centre: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> Arithmetic:
    """Products in `dtype` (IEEE rounding) of (features - `centre`) * `scale`, with the error
    bound c of the module docstring, plus 16 (d + 2) times the smallest normal number for
    values that underflow (flushed to zero at worst; the scale keeps the features near 1, so
    nothing overflows)."""
    u = FLOAT32_UNIT_ROUNDOFF if dtype == torch.float32 else FLOAT64_UNIT_ROUNDOFF
    terms = len(centre) + 2
    if terms * u >= 0.5:
        raise ValueError(f"features of dimension {len(centre)} are too long for a {dtype} error bound")
    gamma = terms * u / (1 - terms * u)
    relative_error = 1.01 * (2 * gamma + 5 * u + 8 * terms * FLOAT64_UNIT_ROUNDOFF)
    smallest_normal = torch.finfo(dtype).tiny
    return Arithmetic(dtype, scale, centre, relative_error, 16 * terms * smallest_normal)


@dataclass
class Operands:
    """Features ready for products: left @ right.T = n_x + n_y - 2 x.y, the scaled squared
    distances, in one matrix product."""

    left: torch.Tensor  # [z, n_z, 1]
    right: torch.Tensor  # [-2 z, 1, n_z]
    norms: torch.Tensor  # n_z, float64 (exact values of the working-precision norms)


def operands(features: torch.Tensor, arithmetic: Arithmetic, rows_per_step: int = 256) -> Operands:
    n, dim = features.shape
    # zero columns pad the width to a multiple of OPERAND_ALIGNMENT: they add exact zeros to
    # every dot product (no rounding, the error bound unchanged) and the BLAS kernels run
    # about 14% faster on aligned rows (measured: 1024 x 10000 x 2050 vs 2064, float32)
    width = -(-(dim + 2) // OPERAND_ALIGNMENT) * OPERAND_ALIGNMENT
    left = torch.empty((n, width), dtype=arithmetic.dtype, device=features.device)
    right = torch.empty_like(left)
    left[:, dim + 2 :] = 0
    right[:, dim + 2 :] = 0
    step = torch.empty((min(n, rows_per_step), dim), dtype=torch.float64, device=features.device)
    for start in range(0, n, rows_per_step):  # in steps through one buffer: no large temporaries
        stop = min(n, start + rows_per_step)
        z = step[: stop - start]
        if arithmetic.centre is None:
            torch.mul(features[start:stop], arithmetic.scale, out=z)
        else:
            torch.sub(features[start:stop], arithmetic.centre, out=z).mul_(arithmetic.scale)
        rounded = left[start:stop, :dim]
        rounded.copy_(z)  # the working precision's features
        left[start:stop, dim] = z.copy_(rounded).square_().sum(1)  # their norms: float64 sum, one rounding
        torch.mul(rounded, -2, out=right[start:stop, :dim])  # exact
    left[:, dim + 1] = 1
    right[:, dim] = 1
    right[:, dim + 1] = left[:, dim]
    return Operands(left, right, left[:, dim].double())


def exact_squared_distances(
    x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, max_block_elements: int
) -> torch.Tensor:
    """sum_t (x[rows, t] - y[cols, t])^2 in float64, straight from the differences (exact on
    integer and dyadic features; the same value for equal difference vectors)."""
    out = torch.empty(len(rows), dtype=torch.float64, device=x.device)
    step = max(1, min(max_block_elements, GATHER_ELEMENTS) // max(1, x.shape[1]))
    for start in range(0, len(rows), step):
        difference = x[rows[start : start + step]] - y[cols[start : start + step]]
        out[start : start + step] = difference.square_().sum(1)
    return out


def _round_towards(values: torch.Tensor, dtype: torch.dtype, direction: float) -> torch.Tensor:
    """float64 values in `dtype`, rounded down (direction -inf) or up (+inf)."""
    rounded = values.to(dtype)
    off = rounded.double() > values if direction < 0 else rounded.double() < values
    return torch.where(off, torch.nextafter(rounded, torch.full_like(rounded, direction)), rounded)


def _merge_smallest(
    values: torch.Tensor, indices: torch.Tensor, block: torch.Tensor, offset: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The K smallest of (values | block) per row, with their column indices."""
    keep = min(values.shape[1], block.shape[1])
    block_values, block_indices = torch.topk(block, keep, dim=1, largest=False, sorted=False)
    all_values = torch.cat([values, block_values], 1)
    all_indices = torch.cat([indices, block_indices + offset], 1)
    values, position = torch.topk(all_values, values.shape[1], dim=1, largest=False, sorted=True)
    return values, all_indices.gather(1, position)


def _merge_pending(
    values: torch.Tensor, indices: torch.Tensor, pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's `kept` smallest of its list (values, indices: sorted, inf-padded) and its
    pending (row, neighbour, value) candidates, sorted."""
    n, kept = values.shape
    device = values.device
    rows = torch.cat([torch.arange(n, device=device).repeat_interleave(kept)] + [p[0] for p in pending])
    neighbours = torch.cat([indices.flatten()] + [p[1] for p in pending])
    candidate_values = torch.cat([values.flatten()] + [p[2] for p in pending])
    order = torch.argsort(candidate_values, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]  # by row, ascending values within a row
    counts = torch.bincount(rows, minlength=n)  # >= kept: every row's own list is in
    first = torch.cumsum(counts, 0) - counts
    take = order[first[:, None] + torch.arange(kept, device=device)]
    return candidate_values[take], neighbours[take]


@dataclass
class Radii:
    """Squared k-NN radii (float64): each either exact (error 0) or a computed value within
    `error` of the exact one, which is the squared distance to `neighbour` (computed exactly
    on demand, for the few comparisons that need it)."""

    features: torch.Tensor
    value: torch.Tensor
    error: torch.Tensor
    neighbour: torch.Tensor
    max_block_elements: int

    def exact(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The exact values of `rows` (all by default), computed once and remembered."""
        rows = torch.arange(len(self.value), device=self.value.device) if rows is None else rows
        pending = rows[self.error[rows] > 0].unique()
        self.value[pending] = exact_squared_distances(
            self.features, self.features, pending, self.neighbour[pending], self.max_block_elements
        )
        self.error[pending] = 0.0
        return self.value[rows]


def knn_squared_radii(
    features: torch.Tensor,
    ks: tuple[int, ...],
    arithmetic: Arithmetic,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
    name: str = "",
    prepared: Operands | None = None,
) -> dict[int, Radii]:
    """Squared distance from each row of float64 `features` to its k-th nearest other row,
    for every k in ks (see Radii)."""
    n, largest_k = len(features), max(ks)
    if largest_k >= n:
        raise ValueError(
            f"k={largest_k} nearest neighbours need more than {largest_k} {name} points, got {n}".replace("  ", " ")
        )
    ops = prepared if prepared is not None else operands(features, arithmetic)
    kept = largest_k if arithmetic.exact else min(n - 1, largest_k + SPARE_NEIGHBOURS)
    device = features.device
    values = torch.full((n, kept), math.inf, dtype=arithmetic.dtype, device=device)
    indices = torch.zeros((n, kept), dtype=torch.long, device=device)
    # Row blocks of `side` rows against every column from the block's first row on, so each
    # unordered pair of rows is computed once (the product is symmetric; the diagonal squares
    # are computed whole, n * side / 2 wasted products). The upper triangle updates its rows'
    # lists by one wide top-k per product. Its transpose updates the later rows' lists: by a
    # top-k in the first row block; after that each later row j has `kept` values at most
    # values[j, -1], so only entries below that bound can change its list of values (one equal
    # to it could only replace a tie of the same value, and _kth_within_error re-decides rows
    # whose ties may matter): those few are collected (a comparison, no top-k, no transposed
    # copy) and merged at the end. Strictly below: identical features (a collapsed generator)
    # tie everywhere and would make every pair a candidate.
    side = max(1, min(math.isqrt(max_block_elements), SYMMETRIC_BLOCK_SIDE, max(128, n // 8)))
    columns_per_product = max(side, max_block_elements // side)
    pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (row j, neighbour i, value)
    pending_count = 0
    for a in range(0, n, side):
        a_stop = min(n, a + side)
        for b in range(a, n, columns_per_product):
            b_stop = min(n, b + columns_per_product)
            block = ops.left[a:a_stop] @ ops.right[b:b_stop].T
            if b == a:
                block.diagonal().fill_(math.inf)  # not one's own neighbour
            values[a:a_stop], indices[a:a_stop] = _merge_smallest(values[a:a_stop], indices[a:a_stop], block, b)
            later = max(b, a_stop)  # columns past the row block: rows that have not seen these rows yet
            if later >= b_stop:
                continue
            upper = block[:, later - b :]
            if a == 0:
                transposed = upper.T.contiguous()
                values[later:b_stop], indices[later:b_stop] = _merge_smallest(
                    values[later:b_stop], indices[later:b_stop], transposed, a
                )
            else:
                neighbours, rows = nonzero_pairs(upper < values[later:b_stop, -1])
                pending.append((rows + later, neighbours + a, upper[neighbours, rows]))
                pending_count += len(rows)
        if pending_count > 4 * n * kept:  # many ties: merge now, which lowers the bounds and frees memory
            values, indices = _merge_pending(values, indices, pending)
            pending, pending_count = [], 0
    if pending:
        values, indices = _merge_pending(values, indices, pending)
    squared_scale = arithmetic.scale**2
    if arithmetic.exact:
        zero = torch.zeros(n, dtype=torch.float64, device=device)
        return {
            k: Radii(features, values[:, k - 1].double() / squared_scale, zero, indices[:, k - 1], max_block_elements)
            for k in ks
        }
    # in the features' own scale (dividing by a power of two is exact), as the exact distances
    error = arithmetic.error(ops.norms + ops.norms.max()) / squared_scale
    return _kth_within_error(features, values.double() / squared_scale, indices, ks, error, max_block_elements)


def _kth_within_error(
    features: torch.Tensor,
    values: torch.Tensor,
    indices: torch.Tensor,
    ks: tuple[int, ...],
    error: torch.Tensor,
    max_block_elements: int,
) -> dict[int, Radii]:
    """k-th smallest distances from the `kept` smallest computed ones per row (sorted
    `values`, columns `indices`), each within `error` (per row) of its exact value.

    With a = the computed k-th value: a neighbour computed below a - 2E is exactly below the
    exact k-th, one above a + 2E exactly above it (at most k - 1 computed values are below a,
    at least k are at most a). So the exact k-th is the (k - #below)-th smallest exact
    distance in the window [a - 2E, a + 2E]. When the window holds the k-th alone (nearly
    always on continuous features) its neighbour is the k-th for certain and the computed
    value is kept, within E; otherwise the window's exact distances decide."""
    n, kept = values.shape
    device = values.device
    margin = 2 * error[:, None]
    windows = {}
    for k in ks:
        a = values[:, k - 1 : k]
        window = (values >= a - margin) & (values <= a + margin)
        windows[k] = window, (values < a - margin).sum(1), window.sum(1) == 1
    recompute = torch.stack([window & ~alone[:, None] for window, _, alone in windows.values()]).any(0)
    exact = torch.full((n, kept), math.inf, dtype=torch.float64, device=device)
    rows = torch.arange(n, device=device)[:, None].expand(n, kept)
    exact[recompute] = exact_squared_distances(
        features, features, rows[recompute], indices[recompute], max_block_elements
    )
    radii = {}
    for k, (window, below, alone) in windows.items():
        in_window = torch.where(window, exact, math.inf).sort(1).values
        value = torch.where(alone, values[:, k - 1], in_window.gather(1, (k - 1 - below)[:, None]).squeeze(1))
        radii[k] = Radii(features, value, torch.where(alone, error, 0.0), indices[:, k - 1].clone(), max_block_elements)
    # rows whose window may reach past the kept neighbours: decide them from their full exact row
    largest_k = max(ks)
    if kept < n - 1:
        overflow = (values[:, -1] <= values[:, largest_k - 1] + 2 * error).nonzero().flatten()
        everyone = torch.arange(n, device=device)
        for row in overflow.tolist():
            full = exact_squared_distances(
                features, features, torch.full_like(everyone, row), everyone, max_block_elements
            )
            full[row] = math.inf
            ordered = full.sort().values
            for k in ks:
                radii[k].value[row], radii[k].error[row] = ordered[k - 1], 0.0
    return radii


def knn_radii(
    features: torch.Tensor, ks: tuple[int, ...], max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS
) -> dict[int, torch.Tensor]:
    """Distance (float64) from each row to its k-th nearest other row, for every k in ks."""
    features = checked_features(features, "input")
    radii = knn_squared_radii(features, ks, choose_arithmetic(features), max_block_elements)
    return {k: radius.exact().sqrt() for k, radius in radii.items()}


@torch.no_grad()
def precision_recall_density_coverage(
    real: torch.Tensor,
    fake: torch.Tensor,
    k_precision_recall: int = K_PRECISION_RECALL,
    k_density_coverage: int = K_DENSITY_COVERAGE,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
    closed_balls: bool = False,
) -> dict[str, float]:
    """The four manifold metrics of real (N, d) against fake (M, d) features, decided
    exactly (see the module docstring); on whichever device the features are on.

    closed_balls: a point at exactly the k-NN radius is inside (Kynkäänniemi et al.'s
    convention) rather than outside (the default, as the ``prdc`` package).
    """
    real = checked_features(real, "real")
    fake = checked_features(fake, "fake").to(real.device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features must have the same dimension, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    for name, k in (("k_precision_recall", k_precision_recall), ("k_density_coverage", k_density_coverage)):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {k!r}")
    inside = torch.le if closed_balls else torch.lt
    k_pr, k_dc = k_precision_recall, k_density_coverage
    arithmetic = choose_arithmetic(real, fake)
    real_ops, fake_ops = operands(real, arithmetic), operands(fake, arithmetic)
    real_radii = knn_squared_radii(real, (k_pr, k_dc), arithmetic, max_block_elements, "real", real_ops)
    fake_radius = knn_squared_radii(fake, (k_pr,), arithmetic, max_block_elements, "fake", fake_ops)[k_pr]

    # Thresholds (scaled squared radii, float64) and the error bound of a computed distance
    # compared with them: real radii per real row, fake radii per fake column.
    squared_scale = arithmetic.scale**2
    row_error = arithmetic.error(real_ops.norms + fake_ops.norms.max())
    column_error = arithmetic.error(real_ops.norms.max() + fake_ops.norms)
    radius = {"precision": real_radii[k_pr], "density": real_radii[k_dc], "recall": fake_radius}
    error = {
        key: radius[key].error * squared_scale + (column_error if key == "recall" else row_error) for key in radius
    }
    # A computed value `inside` sure[key] is inside for certain; one not inside maybe[key] is outside.
    sure = {key: _round_towards(r.value * squared_scale - error[key], arithmetic.dtype, -math.inf)
            for key, r in radius.items()}
    maybe = {key: _round_towards(r.value * squared_scale + error[key], arithmetic.dtype, math.inf)
             for key, r in radius.items()}
    real_reach = torch.maximum(maybe["precision"], maybe["density"])
    n, m, device = len(real), len(fake), real.device
    fake_in_real_manifold = torch.zeros(m, dtype=torch.bool, device=device)
    real_in_fake_manifold = torch.zeros(n, dtype=torch.bool, device=device)
    real_ball_covered = torch.zeros(n, dtype=torch.bool, device=device)
    ball_memberships = 0

    def record(key: str, rows: torch.Tensor, cols: torch.Tensor) -> None:
        """Pairs (real row, fake column) inside the ball of `key`."""
        nonlocal ball_memberships
        if key == "precision":
            fake_in_real_manifold[cols] = True
        elif key == "density":
            ball_memberships += len(rows)
            real_ball_covered[rows] = True
        else:
            real_in_fake_manifold[rows] = True

    rows_per_block = max(1, max_block_elements // m)
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        block = real_ops.left[start:stop] @ fake_ops.right.T  # scaled squared distances, real x fake
        # Few pairs are near any ball (about k per row): list those that may be inside a real
        # ball (density's radius is the larger one) and those that may be inside a fake ball.
        undecided = {}
        for keys, (rows, cols) in (
            (("precision", "density"), nonzero_pairs(inside(block, real_reach[start:stop, None]))),
            (("recall",), nonzero_pairs(inside(block, maybe["recall"][None, :]))),
        ):
            computed = block[rows, cols]
            rows = rows + start
            for key in keys:
                owner = cols if key == "recall" else rows
                certain = inside(computed, sure[key][owner])
                record(key, rows[certain], cols[certain])
                if not arithmetic.exact:
                    unsure = ~certain & inside(computed, maybe[key][owner])
                    undecided[key] = torch.stack([rows[unsure], cols[unsure]], 1)
        if not any(len(pairs) for pairs in undecided.values()):
            continue
        # Re-decide the comparisons within rounding of a radius on exact float64 distances,
        # each pair computed once however many comparisons it is undecided in.
        every_pair, where = torch.cat(list(undecided.values())).unique(dim=0, return_inverse=True)
        every_distance = exact_squared_distances(real, fake, every_pair[:, 0], every_pair[:, 1], max_block_elements)
        offset = 0
        for key, pairs in undecided.items():
            distances = every_distance[where[offset : offset + len(pairs)]]
            offset += len(pairs)
            rows, cols = pairs[:, 0], pairs[:, 1]
            is_inside = inside(distances, radius[key].exact(cols if key == "recall" else rows))
            record(key, rows[is_inside], cols[is_inside])

    return {
        "precision": fake_in_real_manifold.double().mean().item(),
        "recall": real_in_fake_manifold.double().mean().item(),
        "density": int(ball_memberships) / (k_dc * m),
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
            features = load_tensor_file(path, what="feature cache file")
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
    settings = {
        "prdc_samples": Setting(int, "real and model samples each (10000; quick 1000; at most the split)", minimum=2),
        "prdc_reference_split": Setting(str, "reference split (default: the evaluation split)",
                                        choices=("train", "valid", "test")),
        "prdc_extractor": Setting(str, "feature extractor name or \"pixels\" (default: the FID features)",
                                  optional=True),
        "fid_extractor": Setting(str, "the FID feature extractor, used unless prdc_extractor is given",
                                 optional=True),
        "inception": Setting(bool, "score colour images >= 32 px with Inception (downloads the weights)"),
        "inception_weights": Setting(str, "path to local Inception weights", optional=True),
        "fidelity_cache_dir": Setting(str, "reference-feature cache directory", optional=True),
    }

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
            "distance": "euclidean, every comparison exact (float32 products, float64 re-check near a radius)",
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
