"""Precision and recall for distributions, PRD curves (Sajjadi et al. 2018).

For a reference distribution P (real) and a model Q (fake) over a finite set of
states, Q has precision alpha at recall beta if P = beta mu + (1-beta) nu_P and
Q = alpha mu + (1-alpha) nu_Q for some shared component mu (Definition 1). The
frontier of the PRD set is traced by the slopes lambda = tan(angle), angle in (0, pi/2):

    alpha(lambda) = sum_w min(lambda P(w), Q(w)),    beta(lambda) = alpha(lambda) / lambda

(Theorem 2). On continuous features, the states are 20 k-means clusters of the union
of real and fake features and P, Q are the two cluster histograms; the curve over 1001
angles is averaged over 10 clusterings. The curve is summarised by the maximal F_8 and
F_{1/8} scores (F_beta = (1 + beta^2) p r / (beta^2 p + r)): F_8 weighs recall
(does the model cover the data), F_{1/8} precision (are the samples data-like).

This follows the reference implementation (msmsajjadi/precision-recall-distributions,
``prd_score.py``, from google/compare_gan) step for step, with seeded clusterings.
"""
from __future__ import annotations

import concurrent.futures
import functools

import numpy as np
import sklearn
import sklearn.cluster
import torch
from threadpoolctl import ThreadpoolController

NUM_CLUSTERS = 20
NUM_ANGLES = 1001
NUM_RUNS = 10
KMEANS_BATCH_SIZE = 100  # scikit-learn's default when the reference code was written (< 1.2)
SMALL_CLUSTERING = 2**20  # points x dims below which one thread beats OpenMP's overhead


def prd_curve(
    eval_dist: np.ndarray, ref_dist: np.ndarray, num_angles: int = NUM_ANGLES, epsilon: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) of histogram eval_dist (Q) w.r.t. ref_dist (P), one per angle."""
    if not 0 < epsilon < 0.1:
        raise ValueError(f"epsilon must be in (0, 0.1), got {epsilon}")
    if not 3 <= num_angles <= 1e6:
        raise ValueError(f"num_angles must be in [3, 1e6], got {num_angles}")
    slopes = np.tan(np.linspace(epsilon, np.pi / 2 - epsilon, num=num_angles))
    eval_dist = np.asarray(eval_dist, dtype=np.float64)
    ref_dist = np.asarray(ref_dist, dtype=np.float64)
    precision = np.minimum(ref_dist[None, :] * slopes[:, None], eval_dist[None, :]).sum(axis=1)
    recall = precision / slopes
    # Rounding can push values a hair above 1; anything more is a bug upstream.
    if max(precision.max(), recall.max()) > 1.001:
        raise ValueError("PRD value above 1: are eval_dist and ref_dist normalised histograms?")
    return np.clip(precision, 0.0, 1.0), np.clip(recall, 0.0, 1.0)


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The process's BLAS/OpenMP pools, found once: scanning the loaded libraries costs tens
    of milliseconds, more than a quick-suite clustering."""
    return ThreadpoolController()


