"""PRD curves (Sajjadi et al. 2018) against their definition and closed forms."""
import numpy as np
import pytest
from scipy.optimize import linprog

import sklearn.cluster

from dgmbench.metrics.prd import (
    KMEANS_BATCH_SIZE,
    cluster_histograms,
    f_beta,
    max_f_beta_pair,
    prd_curve,
    prd_from_features,
)


def frontier_by_linear_programming(eval_dist, ref_dist, slope):
    """Definition 1 of Sajjadi et al.: the largest alpha with alpha = slope * beta such that
    Q = alpha mu + (1-alpha) nu_Q and P = beta mu + (1-beta) nu_P. With m = alpha mu this is
    max sum(m) subject to 0 <= m <= Q and m <= slope * P (so that beta mu <= P)."""
    states = len(eval_dist)
    result = linprog(
        c=-np.ones(states),
        A_ub=np.eye(states),
        b_ub=slope * np.asarray(ref_dist),
        bounds=[(0, q) for q in eval_dist],
    )
    alpha = -result.fun
    return alpha, alpha / slope


def test_curve_matches_definition_by_linear_programming():
    rng = np.random.default_rng(0)
    eval_dist, ref_dist = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    num_angles = 11
    precision, recall = prd_curve(eval_dist, ref_dist, num_angles=num_angles)
    slopes = np.tan(np.linspace(1e-10, np.pi / 2 - 1e-10, num_angles))
    for i in range(1, num_angles - 1):  # the end slopes are 1e-10 and 1e10: LP round-off
        alpha, beta = frontier_by_linear_programming(eval_dist, ref_dist, slopes[i])
        assert precision[i] == pytest.approx(alpha, abs=1e-9)
        assert recall[i] == pytest.approx(beta, abs=1e-9)


def test_identical_distributions_reach_one_one():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    precision, recall = prd_curve(p, p)
    assert precision.shape == recall.shape == (1001,)
    middle = 500  # angle pi/4, slope 1
    assert precision[middle] == pytest.approx(1.0, abs=1e-9)
    assert recall[middle] == pytest.approx(1.0, abs=1e-9)
    slopes = np.tan(np.linspace(1e-10, np.pi / 2 - 1e-10, 1001))
    np.testing.assert_allclose(precision, np.minimum(slopes, 1.0), atol=1e-12)  # sum min(l p, p)
    np.testing.assert_allclose(recall, np.minimum(1.0, 1.0 / slopes), atol=1e-12)
    assert max_f_beta_pair(precision, recall) == pytest.approx((1.0, 1.0), abs=1e-6)


def test_disjoint_distributions_are_zero():
    precision, recall = prd_curve([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.3, 0.7])
    assert np.all(precision == 0) and np.all(recall == 0)
    assert max_f_beta_pair(precision, recall) == (0.0, 0.0)


def test_mode_dropping_closed_form():
    """Q puts all its mass on one of P's two equally likely states: precision reaches 1,
    recall never exceeds 1/2. Closed form: alpha = min(l/2, 1), beta = min(1/2, 1/l)."""
    precision, recall = prd_curve([1.0, 0.0], [0.5, 0.5], num_angles=101)
    slopes = np.tan(np.linspace(1e-10, np.pi / 2 - 1e-10, 101))
    np.testing.assert_allclose(precision, np.minimum(slopes / 2, 1.0), atol=1e-12)
    np.testing.assert_allclose(recall, np.minimum(0.5, 1.0 / slopes), atol=1e-12)
    f8, f1_8 = max_f_beta_pair(precision, recall)
    assert f1_8 > 0.95  # precision-like summary: samples are all realistic
    assert f8 < 0.51  # recall-like summary: half the data is never generated
    # F_8 at (precision 1, recall 1/2), the corner of this curve: (1+64) * 0.5 / (64 + 0.5)
    assert f8 == pytest.approx(65 * 0.5 / 64.5, abs=1e-3)


def test_f_beta_formula():
    assert f_beta(np.array(0.5), np.array(0.25), beta=2, epsilon=0) == pytest.approx(5 * 0.125 / (4 * 0.5 + 0.25))
    with pytest.raises(ValueError):
        max_f_beta_pair(np.array([1.2]), np.array([0.5]))


def clusters(rng, centres, per_cluster, dim=10):
    return np.concatenate([c + rng.normal(size=(per_cluster, dim)) for c in centres])


