"""PRD (Sajjadi et al. 2018) the way the reference code computes it
(msmsajjadi/precision-recall-distributions ``prd_score.compute_prd_from_embedding``, from
google/compare_gan), written here from that description as the peer dgmbench's PRD is timed
against: in each of the 10 runs, stack eval and ref features into a fresh union, cluster it
with scikit-learn's MiniBatchKMeans (20 clusters, n_init=10, batch size 100), histogram the
two halves over the clusters, and compute the curve over 1001 angles; average the curves.
Seeded per run (seed + run) as dgmbench seeds it, so both give the same clusters."""
from __future__ import annotations

import numpy as np
import sklearn.cluster


def reference_prd(eval_features, ref_features, seed: int = 0, num_clusters: int = 20, num_angles: int = 1001,
                  num_runs: int = 10, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    eval_features = np.asarray(eval_features, dtype=np.float64)
    ref_features = np.asarray(ref_features, dtype=np.float64)
    slopes = np.tan(np.linspace(1e-10, np.pi / 2 - 1e-10, num=num_angles))
    precisions, recalls = [], []
    for run in range(num_runs):
        union = np.vstack([eval_features, ref_features])
        kmeans = sklearn.cluster.MiniBatchKMeans(
            n_clusters=num_clusters, n_init=10, batch_size=batch_size, random_state=seed + run
        )
        labels = kmeans.fit(union).labels_
        eval_dist = np.bincount(labels[: len(eval_features)], minlength=num_clusters) / len(eval_features)
        ref_dist = np.bincount(labels[len(eval_features):], minlength=num_clusters) / len(ref_features)
        precision = np.minimum(ref_dist[None, :] * slopes[:, None], eval_dist[None, :]).sum(axis=1)
        precisions.append(np.clip(precision, 0, 1))
        recalls.append(np.clip(precision / slopes, 0, 1))
    return np.mean(precisions, axis=0), np.mean(recalls, axis=0)