def _kmeans_labels(union: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """Labels of the reference clustering of `union` (finite, float64, C-contiguous)."""
    kmeans = sklearn.cluster.MiniBatchKMeans(
        n_clusters=num_clusters, n_init=10, batch_size=KMEANS_BATCH_SIZE, random_state=seed
    )
    # The caller checked finiteness once for all runs; sklearn would re-scan the union every fit.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return kmeans.fit(union).labels_


def _histograms(labels: np.ndarray, num_eval: int, num_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    eval_counts = np.bincount(labels[:num_eval], minlength=num_clusters)
    ref_counts = np.bincount(labels[num_eval:], minlength=num_clusters)
    return eval_counts / eval_counts.sum(), ref_counts / ref_counts.sum()


def _union(eval_features: np.ndarray, ref_features: np.ndarray) -> np.ndarray:
    union = np.ascontiguousarray(np.vstack([eval_features, ref_features]), dtype=np.float64)
    if not np.isfinite(union).all():
        raise ValueError("PRD features contain NaN or infinity: check the samples and the feature extractor")
    return union


def cluster_histograms(
    eval_features: np.ndarray, ref_features: np.ndarray, num_clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of eval and ref points over k-means clusters of their union."""
    union = _union(eval_features, ref_features)
    # On small inputs (the quick suite) thread start-up dominates, badly so on a busy machine.
    with _thread_pools().limit(limits=1 if union.size < SMALL_CLUSTERING else None):
        labels = _kmeans_labels(union, num_clusters, seed)
    return _histograms(labels, len(eval_features), num_clusters)


def _clustering_runs(union: np.ndarray, num_eval: int, num_clusters: int, seeds: list[int]) -> list:
    """cluster_histograms for each seed, on one union. Small inputs: one after the other on
    one thread (thread start-up would dominate). Large ones: the runs are spread over the
    available cores, each run on one thread (BLAS and OpenMP), so every run does the same
    arithmetic as on a one-thread machine; the labels do not depend on the thread count."""
    workers = min(len(seeds), torch.get_num_threads())  # the process's thread budget
    if union.size < SMALL_CLUSTERING or workers == 1:
        with _thread_pools().limit(limits=1 if union.size < SMALL_CLUSTERING else None):
            return [_histograms(_kmeans_labels(union, num_clusters, seed), num_eval, num_clusters) for seed in seeds]

    def run(seed: int):
        # OpenMP's thread count is per calling thread: limit it in each worker
        with _thread_pools().limit(limits=1, user_api="openmp"):
            return _histograms(_kmeans_labels(union, num_clusters, seed), num_eval, num_clusters)

    with _thread_pools().limit(limits=1, user_api="blas"), concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, seeds))


def prd_from_features(
    eval_features,
    ref_features,
    num_clusters: int = NUM_CLUSTERS,
    num_angles: int = NUM_ANGLES,
    num_runs: int = NUM_RUNS,
    enforce_balance: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The PRD curve of eval (fake) against ref (real) features, averaged over runs.

    Equal sample sizes are enforced by default because an unbalanced union biases the
    clustering towards the larger set (Sajjadi et al. 2018, Sec. 4). The union is built and
    checked once for all runs (the reference stacks it again in every run).
    """
    eval_features = np.asarray(eval_features, dtype=np.float64)
    ref_features = np.asarray(ref_features, dtype=np.float64)
    if enforce_balance and len(eval_features) != len(ref_features):
        raise ValueError(
            f"PRD needs as many eval points ({len(eval_features)}) as reference points "
            f"({len(ref_features)}); pass enforce_balance=False to override (not recommended)"
        )
    union = _union(eval_features, ref_features)
    histograms = _clustering_runs(union, len(eval_features), num_clusters, [seed + run for run in range(num_runs)])
    curves = [prd_curve(eval_dist, ref_dist, num_angles) for eval_dist, ref_dist in histograms]
    precision = np.mean([p for p, _ in curves], axis=0)
    recall = np.mean([r for _, r in curves], axis=0)
    return precision, recall


def f_beta(precision: np.ndarray, recall: np.ndarray, beta: float, epsilon: float = 1e-10) -> np.ndarray:
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall + epsilon)


def max_f_beta_pair(precision: np.ndarray, recall: np.ndarray, beta: float = 8) -> tuple[float, float]:
    """(max F_beta, max F_{1/beta}) over the curve: the recall-like and precision-like
    summaries of a PRD curve (reference: ``prd_to_max_f_beta_pair``)."""
    precision, recall = np.asarray(precision), np.asarray(recall)
    for name, values in (("precision", precision), ("recall", recall)):
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"all {name} values must be in [0, 1]")
    return float(f_beta(precision, recall, beta).max()), float(f_beta(precision, recall, 1 / beta).max())