def test_from_features_identical_and_one_mode():
    rng = np.random.default_rng(1)
    centres = [np.full(10, 30.0 * i) for i in range(4)]
    real = clusters(rng, centres, 50)
    same = clusters(rng, centres, 50)
    precision, recall = prd_from_features(same, real, num_runs=3)
    f8, f1_8 = max_f_beta_pair(precision, recall)
    assert f8 > 0.85 and f1_8 > 0.85

    one_mode = clusters(rng, centres[:1], 200)  # all samples from the first of 4 modes
    f8, f1_8 = max_f_beta_pair(*prd_from_features(one_mode, real, num_runs=3))
    # ideal (precision 1, recall 1/4): F_1/8 = 0.956, F_8 = 0.253; finite-sample
    # cluster histograms pull precision below 1
    assert f1_8 > 0.75  # precision-like: every sample lies in a real mode
    assert f8 < 0.4  # recall-like: 3 of 4 modes are missing
    assert f1_8 > f8 + 0.4

    far = clusters(rng, [np.full(10, -100.0)], 200)
    f8, f1_8 = max_f_beta_pair(*prd_from_features(far, real, num_runs=3))
    assert f8 < 0.05 and f1_8 < 0.05


def test_from_features_is_seeded_and_checks_balance():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 0.5
    first = prd_from_features(fake, real, num_runs=2, seed=3)
    second = prd_from_features(fake, real, num_runs=2, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    with pytest.raises(ValueError, match="as many"):
        prd_from_features(fake[:50], real)


@pytest.mark.parametrize("seed", [0, 7])
def test_clustering_is_the_reference_protocol(seed):
    """Histograms from exactly the reference clustering: scikit-learn MiniBatchKMeans with
    20 clusters, n_init=10, batch size 100 (prd_score.py's settings), fitted to the union
    (eval first), seeded per run; the thread-pool handling must not change the clusters."""
    rng = np.random.default_rng(seed)
    eval_features, ref_features = rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 0.4
    eval_hist, ref_hist = cluster_histograms(eval_features, ref_features, 20, seed)
    kmeans = sklearn.cluster.MiniBatchKMeans(n_clusters=20, n_init=10, batch_size=KMEANS_BATCH_SIZE, random_state=seed)
    labels = kmeans.fit(np.vstack([eval_features, ref_features])).labels_
    np.testing.assert_array_equal(eval_hist, np.bincount(labels[:300], minlength=20) / 300)
    np.testing.assert_array_equal(ref_hist, np.bincount(labels[300:], minlength=20) / 300)


def reference_prd(eval_features, ref_features, seed, num_runs=10):
    """prd_score.compute_prd_from_embedding, seeded: per run, k-means of the stacked union
    (MiniBatchKMeans, 20 clusters, n_init=10, batch 100), cluster histograms, the curve;
    curves averaged over runs. One thread for BLAS and OpenMP."""
    from threadpoolctl import threadpool_limits

    curves = []
    with threadpool_limits(limits=1):
        for run in range(num_runs):
            union = np.vstack([eval_features, ref_features])
            kmeans = sklearn.cluster.MiniBatchKMeans(
                n_clusters=20, n_init=10, batch_size=KMEANS_BATCH_SIZE, random_state=seed + run
            )
            labels = kmeans.fit(union).labels_
            eval_hist = np.bincount(labels[: len(eval_features)], minlength=20) / len(eval_features)
            ref_hist = np.bincount(labels[len(eval_features):], minlength=20) / len(ref_features)
            curves.append(prd_curve(eval_hist, ref_hist))
    return np.mean([p for p, _ in curves], axis=0), np.mean([r for _, r in curves], axis=0)


def test_prd_equals_the_reference_protocol_at_any_thread_count(thread_pools):
    """The union built once and the runs spread over threads (inputs above SMALL_CLUSTERING):
    the PRD curve is bit-equal to the reference protocol's, run after run on one thread."""
    import torch

    from dgmbench.metrics.prd import SMALL_CLUSTERING

    rng = np.random.default_rng(5)
    eval_features = rng.normal(size=(2048, 256)) + 0.3 * rng.integers(0, 3, size=(2048, 1))
    ref_features = rng.normal(size=(2048, 256))
    assert eval_features.size + ref_features.size >= SMALL_CLUSTERING  # the concurrent path
    expected = reference_prd(eval_features, ref_features, seed=11, num_runs=4)
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got = prd_from_features(eval_features, ref_features, num_runs=4, seed=11)
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])
    finally:
        torch.set_num_threads(previous)
    assert thread_pools == [2]  # at two threads the runs were spread over two workers


def test_prd_rejects_non_finite_features():
    features = np.zeros((10, 3))
    features[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        prd_from_features(features, np.zeros((10, 3)))
